"""The storage fails under a running ``dvc push``: it becomes read-only, or it fills up.

The storage is a real filesystem of its own: a tmpfs mounted at the wrapped remote's
directory (the tests run as root, and root ignores permission bits, so ``chmod a-w`` would
prove nothing). Read-only: the push is held after a seeded number of objects
(``slowed.py``'s FAULT_PAUSE), the tmpfs is remounted read-only, and the push goes on.
Full: the tmpfs is smaller than the dataset. Then the storage is made writable / given room
(remount), and the documented recovery is to run ``dvc push`` again.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SecureRepo
from tests.faults.fault_helpers import (
    DATA,
    SEEDS,
    UPLOAD,
    commit_all,
    launch,
    pull_into_fresh_clone,
    seed_id,
    stored_objects,
    verify_remote,
)

N_OBJECTS = len(DATA) + 1


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


@pytest.fixture
def tmpfs_storage(dataset_repo: SecureRepo) -> Iterator[Path]:
    """The repository's wrapped storage directory as a 64 MiB tmpfs (remount to change)."""
    path = dataset_repo.storage
    path.mkdir()
    proc = _mount("-t", "tmpfs", "-o", "size=64m", "tmpfs", str(path))
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs for the storage (needs root/CAP_SYS_ADMIN): "
                    f"{proc.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _remount(path: Path, option: str) -> None:
    proc = _mount("-o", f"remount,{option}", str(path))
    assert proc.returncode == 0, proc.stderr


def _recover_and_check(repo: SecureRepo) -> None:
    """After the storage works again: `dvc push` completes, seal, verify, a fresh pull."""
    repo.dvc("push")
    assert len(stored_objects(repo.storage)) == N_OBJECTS
    repo.secure("seal", "data")
    commit_all(repo, "sealed after the storage failure")
    verify_remote(repo)
    pull_into_fresh_clone(repo, DATA, "after-recovery")


def _failed_clearly(stderr: str, cause: str) -> None:
    """The push failed, said why (the OS error, per object) and what to do."""
    assert "failed to push data to the cloud" in stderr, stderr
    assert cause in stderr, stderr
    assert "a failed upload leaves no partial object" in stderr, stderr
    assert "run 'dvc push' again" in stderr, stderr
    assert "Traceback" not in stderr, stderr


def _no_partial_object(repo: SecureRepo) -> None:
    leftovers = [p for p in repo.storage.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert not leftovers, f"temporary uploads left behind: {leftovers}"
    pull_into_fresh_clone(repo, DATA, "before-recovery", complete=False)


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_storage_read_only_mid_push_fails_clearly_then_rerun_push_recovers(
        dataset_repo: SecureRepo, tmpfs_storage: Path, tmp_path: Path, seed: int) -> None:
    repo = dataset_repo
    k = random.Random(seed).randint(1, N_OBJECTS - 2)
    gate = tmp_path / "gate"
    gate.mkdir()
    env = dict(repo.env, FAULT_PAUSE=f"{UPLOAD}={k}", FAULT_PAUSE_DIR=str(gate))
    proc = launch(repo, "dvc", "push", "-j", "1", env=env)
    deadline = time.monotonic() + 120
    while not (gate / "paused").exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    _remount(tmpfs_storage, "ro")
    (gate / "go").touch()
    _, err = proc.communicate(timeout=120)
    _failed_clearly(err, "Read-only file system")
    assert len(stored_objects(repo.storage)) == k
    _no_partial_object(repo)
    _remount(tmpfs_storage, "rw")
    _recover_and_check(repo)


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_storage_full_mid_push_fails_clearly_then_rerun_push_recovers(
        dataset_repo: SecureRepo, tmpfs_storage: Path, seed: int) -> None:
    repo = dataset_repo
    # room for part of the dataset (2.7 MB of objects): the seed picks how much
    _remount(tmpfs_storage, f"size={random.Random(seed).randint(600, 1600)}k")
    proc = repo.dvc("push", "-j", "1", check=False)
    _failed_clearly(proc.stderr, "No space left on device")
    assert 0 < len(stored_objects(repo.storage)) < N_OBJECTS
    _no_partial_object(repo)
    _remount(tmpfs_storage, "size=64m")
    _recover_and_check(repo)
