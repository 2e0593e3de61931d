"""SIGKILL at a random point of every command that writes: ``dvc push``, ``dvc pull``,
``dvc-secure seal``, ``dvc-secure rotate --reencrypt`` and the audit upload.

Each trial is seeded (the seed is in the test id): the seed picks after how many objects
(or after what delay) the real process is killed with SIGKILL. ``slowed.py`` pauses after
each object so that the kill lands inside the work rather than after it. After every kill:
a fresh clone's ``dvc pull`` yields only exact bytes and no partial file, the documented
recovery completes, nothing committed is lost and ``dvc-secure verify --remote`` passes.
"""

from __future__ import annotations

import random
import shutil
import signal
import textwrap

import pytest

from tests.conftest import SecureRepo, run
from tests.faults.fault_helpers import (
    AUDIT_SEAL,
    DATA,
    DOWNLOAD,
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
)

N_OBJECTS = len(DATA) + 1  # the files and the directory listing


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_sigkill_during_dvc_push_then_rerun_recovers(dataset_repo: SecureRepo,
                                                     seed: int) -> None:
    repo = dataset_repo
    k = random.Random(seed).randint(1, N_OBJECTS - 2)
    proc = launch(repo, "dvc", "push", "-j", "2", slow={UPLOAD: 0.15})
    assert kill_when(proc, lambda: len(stored_objects(repo.storage)) >= k), proc.stderr
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
