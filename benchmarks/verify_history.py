"""Scale of offline verification: ``python benchmarks/verify_history.py [--commits N] [--datasets M]``

Builds a git repository with N sealing commits spread over M datasets (metafiles and
validly signed, chained sidecars written directly, commits made with pygit2, so building
is fast), then times the real ``dvc-secure verify --all-revisions`` CLI over the whole
history, and ``dvc-secure verify`` of one new commit on top of it. Targets (issue 3):
1,000 commits over 50 datasets <= 5 s; one new commit <= 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pygit2

from dvc_secure.core.keys.identity import Identity, key_fingerprint
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import AccessMetadata, SealedOutput, Sidecar


def build(root: Path, commits: int, datasets: int) -> Identity:
    ident = Identity.generate()
    assert ident.signing is not None
    repo = pygit2.init_repository(str(root))
    sig = pygit2.Signature("Bench", "bench@example.invalid")
    ring = Keyring.create(ident, "bench", "2026-01-01T00:00:00Z")
    heads: dict[int, Sidecar] = {}
    files: dict[str, bytes] = {".dvc/secure/keyring.json": ring.to_json().encode(),
                               ".dvc/config": b""}
    parent: list[pygit2.Oid] = []
    keyid = key_fingerprint(ident.signing.public)
    for i in range(commits):
        d = i % datasets
        oid = f"{i:032x}.dir"
        meta = f"data/set{d:03d}.dvc"
        files[meta] = (f"outs:\n- md5: {oid}\n  size: {i}\n  nfiles: 3\n  hash: md5\n"
                       f"  path: set{d:03d}\n").encode()
        prev = heads.get(d)
        sc = Sidecar(
            metafile=meta, version=(prev.version + 1) if prev else 1,
            previous=(prev.digest,) if prev else (), sealed_at="2026-01-01T00:00:00Z",
            signer_keyid=keyid, git_author="Bench <bench@example.invalid>",
            outputs=(SealedOutput(f"set{d:03d}", oid, f"{i:064x}", i, 3, 1, "vault"),),
            access=AccessMetadata(),
        ).sign(ident.signing)
        heads[d] = sc
        files[meta + ".seal"] = sc.to_bytes()
        tree = _tree(repo, files)
        parent = [repo.create_commit("refs/heads/main", sig, sig, f"seal {i}", tree, parent)]
    repo.set_head("refs/heads/main")
    return ident


def _tree(repo: pygit2.Repository, files: dict[str, bytes]) -> pygit2.Oid:
    nested: dict[str, object] = {}
    for path, data in files.items():
        node = nested
        *dirs, name = path.split("/")
        for part in dirs:
            node = node.setdefault(part, {})  # type: ignore[assignment]
        node[name] = data

    def write(node: dict[str, object]) -> pygit2.Oid:
        tb = repo.TreeBuilder()
        for name, value in sorted(node.items()):
            if isinstance(value, dict):
                tb.insert(name, write(value), pygit2.GIT_FILEMODE_TREE)
            else:
                assert isinstance(value, bytes)
                tb.insert(name, repo.create_blob(value), pygit2.GIT_FILEMODE_BLOB)
        return tb.write()

    return write(nested)


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commits", type=int, default=1000)
    ap.add_argument("--datasets", type=int, default=50)
    ap.add_argument("--out", help="write JSON results here")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dvc-secure-verify-bench-") as tmp:
        root = Path(tmp) / "repo"
        t0 = time.perf_counter()
        build(root, args.commits, args.datasets)
        (root / ".dvc").mkdir(exist_ok=True)
        built = time.perf_counter() - t0
        env = dict(os.environ)
        cli = [sys.executable, "-m", "dvc_secure.cli.main", "verify"]
        # whole history, nothing cached (what CI does on a fresh runner)
        full = min(timed([*cli, "--all-revisions", "--no-cache"], root, env) for _ in range(3))
        # a developer's machine: history up to HEAD~1 already verified, then one new commit
        timed([*cli, "--rev", "HEAD~1"], root, env)
        one = min(timed([*cli, "--rev", "HEAD"], root, env) for _ in range(3))
    result = {
        "commits": args.commits, "datasets": args.datasets, "build_seconds": round(built, 2),
        "verify_all_seconds": round(full, 3), "verify_one_new_commit_seconds": round(one, 3),
        "targets": {"verify_all_seconds": 5.0, "verify_one_new_commit_seconds": 0.5},
    }
    result["pass"] = full <= 5.0 and one <= 0.5
    print(json.dumps(result, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
