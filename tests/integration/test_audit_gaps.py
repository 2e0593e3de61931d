"""Gaps in the audit trail (issue 15.4), each test named after the event that went missing
or the false alarm it prevents. Real `dvc`, real `dvc-secure`, local-directory remotes."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SecureRepo
from tests.integration.secure_helpers import object_ids, storage_path
from tests.integration.test_access import Person, grant
from tests.integration.test_audit import audit_json, event_files


def _seal_commit(repo: SecureRepo, message: str) -> None:
    repo.secure("seal", "data.dvc")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)


def test_restore_is_recorded(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    _seal_commit(repo, "v1")
    (repo.root / "data" / "a.txt").write_bytes(b"changed\n")
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    _seal_commit(repo, "v2")
    repo.secure("restore", "data", "--version", "1")
    events = audit_json(repo)["events"]
    restore = [e for e in events if e["action"] == "restore"]
    assert len(restore) == 1, [e["action"] for e in events]
    assert restore[0]["datasets"] == ["data.dvc"]
    assert restore[0]["details"] == {"restored_version": 1, "new_version": 3}


def test_push_event_names_the_remote(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    (repo.root / "extra.txt").write_bytes(b"extra\n")
    repo.dvc("add", "-q", "extra.txt")
    repo.dvc("push", "-q", "-r", "vault", "extra.txt.dvc")
    events = audit_json(repo)["events"]
    assert [e["details"]["remote"] for e in events if e["action"] == "push"] == ["vault"] * 2


def test_verify_all_revisions_is_not_logged_as_head(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("verify", "--all-revisions", check=False)
    repo.secure("verify", "--rev", "HEAD", check=False)
    verifies = [e for e in audit_json(repo)["events"] if e["action"] == "verify"]
    assert [e["details"]["rev"] for e in verifies] == ["all-revisions", "HEAD"]


def test_dataset_filter_keeps_pushes_of_every_dataset(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo  # its template pushed everything: recorded with datasets ['all']
    events = audit_json(repo, "--dataset", "data")["events"]
    assert [(e["action"], e["datasets"]) for e in events] == [("push", ["all"])]


def test_backup_remote_without_a_log_is_not_reported_as_truncated(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    backup = repo.root.parent / "backup-storage"
    repo.dvc("remote", "add", "backup-plain", str(backup))
    repo.dvc("remote", "add", "backup", "secure://backup-plain")
    repo.secure("remote-policy", "--update")  # an admin pins the new remote (docs/backup.md)
    repo.dvc("push", "-r", "backup")  # data is copied there; the log stays on vault
    assert not list(backup.glob("dvc-secure/audit/**/*.evt"))
    for args in (["audit", "-r", "backup"], ["audit", "-r", "backup", "--verify"]):
        proc = repo.secure(*args, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "remote 'backup' carries no audit log" in proc.stdout
        assert "truncated" not in proc.stdout + proc.stderr
    assert not list(backup.glob("dvc-secure/audit/**/*.evt"))  # reading it uploaded nothing
    # the home remote holds the complete log, the backup push included
    pushes = [e for e in audit_json(repo)["events"] if e["action"] == "push"]
    assert [e["details"]["remote"] for e in pushes] == ["vault", "backup"]


def test_refused_reader_push_reaches_the_log(pushed_repo: SecureRepo, tmp_path: Path) -> None:
    repo = pushed_repo
    bob = Person(repo, tmp_path, "bob")
    # a reader listed with a signing key (to sign audit events; it never makes him a sealer)
    grant(repo, bob, "reader", "--signing-key", bob.signing_key)
    (repo.root / "bob.txt").write_bytes(b"bob tries\n")
    bob.dvc("add", "-q", "bob.txt")
    before = len(event_files(repo))
    proc = bob.dvc("push", check=False)
    assert proc.returncode != 0
    assert len(event_files(repo)) == before + 1  # uploaded at once
    refused = [e for e in audit_json(repo)["events"] if e["action"] == "push-refused"]
    assert len(refused) == 1 and refused[0]["actor"] == "bob"
    assert refused[0]["role"] == "reader" and "reader" in refused[0]["details"]["refused"]


def test_interrupted_rotation_is_recorded(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    _seal_commit(repo, "v1")
    # one stored object is damaged: re-encryption stops there, after the new keyring
    # (epoch 2) was already saved
    damaged = storage_path(repo, object_ids(repo)["data/big.bin"])  # sealed in data.dvc
    damaged.write_bytes(b"not an object")
    proc = repo.secure("rotate", "--reencrypt", check=False)
    assert proc.returncode != 0 and "not a valid object" in proc.stderr, proc.stderr
    assert json.loads(repo.secure("members", "--json").stdout)["current_epoch"] == 2
    rotations = [e for e in audit_json(repo)["events"] if e["action"] == "rotate"]
    assert len(rotations) == 1, rotations
    assert rotations[0]["details"]["interrupted"].startswith("re-encryption: ")
    assert rotations[0]["details"]["policy_version"] == 2
