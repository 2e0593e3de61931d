"""Latency the dvc-secure pre-commit hook adds to `git commit`.

A repository with N datasets (small files), all sealed and committed. One dataset is
changed (dvc add + dvc push) and staged; then `git commit` is timed with the hooks
installed (the hook seals the change and verifies the staged state) and without them
(same repository: the commit is undone with `git reset --soft HEAD~1` and the sidecar
restored between runs). Reports medians of wall time and of CPU time (user + sys of
git and its children: robust on a loaded machine).

    python benchmarks/hook_latency.py [--datasets 100] [--runs 7] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PY = sys.executable


def sh(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    sh(cmd, cwd, env)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def setup(base: Path, n: int) -> tuple[Path, dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "DVC_SECURE_"))}
    env.update(HOME=str(base), XDG_CONFIG_HOME=str(base / ".config"), DVC_NO_ANALYTICS="1",
               DVC_SECURE_IDENTITY_FILE=str(base / "identity.txt"),
               GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    root = base / "repo"
    root.mkdir()
    sh(["git", "init", "-q"], root, env)
    sh([PY, "-m", "dvc", "init", "-q"], root, env)
    sh([PY, "-m", "dvc_secure.cli", "keygen"], root, env)
    sh([PY, "-m", "dvc", "remote", "add", "storage", str(base / "storage")], root, env)
    sh([PY, "-m", "dvc_secure.cli", "init", "--remote", "storage", "--member-name", "bench"],
       root, env)
    data = root / "data"
    data.mkdir()
    for i in range(n):
        (data / f"d{i:03}.csv").write_text(f"id,value\n{i},{i * i}\n")
    sh([PY, "-m", "dvc", "add", "-q", *[f"data/d{i:03}.csv" for i in range(n)]], root, env)
    sh([PY, "-m", "dvc", "push", "-q"], root, env)
    sh([PY, "-m", "dvc_secure.cli", "seal"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-q", "-m", f"{n} sealed datasets"], root, env)
    return root, env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="dvc-secure-hook-bench-") as tmp:
        root, env = setup(Path(tmp), args.datasets)
        target = "data/d042.csv"
        (root / target).write_text("id,value\n42,changed\n")
        sh([PY, "-m", "dvc", "add", "-q", target], root, env)
        sh([PY, "-m", "dvc", "push", "-q"], root, env)
        seal = root / f"{target}.dvc.seal"
        original_seal = seal.read_bytes()
        results: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
        for i in range(args.runs * 2):
            mode = "with" if i % 2 else "without"  # interleaved: load hits both alike
            if mode == "with":
                sh([PY, "-m", "dvc_secure.cli", "install"], root, env)
            sh(["git", "add", f"{target}.dvc"], root, env)
            results[mode].append(timed(["git", "commit", "-q", "-m", "change one"], root, env))
            if mode == "with":
                assert f"{target}.dvc.seal" in sh(
                    ["git", "show", "--name-only", "--format=", "HEAD"], root, env).stdout
                sh([PY, "-m", "dvc_secure.cli", "uninstall"], root, env)
            sh(["git", "reset", "-q", "--soft", "HEAD~1"], root, env)
            seal.write_bytes(original_seal)
            sh(["git", "reset", "-q", "--", f"{target}.dvc.seal"], root, env)
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {"wall_median_s": statistics.median(w for w, _ in runs),
                         "cpu_median_s": statistics.median(c for _, c in runs),
                         "runs": len(runs)}
    added_wall = summary["with"]["wall_median_s"] - summary["without"]["wall_median_s"]
    added_cpu = summary["with"]["cpu_median_s"] - summary["without"]["cpu_median_s"]
    doc = {"datasets": args.datasets, **summary, "added_wall_s": round(added_wall, 3),
           "added_cpu_s": round(added_cpu, 3), "target_s": 0.5, "cpus": os.cpu_count()}
    print(json.dumps(doc, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
