"""Two writers at once, through real processes: two clones pushing to one storage (and
sealing, committing and pushing git through one bare repository), and two commands in one
clone sharing its push journal (SQLite) and caches.

Each trial is seeded (seed in the test id): the seed picks the new data and how long each
process pauses after an object, so the two runs interleave differently.
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_secure.adapters.local.push_journal import journal_path
from tests.conftest import SecureRepo, run
from tests.faults.fault_helpers import (
    DATA,
    SEEDS,
    UPLOAD,
    commit_all,
    launch,
    pull_into_fresh_clone,
    seed_id,
    verify_remote,
    write_files,
)


def _finish(*procs) -> None:  # type: ignore[no-untyped-def]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{proc.args} exited {proc.returncode}\n{out}\n{err}"
        assert "Traceback" not in err, err


def _new_files(rnd: random.Random, top: str, n: int, shared: bytes) -> dict[str, bytes]:
    files = {f"{top}/f-{i}.bin": rnd.randbytes(rnd.randint(10_000, 120_000)) for i in range(n)}
    files[f"{top}/shared.bin"] = shared  # the same object, uploaded by both at once
    return files


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_two_clones_pushing_to_one_storage_at_once_lose_nothing(sealed_repo: SecureRepo,
                                                                 seed: int) -> None:
    rnd = random.Random(seed)
    a = sealed_repo
    origin = a.root.parent / "origin.git"
    run(["git", "init", "-q", "--bare", str(origin)], a.root.parent, a.env)
    a.git("remote", "add", "origin", str(origin))
    a.git("push", "-q", "origin", "HEAD:main")
    run(["git", "clone", "-q", "-b", "main", str(origin), str(a.root.parent / "clone-b")],
        a.root.parent, a.env)
    b = SecureRepo(root=a.root.parent / "clone-b", storage=a.storage,
                   identity_file=a.identity_file, env=dict(a.env))
    a.git("branch", "-q", "-u", "origin/main")

    shared = rnd.randbytes(200_000)
    # each in its own directory, so the .gitignore files DVC writes do not conflict
    files_a = _new_files(rnd, "team-a/data", 8, shared)
    files_b = _new_files(rnd, "team-b/data", 8, shared)
    write_files(a, files_a)
    write_files(b, files_b)
    a.dvc("add", "-q", "team-a/data")
    b.dvc("add", "-q", "team-b/data")

    _finish(launch(a, "dvc", "push", slow={UPLOAD: rnd.uniform(0, 0.1)}),
            launch(b, "dvc", "push", slow={UPLOAD: rnd.uniform(0, 0.1)}))
    _finish(launch(a, "dvc-secure", "seal", "team-a/data"),
            launch(b, "dvc-secure", "seal", "team-b/data"))
    commit_all(a, "data-a")
    commit_all(b, "data-b")
    a.git("push", "-q", "origin", "HEAD:main")
    rejected = b.git("push", "-q", "origin", "HEAD:main", check=False)
    assert rejected.returncode != 0  # a's push won: b merges, then pushes
    b.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")
    b.git("push", "-q", "origin", "HEAD:main")
    a.git("pull", "-q", "--no-rebase", "--no-edit", "origin", "main")

    everything = {**DATA, **files_a, **files_b}
    pull_into_fresh_clone(a, everything, "fresh")
    verify_remote(a, "--all-revisions")
    verify_remote(b, "--all-revisions")
    # each clone uploads its own events; both chains are intact, seen from either side
    _finish(launch(a, "dvc-secure", "audit"), launch(b, "dvc-secure", "audit"))
    for repo in (a, b):
        proc = repo.secure("audit", "--verify", check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    chains = {p.parent.name for p in (a.storage / "dvc-secure" / "audit").rglob("*.evt")}
    assert len(chains) >= 2, chains


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_dvc_push_while_seal_runs_in_the_same_clone_share_the_journal(
        sealed_repo: SecureRepo, seed: int) -> None:
    rnd = random.Random(seed)
    repo = sealed_repo
    data, other = dict(DATA), {}
    for rnd_round in range(2):
        data[f"data/round-{rnd_round}.bin"] = rnd.randbytes(rnd.randint(10_000, 300_000))
        for i in range(6):
            other[f"other/r{rnd_round}-{i}.bin"] = rnd.randbytes(rnd.randint(10_000, 100_000))
        write_files(repo, data)
        write_files(repo, other)
        repo.dvc("add", "-q", "data", "other")
        repo.dvc("push", "-q", "data.dvc")
        # while `other` is being pushed (journal rows written), `data` is sealed (journal read)
        _finish(launch(repo, "dvc", "push", "other.dvc", slow={UPLOAD: rnd.uniform(0, 0.1)}),
                launch(repo, "dvc-secure", "seal", "data"))
        repo.secure("seal", "other")
        commit_all(repo, f"round {rnd_round}")

    db = sqlite3.connect(str(journal_path(repo.root / ".dvc")))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT COUNT(*) FROM stored").fetchone()[0] > 0
    finally:
        db.close()
    verify_remote(repo, "--all-revisions")
    pull_into_fresh_clone(repo, {**data, **other}, "fresh")


@pytest.mark.parametrize("seed", SEEDS, ids=seed_id)
def test_dvc_push_while_pre_commit_hook_seals_in_the_same_clone(
        sealed_repo: SecureRepo, seed: int) -> None:
    """The same, with the installed pre-commit hook sealing inside ``git commit``."""
    rnd = random.Random(seed)
    repo = sealed_repo
    repo.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{repo.env.get('PATH', '')}"
    repo.secure("install")
    data = dict(DATA, **{"data/hooked.bin": rnd.randbytes(rnd.randint(10_000, 300_000))})
    other = {f"other/h-{i}.bin": rnd.randbytes(rnd.randint(10_000, 100_000)) for i in range(6)}
    write_files(repo, data)
    write_files(repo, other)
    repo.dvc("add", "-q", "data", "other")
    repo.dvc("push", "-q", "data.dvc")
    repo.git("add", "data.dvc", ".gitignore")
    commit = subprocess.Popen(["git", "commit", "-q", "-m", "data v2 (hook seals)"],
                              cwd=repo.root, env=repo.env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    _finish(launch(repo, "dvc", "push", "other.dvc", slow={UPLOAD: rnd.uniform(0, 0.1)}),
            commit)
    assert repo.git("show", "--name-only", "HEAD").stdout.count("data.dvc.seal") == 1
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "other (hook seals)")
    assert "other.dvc.seal" in repo.git("show", "--name-only", "HEAD").stdout

    db = sqlite3.connect(str(journal_path(repo.root / ".dvc")))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    verify_remote(repo, "--all-revisions")
    pull_into_fresh_clone(repo, {**data, **other}, "fresh")
