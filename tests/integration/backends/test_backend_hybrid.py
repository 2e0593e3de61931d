"""Hybrid / multi-cloud (docs/backup.md): a second encrypted copy on another backend.

``vault`` = secure://storage (primary) and ``backup`` = secure://backup-store on a different
provider. Both copies are proved complete (``status -c -r`` in sync, a pull from each after
wiping the cache), and the disaster-recovery drill is run for real: the primary's storage
is lost, a fresh clone restores from the backup alone, then re-seeds the primary.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from .conftest import BackendRepo, configure_remote
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


def _in_sync(repo: BackendRepo, remote: str) -> bool:
    proc = repo.dvc("status", "-c", "-r", remote, "--json")
    return json.loads(proc.stdout or "{}") == {}


@pytest.mark.parametrize(("primary_kind", "backup_kind"), [("s3", "azure"), ("ssh", "gs")])
def test_second_encrypted_copy_on_another_backend(
        primary_kind: str, backup_kind: str,
        make_backend_store: Callable[[str], Store],
        make_backend_repo: Callable[..., BackendRepo]) -> None:
    primary, backup = make_backend_store(primary_kind), make_backend_store(backup_kind)
    repo = make_backend_repo(primary)
    configure_remote(repo.root, "backup-store", backup)
    repo.secure("init", "--remote", "backup-store", "--name", "backup", "--no-default")
    repo.secure("remote-policy", "--update")  # an admin pins the second copy (docs/backup.md)
    files = write_dataset(repo.root)
    repo.dvc("add", "-q", *OUTPUTS)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dataset + backup remote")
    oids = local_oids(repo.root)

    # one push per copy; both are complete and hold ciphertext only
    repo.dvc("push", "-q")
    repo.dvc("push", "-q", "-r", "backup")
    assert _in_sync(repo, "vault") and _in_sync(repo, "backup")
    on_primary = assert_only_ciphertext(primary, oids, expected_count=len(oids))
    on_backup = assert_only_ciphertext(backup, oids, expected_count=len(oids))
    # each remote its own hidden names (docs/spec/hidden-names.md §1): nothing to correlate
    assert set(on_primary).isdisjoint(on_backup)
    assert set(on_primary.values()).isdisjoint(on_backup.values())  # encrypted separately

    # a pull from each copy alone, after wiping the cache, restores identical bytes
    for remote in ("backup", "vault"):
        wipe_local(repo.root, OUTPUTS)
        repo.dvc("pull", "-q", "-r", remote)
        assert read_tree(repo.root, list(files)) == files

    # disaster: the primary storage is lost; status says so
    primary.wipe()
    assert not _in_sync(repo, "vault")
    assert _in_sync(repo, "backup")

    # recovery on a new machine: git clone + identity + backup credentials
    clone_root = repo.root.parent / "clone"
    repo.git("clone", "-q", str(repo.root), str(clone_root))
    clone = BackendRepo(root=clone_root, storage=repo.storage, identity_file=repo.identity_file,
                        env=repo.env, store=primary)
    configure_remote(clone_root, "backup-store", backup)  # credentials are not in git
    configure_remote(clone_root, "storage", primary)
    clone.dvc("pull", "-q", "-r", "backup")
    assert read_tree(clone_root, list(files)) == files

    # re-seed the (new, empty) primary from the restored cache; both copies complete again
    clone.dvc("push", "-q", "-r", "vault")
    assert _in_sync(clone, "vault") and _in_sync(clone, "backup")
    wipe_local(clone_root, OUTPUTS)
    clone.dvc("pull", "-q")  # the default remote, vault
    assert read_tree(clone_root, list(files)) == files
    assert len(object_keys(primary)) == len(oids)
