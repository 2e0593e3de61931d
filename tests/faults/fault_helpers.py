"""Helpers for the fault tests: launching real commands, killing them at a chosen point,
and checking what a fresh clone pulls."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import SecureRepo, run
from tests.integration.conftest import write_files as write_files  # re-exported for the fault tests

SEEDS = [1, 2, 3]
SLOWED = str(Path(__file__).with_name("slowed.py"))
UPLOAD = "dvc_secure.adapters.dvc.secure_fsspec:SecureFsspec.upload_stream"
DOWNLOAD = "dvc_secure.adapters.dvc.secure_fsspec:SecureFsspec.get_file"
HASH_FILE = "dvc_secure.services.sealing:CacheReader.sha256"
PUBLISH_RECORDS = "dvc_secure.services.upload_records:publish_pending"
REENCRYPT = "dvc_secure.services.reencrypt:_Reencryptor.reencrypt"
AUDIT_SEAL = "dvc_secure.services.audit_recorder:seal_event"


def _data() -> dict[str, bytes]:
    rnd = random.Random(1414)
    files = {f"data/part-{i:02d}.bin": rnd.randbytes(rnd.randint(20_000, 160_000))
             for i in range(15)}
    files["data/big.bin"] = rnd.randbytes((1 << 20) + 300_000)  # two encryption segments
    return files


DATA = _data()


def seed_id(seed: int) -> str:
    return f"seed-{seed}"


def launch(repo: SecureRepo, tool: str, *args: str, slow: dict[str, float] | None = None,
           env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start ``dvc``/``dvc-secure`` ``args`` as a real process (see slowed.py)."""
    env = dict(env or repo.env)
    env["FAULT_SLOW"] = ",".join(f"{k}={v}" for k, v in (slow or {}).items())
    return subprocess.Popen([sys.executable, SLOWED, tool, *args], cwd=repo.root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(proc: subprocess.Popen[str], ready: Callable[[], bool],
              timeout: float = 120) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; fails (showing its output) if it ended on
    its own first: then the fault never happened."""
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "the command neither finished nor got there"
            time.sleep(0.005)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (
        f"{proc.args} ended (exit {proc.returncode}) before the kill\n{out}\n{err}")
    return True


def stored_objects(storage: Path) -> list[Path]:
    """Complete data objects in the wrapped storage (not dvc-secure's own files, not the
    temporary files a local upload writes before its rename)."""
    if not storage.exists():
        return []
    return [p for p in storage.rglob("*") if p.is_file() and not p.name.endswith(".tmp")
            and "dvc-secure" not in p.relative_to(storage).parts]


def lines(path: Path) -> int:
    try:
        return len([ln for ln in path.read_bytes().splitlines() if ln.strip()])
    except FileNotFoundError:
        return 0


def cached_objects(repo: SecureRepo) -> list[Path]:
    md5 = repo.root / ".dvc" / "cache" / "files" / "md5"
    return [p for p in md5.rglob("*") if p.is_file()] if md5.exists() else []


def assert_cache_sound(repo: SecureRepo) -> None:
    """Every file DVC would take for a cached object is exactly that object (a leftover
    temporary file is named so that DVC never takes it for one)."""
    for path in cached_objects(repo):
        oid = path.parent.name + path.name
        if len(path.parent.name) != 2 or not all(c in "0123456789abcdef." for c in path.name) \
                or len(path.name) not in (30, 34):
            continue  # not an object name: DVC ignores it
        data = path.read_bytes()
        if oid.endswith(".dir"):
            assert hashlib.md5(data).hexdigest() == oid[:-4], f"bad listing cached as {oid}"
            json.loads(data)
        else:
            assert hashlib.md5(data).hexdigest() == oid, f"bad data cached as {oid}"


def partial_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and ".dvcsecure-partial-" in p.name
            and ".git" not in p.relative_to(root).parts[:1]]


def assert_workspace_exact(repo: SecureRepo, files: dict[str, bytes],
                           complete: bool = True) -> None:
    """What is in the workspace is exactly the original (and, if ``complete``, all of it)."""
    for rel, content in files.items():
        path = repo.root / rel
        if path.exists():
            assert path.read_bytes() == content, f"wrong bytes in {rel}"
        else:
            assert not complete, f"{rel} is missing"
    for name in {rel.rsplit("/", 1)[0] for rel in files}:  # the (flat) dataset directories
        for path in (repo.root / name).rglob("*") if (repo.root / name).is_dir() else []:
            if path.is_file():
                rel = path.relative_to(repo.root).as_posix()
                assert rel in files, f"unexpected file {rel} in the workspace"
    for name in {rel.rsplit("/", 1)[0] for rel in files}:
        if (repo.root / name).is_dir():
            assert not partial_files(repo.root / name), "a partial file in the workspace"


def fresh_clone(repo: SecureRepo, name: str) -> SecureRepo:
    """A git clone beside ``repo`` (so ``../storage`` is the same storage), same identity."""
    dest = repo.root.parent / name
    shutil.rmtree(dest, ignore_errors=True)
    run(["git", "clone", "-q", str(repo.root), str(dest)], repo.root.parent, repo.env)
    return SecureRepo(root=dest, storage=repo.storage, identity_file=repo.identity_file,
                      env=dict(repo.env))


def pull_into_fresh_clone(repo: SecureRepo, files: dict[str, bytes], name: str,
                          complete: bool = True) -> subprocess.CompletedProcess[str]:
    """``dvc pull`` of HEAD into a new clone with an empty cache: never wrong bytes, never a
    partial file; with ``complete``, everything comes back exactly."""
    clone = fresh_clone(repo, name)
    proc = clone.dvc("pull", check=complete)
    assert_cache_sound(clone)
    assert_workspace_exact(clone, files, complete=complete)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def verify_remote(repo: SecureRepo, *args: str) -> None:
    """``dvc-secure verify --remote`` (HEAD unless ``args`` say otherwise) exits 0."""
    proc = repo.secure("verify", "--remote", *args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def commit_all(repo: SecureRepo, message: str) -> None:
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)
