"""``verify --deep`` vs ``restic check --read-data`` on the same data, in the same run.

    python benchmarks/deep_verify.py [--size-mib 2048] [--files 1] [--repeat 3]

Needs the ``restic`` binary (Debian: ``apt-get install restic``). Builds one dataset,
pushes and seals it to a local-directory secure remote, backs the same directory up with
restic into a local repository, then times, interleaved, ``dvc-secure verify --deep``
(download, authenticate, decrypt and SHA-256 every object against the sealed manifest),
``dvc-secure verify --remote`` (keyless: every stored ciphertext against the signed remote
index) and ``restic check --read-data`` (read and verify every pack). Target (issue 3): secure
is at least as fast (ratio secure/restic <= 1.0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="verify --deep vs restic check --read-data")
    ap.add_argument("--size-mib", type=int, default=2048, help="total dataset size")
    ap.add_argument("--files", type=int, default=1, help="number of files it is split into")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", help="where to build (default: a temporary directory)")
    ap.add_argument("--out", help="write JSON results here")
    args = ap.parse_args(argv)
    if shutil.which("restic") is None:
        print("restic is not installed (Debian: apt-get install restic)", file=sys.stderr)
        return 2
    base = Path(args.workdir or tempfile.mkdtemp(prefix="dvc-secure-deep-bench-"))
    repo, storage, restic_repo = base / "repo", base / "storage", base / "restic"
    repo.mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_SECURE_")}
    env.update(DVC_SECURE_IDENTITY_FILE=str(base / "identity.txt"), DVC_NO_ANALYTICS="1",
               RESTIC_PASSWORD="benchmark-only", GIT_AUTHOR_NAME="bench",
               GIT_AUTHOR_EMAIL="bench@example.invalid", GIT_COMMITTER_NAME="bench",
               GIT_COMMITTER_EMAIL="bench@example.invalid")
    py = sys.executable
    try:
        run(["git", "init", "-q"], repo, env)
        run([py, "-m", "dvc", "init", "-q"], repo, env)
        run([py, "-m", "dvc_secure.cli.main", "keygen"], repo, env)
        run([py, "-m", "dvc", "remote", "add", "storage", str(storage)], repo, env)
        run([py, "-m", "dvc_secure.cli.main", "init", "--remote", "storage"], repo, env)
        data = repo / "data"
        data.mkdir()
        per_file = (args.size_mib << 20) // args.files
        for i in range(args.files):
            with (data / f"part{i:05d}.bin").open("wb") as f:
                left = per_file
                while left:
                    n = min(left, 1 << 24)
                    f.write(os.urandom(n))
                    left -= n
        run([py, "-m", "dvc", "add", "-q", "data"], repo, env)
        run([py, "-m", "dvc", "push", "-q"], repo, env)
        run([py, "-m", "dvc_secure.cli.main", "seal", "data"], repo, env)
        run(["git", "add", "-A"], repo, env)
        run(["git", "commit", "-q", "-m", "data"], repo, env)
        run(["restic", "-q", "-r", str(restic_repo), "init"], base, env)
        run(["restic", "-q", "-r", str(restic_repo), "backup", str(data)], base, env)
        secure_t, restic_t, remote_t = [], [], []
        for _ in range(args.repeat):
            secure_t.append(run([py, "-m", "dvc_secure.cli.main", "verify", "--deep"], repo, env))
            # keyless: every stored ciphertext against the signed remote index (no key)
            remote_t.append(run([py, "-m", "dvc_secure.cli.main", "verify", "--remote"], repo, env))
            restic_t.append(run(["restic", "-q", "-r", str(restic_repo), "check", "--read-data"],
                                base, env))
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    s, r = statistics.median(secure_t), statistics.median(restic_t)
    result = {
        "size_mib": args.size_mib, "files": args.files, "repeat": args.repeat,
        "verify_deep_seconds": round(s, 2), "restic_check_read_data_seconds": round(r, 2),
        "ratio_secure_over_restic": round(s / r, 3), "target_ratio": 1.0,
        "pass": s <= r,
        "verify_remote_seconds": round(statistics.median(remote_t), 2),
        "ratio_remote_over_restic": round(statistics.median(remote_t) / r, 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
