"""The benchmark harness itself runs (smoke scale): plain vs secure, paired, with RSS."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_harness_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--scale", "smoke", "--datasets", "C",
         "--repeat", "1", "--out", str(out), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    text = json.dumps(doc)
    assert "push" in text and "pull" in text and "rss" in text.lower()
