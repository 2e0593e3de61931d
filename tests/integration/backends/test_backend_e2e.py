"""End to end through the real ``dvc`` and ``dvc-secure`` commands, on each real backend:
push -> the provider holds only ciphertext under hidden names (checked with the backend's
own client) -> wipe cache and workspace -> pull -> identical bytes -> ``status -c`` in sync
-> ``gc -c`` removes exactly the unused objects."""

from __future__ import annotations

import json
from collections.abc import Callable

from .conftest import BackendRepo
from .helpers import (
    assert_only_ciphertext,
    local_oids,
    object_keys,
    read_tree,
    wipe_local,
    write_dataset,
)
from .stores import Store

OUTPUTS = ["data", "model.bin"]


def _status_in_sync(repo: BackendRepo, *remote: str) -> None:
    proc = repo.dvc("status", "-c", *remote, "--json")
    assert json.loads(proc.stdout or "{}") == {}, proc.stdout


def test_push_wipe_pull(store: Store, make_backend_repo: Callable[..., BackendRepo]) -> None:
    repo = make_backend_repo(store)
    files = write_dataset(repo.root)
    repo.dvc("add", "-q", *OUTPUTS)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dataset")
    oids = local_oids(repo.root)
    assert len(oids) == 7  # 5 files in data/ + its .dir listing + model.bin

    repo.dvc("push", "-q")
    assert_only_ciphertext(store, oids, expected_count=len(oids))
    _status_in_sync(repo)

    wipe_local(repo.root, OUTPUTS)
    repo.dvc("pull", "-q")
    assert read_tree(repo.root, list(files)) == files
    _status_in_sync(repo)

    # gc -c: a new version of one file makes the old one garbage on the remote
    (repo.root / "model.bin").write_bytes(b"model v2")
    repo.dvc("add", "-q", "model.bin")
    repo.dvc("push", "-q")
    assert len(object_keys(store)) == len(oids) + 1
    repo.dvc("gc", "-c", "-w", "-f", "-q")
    assert len(object_keys(store)) == len(oids)
    _status_in_sync(repo)
    wipe_local(repo.root, OUTPUTS)
    repo.dvc("pull", "-q")
    assert (repo.root / "model.bin").read_bytes() == b"model v2"
    assert read_tree(repo.root, [f for f in files if f.startswith("data/")]) == {
        f: b for f, b in files.items() if f.startswith("data/")}


def test_plain_names_still_encrypted(store: Store,
                                     make_backend_repo: Callable[..., BackendRepo]) -> None:
    """hide_names=false keeps DVC's layout (files/md5/xx/...) but never plaintext."""
    repo = make_backend_repo(store)
    repo.dvc("remote", "modify", "vault", "hide_names", "false")
    repo.secure("remote-policy", "--update")  # an admin pins the variant
    (repo.root / "notes.txt").write_bytes(b"PLAINTEXT-MARKER-dvc-secure notes\n")
    repo.dvc("add", "-q", "notes.txt")
    repo.dvc("push", "-q")
    (oid,) = local_oids(repo.root)
    objects = assert_only_ciphertext(store, {oid}, expected_count=1, hidden=False)
    assert list(objects) == [f"files/md5/{oid[:2]}/{oid[2:]}"]
    wipe_local(repo.root, ["notes.txt"])
    repo.dvc("pull", "-q")
    assert (repo.root / "notes.txt").read_bytes() == b"PLAINTEXT-MARKER-dvc-secure notes\n"
