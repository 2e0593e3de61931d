"""Latency the dvc-secure pre-commit hook adds to `git commit`.

A repository with N datasets (small files), all sealed and committed. One dataset is
changed (dvc add + dvc push) and staged; then `git commit` is timed with the hooks
installed (the hook seals the change and verifies the staged state) and without them
(same repository: the commit is undone with `git reset --soft HEAD~1` and the sidecar
restored between runs). Reports medians of wall time and of CPU time (user + sys of
git and its children: robust on a loaded machine), the load average around every run
(the machine may be shared), the first "with" run apart (it starts with empty caches in
the git directory, so the hook verifies HEAD's 100 datasets), and the CPU time of
importing the hook's modules alone. ``--instructions`` also counts the instructions of one
hook process with ``valgrind --tool=callgrind`` (load-independent; needs valgrind).

    python benchmarks/hook_latency.py [--datasets 100] [--runs 7] [--json out.json]
                                      [--instructions]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
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


def import_cpu(runs: int) -> dict[str, float]:
    """CPU time of a bare interpreter vs. one that imports what the pre-commit hook imports
    before it seals (load-independent: counts only this process's own CPU)."""
    code = "import dvc_secure.cli.hooks, dvc_secure.services.hook_checks, dvc_secure.services.sealing"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    base = [timed([PY, "-c", "pass"], Path.cwd(), env)[1] for _ in range(runs)]
    full = [timed([PY, "-c", code], Path.cwd(), env)[1] for _ in range(runs)]
    probe = "; import sys; print(*(m in sys.modules for m in ('dvc', 'pygit2', 'yaml', 'cryptography')))"
    loaded = subprocess.run([PY, "-c", code + probe], text=True, capture_output=True,
                            env=env).stdout.split()
    return {"python_startup_cpu_s": round(statistics.median(base), 3),
            "hook_imports_cpu_s": round(statistics.median(full) - statistics.median(base), 3),
            **{f"hook_imports_load_{m}": flag == "True"
               for m, flag in zip(("dvc", "pygit2", "yaml", "cryptography"), loaded, strict=False)}}


def instructions(root: Path, env: dict[str, str], target: str, seal: Path,
                 original_seal: bytes) -> int | None:
    """Instructions of one pre-commit hook process sealing the staged change (callgrind)."""
    if shutil.which("valgrind") is None:
        return None
    sh([PY, "-m", "dvc_secure.cli.main", "install"], root, env)
    try:
        counts = []
        for _ in range(2):  # the first run warms the caches, as a commit before it would
            seal.write_bytes(original_seal)
            sh(["git", "reset", "-q", "--", f"{target}.dvc.seal"], root, env)
            sh(["git", "add", f"{target}.dvc"], root, env)
            proc = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                                   PY, "-m", "dvc_secure.cli.hooks", "pre-commit"],
                                  cwd=root, env=env, text=True, capture_output=True)
            found = re.search(r"Collected : (\d+)", proc.stderr)
            counts.append(int(found.group(1)) if found else 0)
        return counts[-1] or None
    finally:
        seal.write_bytes(original_seal)
        sh(["git", "reset", "-q", "--", f"{target}.dvc.seal"], root, env)
        sh([PY, "-m", "dvc_secure.cli.main", "uninstall"], root, env)


def setup(base: Path, n: int) -> tuple[Path, dict[str, str]]:
    # PYTHONDONTWRITEBYTECODE: an installed package has its bytecode compiled; without it
    # every hook run would recompile the modules that changed since the last .pyc
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("GIT_", "DVC_SECURE_")) and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(HOME=str(base), XDG_CONFIG_HOME=str(base / ".config"), DVC_NO_ANALYTICS="1",
               DVC_SECURE_IDENTITY_FILE=str(base / "identity.txt"),
               GIT_AUTHOR_NAME="Bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="Bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    root = base / "repo"
    root.mkdir()
    sh(["git", "init", "-q"], root, env)
    sh([PY, "-m", "dvc", "init", "-q"], root, env)
    sh([PY, "-m", "dvc_secure.cli.main", "keygen"], root, env)
    sh([PY, "-m", "dvc", "remote", "add", "storage", str(base / "storage")], root, env)
    sh([PY, "-m", "dvc_secure.cli.main", "init", "--remote", "storage", "--member-name", "bench"],
       root, env)
    data = root / "data"
    data.mkdir()
    for i in range(n):
        (data / f"d{i:03}.csv").write_text(f"id,value\n{i},{i * i}\n")
    sh([PY, "-m", "dvc", "add", "-q", *[f"data/d{i:03}.csv" for i in range(n)]], root, env)
    sh([PY, "-m", "dvc", "push", "-q"], root, env)
    sh([PY, "-m", "dvc_secure.cli.main", "seal"], root, env)
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-q", "-m", f"{n} sealed datasets"], root, env)
    return root, env


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", type=int, default=100)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--instructions", action="store_true",
                    help="also count one hook process's instructions with valgrind (slow)")
    args = ap.parse_args()
    counted: int | None = None
    with tempfile.TemporaryDirectory(prefix="dvc-secure-hook-bench-") as tmp:
        root, env = setup(Path(tmp), args.datasets)
        target = "data/d042.csv"
        (root / target).write_text("id,value\n42,changed\n")
        sh([PY, "-m", "dvc", "add", "-q", target], root, env)
        sh([PY, "-m", "dvc", "push", "-q"], root, env)
        seal = root / f"{target}.dvc.seal"
        original_seal = seal.read_bytes()
        results: dict[str, list[tuple[float, float]]] = {"without": [], "with": []}
        loads: list[float] = []
        for i in range(args.runs * 2):
            mode = "with" if i % 2 else "without"  # interleaved: load hits both alike
            if mode == "with":
                sh([PY, "-m", "dvc_secure.cli.main", "install"], root, env)
            sh(["git", "add", f"{target}.dvc"], root, env)
            loads.append(os.getloadavg()[0])
            results[mode].append(timed(["git", "commit", "-q", "-m", "change one"], root, env))
            if mode == "with":
                assert f"{target}.dvc.seal" in sh(
                    ["git", "show", "--name-only", "--format=", "HEAD"], root, env).stdout
                sh([PY, "-m", "dvc_secure.cli.main", "uninstall"], root, env)
            sh(["git", "reset", "-q", "--soft", "HEAD~1"], root, env)
            seal.write_bytes(original_seal)
            sh(["git", "reset", "-q", "--", f"{target}.dvc.seal"], root, env)
        if args.instructions:
            counted = instructions(root, env, target, seal, original_seal)
    summary = {}
    for mode, runs in results.items():
        summary[mode] = {"wall_median_s": statistics.median(w for w, _ in runs),
                         "cpu_median_s": statistics.median(c for _, c in runs),
                         "runs": len(runs)}
    added_wall = summary["with"]["wall_median_s"] - summary["without"]["wall_median_s"]
    added_cpu = summary["with"]["cpu_median_s"] - summary["without"]["cpu_median_s"]
    doc = {"datasets": args.datasets, **summary, "added_wall_s": round(added_wall, 3),
           "added_cpu_s": round(added_cpu, 3), "target_s": 0.5, "goal_s": 0.4,
           # the first run with the hook: empty caches in the git dir (cold), not in the median
           "with_first_run": {"wall_s": round(results["with"][0][0], 3),
                              "cpu_s": round(results["with"][0][1], 3)},
           "cpus": os.cpu_count(),
           "load_1min": {"min": min(loads), "median": statistics.median(loads),
                         "max": max(loads)},
           **import_cpu(args.runs)}
    if args.instructions:
        doc["hook_process_instructions"] = counted
    print(json.dumps(doc, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
