"""SIGKILL at a random point of every command that writes: ``dvc push``, ``dvc pull``,
``dvc-secure seal``, ``dvc-secure rotate --reencrypt`` and the audit upload.

Each trial is seeded (the seed is in the test id): the seed picks after how many objects
(or after what delay) the real process is killed with SIGKILL. ``slowed.py`` pauses after
each object so that the kill lands inside the work rather than after it. After every kill:
a fresh clone's ``dvc pull`` yields only exact bytes and no partial file, the documented
recovery completes, nothing committed is lost and ``dvc-secure verify --remote`` passes.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import textwrap
import time

import pytest

from tests.conftest import SecureRepo, run
from tests.faults.fault_helpers import (
    AUDIT_SEAL,
    DATA,
    DOWNLOAD,
    HASH_FILE,
    PUBLISH_RECORDS,
    REENCRYPT,
    SEEDS,
    UPLOAD,
    assert_cache_sound,
    assert_workspace_exact,
    cached_objects,
    commit_all,
    fresh_clone,
    kill_when,
    launch,
    lines,
    partial_files,
    pull_into_fresh_clone,
    seed_id,
    stored_objects,
    verify_remote,
    write_files,
)
from tests.integration.secure_helpers import storage_path

N_OBJECTS = len(DATA) + 1  # the files and the directory listing


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_dvc_push_then_rerun_recovers(dataset_repo: SecureRepo,
                                                     seed: int) -> None:
    repo = dataset_repo
    k = random.Random(seed).randint(1, N_OBJECTS - 2)
    proc = launch(repo, "dvc", "push", "-j", "2", slow={UPLOAD: 0.15})
    assert kill_when(proc, lambda: len(stored_objects(repo.storage)) >= k)
    assert k <= len(stored_objects(repo.storage)) < N_OBJECTS

    # whatever reached the storage: a pull gets exact bytes or nothing, never a prefix
    pull_into_fresh_clone(repo, DATA, "before-recovery", complete=False)

    pushed = repo.dvc("push")  # the recovery: run it again
    assert "Everything is up to date" not in pushed.stdout, pushed.stdout
    assert len(stored_objects(repo.storage)) == N_OBJECTS
    repo.secure("seal", "data")
    commit_all(repo, "sealed after the interrupted push")
    verify_remote(repo)
    pull_into_fresh_clone(repo, DATA, "after-recovery")


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_dvc_pull_then_rerun_recovers(sealed_repo: SecureRepo,
                                                     seed: int) -> None:
    clone = fresh_clone(sealed_repo, "puller")
    k = random.Random(seed).randint(1, N_OBJECTS - 2)
    proc = launch(clone, "dvc", "pull", "-j", "2", slow={DOWNLOAD: 0.15})
    assert kill_when(proc, lambda: len(cached_objects(clone)) >= k)
    assert len(cached_objects(clone)) < N_OBJECTS
    # nothing half-written is taken for data: the cache holds exact objects only, the
    # workspace only exact files
    assert_cache_sound(clone)
    assert_workspace_exact(clone, DATA, complete=False)

    print(f"pull, seed {seed}: killed after {len(cached_objects(clone))} object(s); "
          f"partial files in the cache: {len(partial_files(clone.root / '.dvc'))}")
    clone.dvc("pull")  # the recovery: run it again
    assert_cache_sound(clone)
    assert_workspace_exact(clone, DATA)
    assert "up to date" in clone.dvc("status").stdout.lower()
    # a killed download may leave its temporary file (never under an object's name) in
    # the cache; the workspace never has one
    assert not partial_files(clone.root / "data")
    verify_remote(clone, "--all-revisions")


_SEAL_DELAY = (0.3, 1.8)  # the pauses below stretch seal beyond 1.8 s


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_seal_then_rerun_recovers(dataset_repo: SecureRepo, seed: int) -> None:
    repo = dataset_repo
    repo.dvc("push", "-q")
    delay = random.Random(seed).uniform(*_SEAL_DELAY)
    proc = launch(repo, "dvc-secure", "seal", "data",
                  slow={HASH_FILE: 0.1, UPLOAD: 0.3})
    start = time.monotonic()
    assert kill_when(proc, lambda: time.monotonic() - start >= delay)
    print(f"seal, seed {seed}: killed after {delay:.2f} s")  # shown with -s
    sidecar = repo.root / "data.dvc.seal"
    if sidecar.exists():  # written atomically: if there, complete (the rerun parses it)
        assert sidecar.read_bytes().strip(), "empty sidecar"

    repo.secure("seal", "data")  # the recovery: run it again
    commit_all(repo, "sealed after the interrupted seal")
    verify_remote(repo)
    pull_into_fresh_clone(repo, DATA, "after-recovery")


def _epochs_of_objects(repo: SecureRepo) -> list[int]:
    from dvc_secure.core.format.object_format import read_header

    out = []
    for path in stored_objects(repo.storage):
        with path.open("rb") as f:
            out.append(read_header(f).epoch)
    return out


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_rotate_reencrypt_then_reencrypt_recovers(sealed_repo: SecureRepo,
                                                                 seed: int) -> None:
    repo = sealed_repo
    journal = repo.root / ".git" / "dvc-secure" / "reencrypt-epoch-2.jsonl"
    n = len(stored_objects(repo.storage))  # files, listing and the sealed manifest
    k = random.Random(seed).randint(1, n - 2)
    proc = launch(repo, "dvc-secure", "rotate", "--reencrypt", slow={REENCRYPT: 0.15})
    assert kill_when(proc, lambda: lines(journal) >= k)
    epochs = _epochs_of_objects(repo)
    assert 1 in epochs, "the kill came too late: every object was already re-encrypted"

    # mid-way every object is its old or its new ciphertext: this clone (which has the new
    # keyring) pulls everything exactly into an empty cache
    shutil.rmtree(repo.root / ".dvc" / "cache")
    shutil.rmtree(repo.root / "data")
    repo.dvc("pull", "-q")
    assert_cache_sound(repo)
    assert_workspace_exact(repo, DATA)

    out = repo.secure("reencrypt").stdout  # the documented recovery
    assert "already at epoch 2" in out, out
    assert set(_epochs_of_objects(repo)) == {2}
    assert not list((repo.storage / "dvc-secure" / "reencrypt-tmp").rglob("*"))
    repo.git("add", ".dvc/secure/keyring.json", ".dvc/secure/reencrypted/")
    repo.git("commit", "-q", "-m", "rotate, re-encrypt")
    verify_remote(repo, "--all-revisions")
    pull_into_fresh_clone(repo, DATA, "after-recovery")


_QUEUE_EVENTS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dvc_secure.services.audit_recorder import record_event
    for i in range(int(sys.argv[1])):
        record_event(Path("."), "verify", datasets=["data"], details={"trial": i})
""")


def _event_files(repo: SecureRepo) -> list[str]:
    root = repo.storage / "dvc-secure" / "audit"
    return sorted(p.name for p in root.rglob("*.evt")) if root.exists() else []


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_audit_upload_then_rerun_recovers(sealed_repo: SecureRepo,
                                                         seed: int) -> None:
    repo = sealed_repo
    repo.secure("audit")  # upload what the template's commands queued
    before = len(_event_files(repo))
    queued = 12
    run([sys.executable, "-c", _QUEUE_EVENTS, str(queued)], repo.root, repo.env)
    k = random.Random(seed).randint(1, queued - 2)
    proc = launch(repo, "dvc-secure", "audit", slow={AUDIT_SEAL: 0.15})
    assert kill_when(proc, lambda: len(_event_files(repo)) >= before + k)
    assert len(_event_files(repo)) < before + queued

    print(f"audit, seed {seed}: killed after {len(_event_files(repo)) - before} event(s); "
          f"partial uploads: {len(list(repo.storage.rglob('*.partial-*')))}")
    out = repo.secure("audit").stdout + repo.secure("audit").stderr  # the recovery: again
    assert "not yet uploaded" not in out, out
    assert len(_event_files(repo)) == before + queued  # each event once, none lost
    proc = repo.secure("audit", "--verify", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    verify_remote(repo, "--all-revisions")


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_of_repush_before_its_upload_record_then_repair_recovers(
        sealed_repo: SecureRepo, seed: int) -> None:
    """Objects of a sealed revision were lost; their re-push (new ciphertext: new salts)
    is killed after the uploads, before it writes their signed upload record at exit."""
    repo = sealed_repo
    rnd = random.Random(seed)
    # file objects only (the sealed manifest is not DVC's to re-push: repair's case)
    objects = [storage_path(repo, hashlib.md5(DATA[rel]).hexdigest()) for rel in sorted(DATA)]
    lost = rnd.sample(objects, rnd.randint(2, 6))
    listing = storage_path(repo, next(
        w for w in (repo.root / "data.dvc").read_text().split() if w.endswith(".dir")))
    lost = sorted(set(lost) | {listing})  # DVC re-pushes files only of a missing listing
    for path in lost:
        path.unlink()
    records = repo.storage / "dvc-secure" / "uploads"
    before = sorted(records.glob("*.json")) if records.exists() else []
    proc = launch(repo, "dvc", "push", slow={UPLOAD: 0.05, PUBLISH_RECORDS: -3})
    # killed once every lost object is back, before the exit-time record is written
    assert kill_when(proc, lambda: all(p.exists() for p in lost))
    assert (sorted(records.glob("*.json")) if records.exists() else []) == before

    found = repo.secure("verify", "--remote", check=False)
    assert found.returncode == 1 and "repair" in found.stdout, found.stdout + found.stderr
    pull_into_fresh_clone(repo, DATA, "before-recovery", complete=False)

    out = repo.secure("repair", "--all-revisions")  # the documented recovery
    assert "complete" in out.stdout, out.stdout
    verify_remote(repo, "--all-revisions")
    pull_into_fresh_clone(repo, DATA, "after-recovery")


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_dvc_push_exit_audit_upload_then_rerun_recovers(
        sealed_repo: SecureRepo, seed: int) -> None:
    """The audit events a push uploads at its exit (its own and those queued before)."""
    repo = sealed_repo
    repo.secure("audit")
    before = len(_event_files(repo))
    queued = 10
    run([sys.executable, "-c", _QUEUE_EVENTS, str(queued)], repo.root, repo.env)
    write_files(repo, {"data/new.bin": random.Random(seed).randbytes(50_000)})
    repo.dvc("add", "-q", "data")
    k = random.Random(seed).randint(1, queued - 2)
    proc = launch(repo, "dvc", "push", slow={AUDIT_SEAL: 0.15})
    assert kill_when(proc, lambda: len(_event_files(repo)) >= before + k)
    assert len(_event_files(repo)) < before + queued

    repo.dvc("push")  # the recovery: run it again (its exit uploads what is still queued)
    out = repo.secure("audit")
    assert "not yet uploaded" not in out.stdout + out.stderr, out.stdout + out.stderr
    assert len(_event_files(repo)) >= before + queued + 1  # + the push's own event(s)
    proc = repo.secure("audit", "--verify", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    repo.secure("seal", "data")
    commit_all(repo, "new file")
    verify_remote(repo, "--all-revisions")
    pull_into_fresh_clone(repo, {**DATA, "data/new.bin": (repo.root / "data/new.bin").read_bytes()},
                          "after-recovery")
