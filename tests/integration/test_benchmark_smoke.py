"""The benchmark harness itself runs (smoke scale): plain vs secure, paired, with RSS,
measured as a user runs it (fresh repository per round, DVC's default options)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import run as bench_run  # noqa: E402


def test_benchmark_harness_smoke(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--scale", "smoke", "--datasets", "C",
         "--repeat", "1", "--out", str(out), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    assert doc["jobs"] is None  # DVC's own default -j, as a user runs it
    assert doc["method"].startswith("user: fresh git + DVC repo per round")
    summary = doc["datasets"]["C"]["summary"]
    for op in ("push", "pull"):
        row = summary[op]
        assert row["plain_s"] > 0 and row["secure_s"] > 0 and row["cpu_ratio"] > 0
        assert row["rss_plain_mib"] > 0 and row["rss_secure_mib"] > 0
    assert len(doc["datasets"]["C"]["runs"]) == 1


def test_guard_has_a_ceiling_for_every_shape_and_op() -> None:
    assert set(bench_run.GUARD_CPU_RATIO) == {(n, op) for n in "ABC" for op in bench_run.OPS}
    for (name, _op), ceiling in bench_run.GUARD_CPU_RATIO.items():
        assert ceiling > bench_run.RATIO_TARGETS[name]  # a tripwire, not the target


def test_guard_trips_on_a_ratio_past_its_ceiling() -> None:
    def results(cpu_ratio: float) -> dict[str, object]:
        rows = {op: {"cpu_ratio": cpu_ratio} for op in bench_run.OPS}
        return {"datasets": {"C": {"summary": rows}}}

    assert bench_run.guard_failures(results(1.3)) == []
    over = bench_run.guard_failures(results(2.5))
    assert len(over) == 2 and over[0].startswith("C push: CPU ratio 2.50")
