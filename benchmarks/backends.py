"""Plain vs ``secure://`` over SSH and S3 through loopback servers (issue 6, dataset C).

    python benchmarks/backends.py [--files 200] [--file-mib 5] [--repeat 3] [--backends ssh,s3]

Starts a real OpenSSH server and a moto S3 server on 127.0.0.1 (the same helpers the
backend tests use; run ``bash ci/servers/install.sh`` once), then for each backend times
``dvc push`` and ``dvc pull`` (fresh cache) of the same data through a plain remote and a
``secure://`` remote over a second location of the same backend, interleaved in pairs.
Reports median wall seconds and the median paired ratio secure/plain (target <= 1.10).
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.backends.servers import start_moto, start_sshd  # noqa: E402
from tests.integration.backends.stores import S3Store, SSHStore, Store  # noqa: E402


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - start


def add_remote(repo: Path, env: dict[str, str], name: str, store: Store) -> None:
    dvc = [sys.executable, "-m", "dvc"]
    run([*dvc, "remote", "add", name, store.url], repo, env)
    for key, value in store.options.items():
        run([*dvc, "remote", "modify", name, key, str(value)], repo, env)
    for key, value in store.credentials.items():
        run([*dvc, "remote", "modify", "--local", name, key, str(value)], repo, env)


def bench_backend(kind: str, make_store: Any, base: Path, files: int, file_mib: int,
                  repeat: int, env: dict[str, str]) -> dict[str, Any]:
    repo = base / f"repo-{kind}"
    repo.mkdir()
    env = {**env, "DVC_SECURE_IDENTITY_FILE": str(base / f"identity-{kind}.txt")}
    dvc = [sys.executable, "-m", "dvc"]
    run(["git", "init", "-q"], repo, env)
    run([*dvc, "init", "-q"], repo, env)
    run([sys.executable, "-m", "dvc_secure.cli.main", "keygen"], repo, env)
    plain, inner = make_store(), make_store()
    add_remote(repo, env, "storage", plain)
    add_remote(repo, env, "secure-inner", inner)
    run([sys.executable, "-m", "dvc_secure.cli.main", "init", "--remote", "secure-inner"], repo, env)
    # plain and secure remotes side by side on purpose: the admin unpins the remotes
    run([sys.executable, "-m", "dvc_secure.cli.main", "remote-policy", "--unpin"], repo, env)
    data = repo / "data"
    data.mkdir()
    for i in range(files):
        (data / f"{i:05d}.bin").write_bytes(os.urandom(file_mib << 20))
    run([*dvc, "add", "-q", "data"], repo, env)
    times: dict[str, dict[str, list[float]]] = {v: {"push": [], "pull": []} for v in ("plain", "secure")}
    for _ in range(repeat):
        for variant, remote, store in (("plain", "storage", plain), ("secure", "vault", inner)):
            store.wipe()
            for state in (repo / ".dvc" / "tmp" / "index", repo / ".dvc" / "tmp" / "secure"):
                shutil.rmtree(state, ignore_errors=True)
            times[variant]["push"].append(run([*dvc, "push", "-q", "-r", remote], repo, env))
            if len(store.keys()) < files + 1:
                raise SystemExit(f"{kind} {variant}: push stored too few objects")
            shutil.rmtree(repo / ".dvc" / "cache")
            shutil.rmtree(data)
            shutil.rmtree(repo / ".dvc" / "tmp" / "index", ignore_errors=True)
            times[variant]["pull"].append(run([*dvc, "pull", "-q", "-r", remote], repo, env))
    out: dict[str, Any] = {}
    for op in ("push", "pull"):
        p, s = times["plain"][op], times["secure"][op]
        ratio = statistics.median(b / a for a, b in zip(p, s, strict=True))
        out[op] = {"plain_s": round(statistics.median(p), 2), "secure_s": round(statistics.median(s), 2),
                   "ratio": round(ratio, 3), "target": 1.10,
                   "status": "PASS" if ratio <= 1.10 else "MISS"}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="plain vs secure:// over SSH and S3 (loopback)")
    ap.add_argument("--files", type=int, default=200)
    ap.add_argument("--file-mib", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default="ssh,s3")
    ap.add_argument("--out", help="write JSON results here")
    args = ap.parse_args(argv)
    base = Path(tempfile.mkdtemp(prefix="dvc-secure-backend-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DVC_SECURE_")}
    env.update(DVC_SECURE_IDENTITY_FILE=str(base / "identity.txt"), DVC_NO_ANALYTICS="1",
               GIT_AUTHOR_NAME="bench", GIT_AUTHOR_EMAIL="bench@example.invalid",
               GIT_COMMITTER_NAME="bench", GIT_COMMITTER_EMAIL="bench@example.invalid")
    results: dict[str, Any] = {"files": args.files, "file_mib": args.file_mib,
                               "repeat": args.repeat}
    servers = []
    try:
        for kind in args.backends.split(","):
            if kind == "ssh":
                server = start_sshd(base / "sshd")
                store_root = base / "ssh-stores"
                store_root.mkdir()
                servers.append(server)
                results["ssh"] = bench_backend("ssh", lambda s=server, r=store_root: SSHStore(s, r),
                                               base, args.files, args.file_mib, args.repeat, env)
            elif kind == "s3":
                server = start_moto(base / "moto")
                servers.append(server)
                results["s3"] = bench_backend("s3", lambda s=server: S3Store(s), base,
                                              args.files, args.file_mib, args.repeat, env)
            else:
                raise SystemExit(f"unknown backend {kind}")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
