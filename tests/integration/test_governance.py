"""Governance outputs through the real CLIs (docs/governance.md): `dvc-secure inventory`
and `overlap` on a real git + DVC repository with two real members and sealed datasets."""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.governance.croissant import CONTEXT, required_problems
from tests.conftest import SecureRepo, run
from tests.integration.secure_helpers import assert_no_key_material, check_failed, secrets_of
from tests.integration.test_access import (
    Person,
    add_and_push,
    commit_keyring,
    grant,
    stored_epochs,
)

TRAIN = {"a.csv": b"id,x\n1,alpha\n", "b.csv": b"id,x\n2,beta\n", "img/c.png": b"\x89PNG-c"}
TEST = {"d.csv": b"id,x\n3,delta\n", "e.csv": b"id,x\n4,epsilon\n"}


def write_dir(repo: SecureRepo, rel: str, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        path = repo.root / rel / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def seal_commit(repo: SecureRepo, message: str, *seal_args: str) -> None:
    repo.dvc("push", "-q")
    repo.secure("seal", *seal_args)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)


@pytest.fixture
def splits_repo(make_secure_repo, tmp_path: Path) -> tuple[SecureRepo, Person]:  # type: ignore[no-untyped-def]
    """alice (admin) sealed data/train (restricted) and data/test (internal); bob is a
    reader whose grant ends 2031-01-31."""
    repo = make_secure_repo()
    write_dir(repo, "data/train", TRAIN)
    write_dir(repo, "data/test", TEST)
    repo.dvc("add", "-q", "data/train", "data/test")
    repo.dvc("push", "-q")
    repo.secure("seal", "data/train.dvc", "--classification", "restricted", "--owner",
                "Data Protection Team", "--purpose", "training the triage model",
                "--delete-after", "2027-12-31", "--readers", "alice,bob")
    repo.secure("seal", "data/test.dvc", "--classification", "internal", "--owner",
                "ML Platform", "--purpose", "evaluation")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "datasets")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "reader", "--expires", "2031-01-31")
    return repo, bob


def inventory_json(repo: SecureRepo, *args: str) -> dict[str, Any]:
    return json.loads(repo.secure("inventory", "--format", "json", *args).stdout)  # type: ignore[no-any-return]


def test_inventory_lists_each_sealed_dataset_from_verified_records(splits_repo) -> None:  # type: ignore[no-untyped-def]
    repo, bob = splits_repo
    # a storage URL with credentials in it, and a password option: neither may appear
    repo.dvc("remote", "modify", "--local", "storage", "url",
             "ssh://svc-user:hunter2@data.example.org:2222/ml/store")
    repo.dvc("remote", "modify", "--local", "storage", "password", "hunter2-option")
    doc = inventory_json(repo)
    assert doc["format"] == "dvc-secure-inventory" and doc["verified"] is True
    assert doc["revision"] == repo.git("rev-parse", "HEAD").stdout.strip()
    assert doc["keyring"] == {"policy_version": 2, "current_epoch": 1}
    by_name = {d["dataset"]: d for d in doc["datasets"]}
    assert sorted(by_name) == ["data/test.dvc", "data/train.dvc"]
    train = by_name["data/train.dvc"]
    assert train["purpose"] == "training the triage model"
    assert train["classification"] == "restricted"
    assert train["owner"] == "Data Protection Team"
    assert train["intended_readers"] == ["alice", "bob"]
    assert train["retention"] == {"delete_after": "2027-12-31", "hold": "none"}
    assert train["recipients"] == [
        {"name": "alice", "role": "admin", "expires": None, "expired": False, "epochs": [1]},
        {"name": "bob", "role": "reader", "expires": "2031-01-31", "expired": False,
         "epochs": [1]}]
    assert train["locations"] == [{"remote": "vault", "backend": "ssh",
                                   "host": "data.example.org"}]
    assert train["key_custody"] == {"description": "member-held X25519 identities, epoch 1",
                                    "epochs": [1]}
    assert train["size"] == sum(len(c) for c in TRAIN.values()) and train["files"] == 3
    assert train["last_sealed"]["version"] == 1 and train["last_sealed"]["signer"] == "alice"
    assert train["recipients_not_intended"] == []
    # data/test.dvc was sealed before bob joined: its intended readers are ["alice"] only
    assert by_name["data/test.dvc"]["intended_readers"] == ["alice"]
    assert by_name["data/test.dvc"]["recipients_not_intended"] == ["bob"]
    assert by_name["data/test.dvc"]["retention"]["delete_after"] is None
    assert by_name["data/test.dvc"]["files"] == 2

    md = repo.secure("inventory").stdout
    assert "| `data/train.dvc` | training the triage model | restricted |" in md
    assert "bob (reader, until 2031-01-31)" in md and "vault: ssh data.example.org" in md
    for text in (md, json.dumps(doc)):
        for secret in ("hunter2", "svc-user", "2222", "/ml/store"):
            assert secret not in text
        assert_no_key_material(text, secrets_of(repo) + secrets_of(repo, bob.file))

    # an older revision: bob was not yet a member
    old = inventory_json(repo, "--rev", "HEAD~1")
    assert [r["name"] for r in old["datasets"][1]["recipients"]] == ["alice"]
    assert old["keyring"]["policy_version"] == 1


def test_inventory_croissant_lists_every_file_with_its_sealed_sha256(splits_repo) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    repo, _bob = splits_repo
    doc = json.loads(repo.secure("inventory", "--format", "croissant").stdout)
    assert doc["@context"] == CONTEXT and doc["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert required_problems(doc) == []
    files = {e["contentUrl"]: e["sha256"] for e in doc["distribution"]
             if e["@type"] == "cr:FileObject"}
    expected = {f"data/train/{n}": hashlib.sha256(c).hexdigest() for n, c in TRAIN.items()}
    expected |= {f"data/test/{n}": hashlib.sha256(c).hexdigest() for n, c in TEST.items()}
    assert files == expected
    sets = sorted(e["includes"] for e in doc["distribution"] if e["@type"] == "cr:FileSet")
    assert sets == ["data/test/**", "data/train/**"]
    if importlib.util.find_spec("mlcroissant") is not None:  # the reference validator
        import mlcroissant

        path = repo.root.parent / "croissant.json"
        path.write_text(json.dumps(doc))
        assert len(mlcroissant.Dataset(jsonld=str(path)).metadata.distribution) == 7

    # the manifests are read from the remote (decrypted, digest-checked) when not cached
    shutil.rmtree(repo.root / ".dvc" / "cache")
    again = json.loads(repo.secure("inventory", "--format", "croissant").stdout)
    assert again["distribution"] == doc["distribution"]


def test_inventory_refuses_a_revision_that_does_not_verify(splits_repo) -> None:  # type: ignore[no-untyped-def]
    repo, _bob = splits_repo
    seal = repo.root / "data" / "train.dvc.seal"
    seal.write_text(seal.read_text().replace('"restricted"', '"public"'))
    repo.git("commit", "-q", "-am", "quietly declassify")
    proc = repo.secure("inventory", "--format", "json", check=False)
    assert proc.returncode == 1 and proc.stdout == ""
    assert "does not verify" in proc.stderr and "bad-signature" in proc.stderr
    # the revision before is still reportable
    assert repo.secure("inventory", "--rev", "HEAD~1", "--format", "json").returncode == 0


def test_overlap_finds_a_file_copied_from_train_into_test(splits_repo) -> None:  # type: ignore[no-untyped-def]
    repo, _bob = splits_repo
    proc = repo.secure("overlap", "data/train.dvc", "data/test")
    assert proc.returncode == 0 and "no overlap: 2 dataset(s) checked" in proc.stdout
    clean = repo.git("rev-parse", "HEAD").stdout.strip()

    (repo.root / "data" / "test" / "leaked.csv").write_bytes(TRAIN["b.csv"])
    repo.dvc("add", "-q", "data/test")
    seal_commit(repo, "test split grows", "data/test.dvc")
    proc = repo.secure("overlap", "data/train.dvc", "data/test.dvc", "--json", check=False)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["verified"] is True
    (found,) = doc["overlaps"]
    assert found["datasets"] == ["data/test.dvc", "data/train.dvc"]
    assert found["files"] == [{"dataset": "data/test.dvc", "path": "data/test/leaked.csv"},
                              {"dataset": "data/train.dvc", "path": "data/train/b.csv"}]
    text = repo.secure("overlap", "data/train", "data/test", check=False).stdout
    assert "data/test/leaked.csv" in text and "data/train/b.csv" in text

    # across revisions: the test split now against the train split before the copy
    proc = repo.secure("overlap", f"data/train.dvc@{clean}", "data/test.dvc", "--json",
                       check=False)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["overlaps"][0]["files"][0]["dataset"] == "data/test.dvc@HEAD"
    assert repo.secure("overlap", "data/test.dvc@HEAD~1", f"data/train.dvc@{clean}",
                       check=False).returncode == 0

    # declared splits: no arguments needed (the pre-commit / CI form)
    (repo.root / ".dvc" / "secure" / "splits.json").write_text(json.dumps({
        "format": "dvc-secure-splits", "version": 1,
        "groups": [{"name": "triage", "datasets": ["data/train.dvc", "data/test.dvc"]}]}))
    proc = repo.secure("overlap", check=False)
    assert proc.returncode == 1 and "data/test/leaked.csv" in proc.stdout
    # no download happened: the manifests came from the local cache (storage unreachable)
    repo.dvc("remote", "modify", "--local", "storage", "url", str(repo.root / "nowhere"))
    assert repo.secure("overlap", check=False).returncode == 1


def test_overlap_workspace_checks_what_is_about_to_be_committed(splits_repo) -> None:  # type: ignore[no-untyped-def]
    repo, _bob = splits_repo
    (repo.root / "data" / "test" / "copied.png").write_bytes(TRAIN["img/c.png"])
    repo.dvc("add", "-q", "data/test")
    repo.dvc("push", "-q")
    repo.secure("seal", "data/test.dvc")  # sealed, not committed: the pre-commit moment
    assert repo.secure("overlap", "data/train.dvc", "data/test.dvc").returncode == 0  # HEAD
    proc = repo.secure("overlap", "--workspace", "data/train.dvc", "data/test.dvc", "--json",
                       check=False)
    assert proc.returncode == 1
    (found,) = json.loads(proc.stdout)["overlaps"]
    assert [f["path"] for f in found["files"]] == ["data/test/copied.png", "data/train/img/c.png"]
    # a hand-edited sidecar in the working tree is not trusted
    seal = repo.root / "data" / "test.dvc.seal"
    seal.write_text(seal.read_text().replace('"internal"', '"public"'))
    proc = repo.secure("overlap", "--workspace", "data/train.dvc", "data/test.dvc", check=False)
    assert proc.returncode == 1 and "bad-signature" in proc.stderr
    assert "OVERLAP" not in proc.stdout


def test_overlap_without_splits_config_is_a_usage_error(splits_repo) -> None:  # type: ignore[no-untyped-def]
    repo, _bob = splits_repo
    proc = repo.secure("overlap", check=False)
    assert proc.returncode == 2 and "splits.json" in proc.stderr and "hint:" in proc.stderr


# --- audit export / alerts / incident: a reader with a signing key and their own clone ---


def reader_clone(repo: SecureRepo, bob: Person, tmp_path: Path) -> Path:
    clone = tmp_path / "bob-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, bob.env)
    return clone


def grant_reader_with_key(repo: SecureRepo, who: Person, *extra: str) -> None:
    repo.secure("grant", who.recipient, "--role", "reader", "--name", who.name,
                "--signing-key", who.signing_key, *extra)
    commit_keyring(repo, f"grant {who.name}")


def test_audit_export_and_alerts_on_a_real_trail(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    write_dir(repo, "data/train", TRAIN)
    repo.dvc("add", "-q", "data/train")
    seal_commit(repo, "train", "data/train.dvc", "--classification", "restricted")
    bob = Person(repo, tmp_path, "bob")
    grant_reader_with_key(repo, bob)
    clone = reader_clone(repo, bob, tmp_path)
    bob.dvc("pull", "-q", cwd=clone)
    assert (clone / "data" / "train" / "a.csv").read_bytes() == TRAIN["a.csv"]

    proc = repo.secure("audit", "export")
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    required = ("class_uid", "category_uid", "activity_id", "type_uid", "time", "actor",
                "metadata", "status", "severity_id")
    for line in lines:
        assert all(k in line for k in required), line
        assert line["type_uid"] == line["class_uid"] * 100 + line["activity_id"]
        assert line["metadata"]["product"]["name"] == "dvc-secure"
    (pull,) = [x for x in lines if x["actor"]["user"]["name"] == "bob"]
    assert (pull["class_uid"], pull["activity_id"], pull["status"]) == (1001, 2, "Success")
    assert pull["actor"]["user"]["groups"] == [{"name": "reader"}]
    from dvc_secure.core.keys.identity import decode_signing_key, key_fingerprint

    assert pull["actor"]["user"]["uid"] == key_fingerprint(decode_signing_key(bob.signing_key))
    assert pull["resources"] == [{"name": "all", "type": "dataset"}]
    assert pull["metadata"]["sequence"] == 1 and len(pull["metadata"]["uid"]) == 64
    grant_line = [x for x in lines if x["class_uid"] == 3001]
    assert grant_line and grant_line[0]["user"] == {"name": "bob"}
    text = proc.stdout
    assert_no_key_material(text, secrets_of(repo) + secrets_of(repo, bob.file))
    assert "TOP-SECRET" not in text and "alpha" not in text
    # --since and --follow (bounded)
    assert repo.secure("audit", "export", "--since", "2999-01-01").stdout == ""
    follow = repo.secure("audit", "export", "--follow", "--interval", "0.1", "--max-polls", "2")
    assert follow.stdout == proc.stdout  # the second poll prints nothing new

    # alerts: bob's first pull of a restricted dataset fires; nothing else
    alerts = repo.secure("audit", "alerts", "--json", check=False)
    assert alerts.returncode == 1
    fired = json.loads(alerts.stdout)["alerts"]
    assert [(a["rule"], a["actor"]) for a in fired] == [("first-sensitive-pull", "bob")]
    quiet = repo.secure("audit", "alerts", "--since", "2999-01-01")
    assert quiet.returncode == 0 and "no alerts" in quiet.stdout

    # revoked, bob pulls again from his old clone: his key still signs an event
    repo.secure("revoke", "bob")
    commit_keyring(repo, "revoke bob")
    time.sleep(1.1)  # event times have one-second resolution: the pull comes strictly after
    shutil.rmtree(clone / ".dvc" / "cache")
    bob.dvc("pull", "-q", cwd=clone)
    fired = json.loads(repo.secure("audit", "alerts", "--json", check=False).stdout)["alerts"]
    assert [(a["rule"], a["actor"]) for a in fired] == [
        ("first-sensitive-pull", "bob"), ("revoked-or-expired-key", "bob")]


def test_incident_lists_what_the_member_could_read_and_contain_locks_them_out(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.records.incident import IncidentRecord

    repo = make_secure_repo()
    add_and_push(repo, "old.txt", b"epoch 1: bob never held this key\n")
    repo.secure("rotate")
    commit_keyring(repo, "rotate")
    bob = Person(repo, tmp_path, "bob")
    grant_reader_with_key(repo, bob, "--current-only")
    add_and_push(repo, "new.txt", b"epoch 2: bob can read this\n")
    first = repo.git("rev-parse", "HEAD").stdout.strip()
    repo.secure("seal", "new.txt.dvc", "--classification", "restricted")
    repo.git("commit", "-q", "-am", "classify new.txt")
    second = repo.git("rev-parse", "HEAD").stdout.strip()
    clone = reader_clone(repo, bob, tmp_path)
    bob.dvc("pull", "-q", "new.txt.dvc", cwd=clone)

    doc = json.loads(repo.secure("incident", "bob", "--json").stdout)
    assert doc["member"]["name"] == "bob" and doc["member"]["role"] == "reader"
    assert doc["key_epochs"] == [2]
    assert [(e["metafile"], e["version"], e["classification"]) for e in doc["could_read"]] == [
        ("new.txt.dvc", 1, "confidential"), ("new.txt.dvc", 2, "restricted")]
    assert [e["revision"] for e in doc["could_read"]] == [first, second]
    (did,) = doc["did_read"]
    assert did["action"] == "pull" and did["datasets"] == ["new.txt.dvc"]
    assert doc["contained"] is False

    proc = repo.secure("incident", "bob", "--contain", "--json")
    contained = json.loads(proc.stdout)
    assert contained["contained"] is True
    (record_file,) = (repo.root / ".dvc" / "secure" / "incidents").glob("*.json")
    record = IncidentRecord.from_bytes(record_file.read_bytes(), record_file.name)
    alice = Identity.from_text(repo.identity_file.read_text(), "alice")
    from dvc_secure.core.keys.identity import key_fingerprint

    assert alice.signing is not None
    assert record.valid_signers({key_fingerprint(alice.signing.public): alice.signing.public})
    assert contained["record"] == f".dvc/secure/incidents/{record.incident_id}.json"
    assert record.member == "bob" and record.epochs == (2,) and record.new_epoch == 3
    assert [e.digest for e in record.events] == [did["event"]["digest"]]
    assert [x.metafile for x in record.exposures] == ["new.txt.dvc", "new.txt.dvc"]
    assert stored_epochs(repo) == {3}  # current data re-encrypted under the new epoch
    repo.git("add", ".dvc/secure")
    repo.git("commit", "-q", "-m", "incident")
    assert repo.secure("verify").returncode == 0
    listed = json.loads(repo.secure("incidents", "--json").stdout)
    assert listed["ok"] is True and listed["records"][0]["signed_by"] == ["alice"]
    tampered = record_file.read_text().replace('"reencrypted": ', '"reencrypted": 1')
    record_file.write_text(tampered)
    proc = repo.secure("incidents", check=False)
    assert proc.returncode == 1 and "INVALID" in proc.stdout and "not validly signed" in proc.stdout
    repo.git("checkout", "--", str(record_file))

    # new data is out of bob's reach, even from his clone with the old keyring
    add_and_push(repo, "after.txt", b"after containment: bob must not read this\n")
    run(["git", "fetch", "-q", "origin"], clone, bob.env)
    run(["git", "checkout", "FETCH_HEAD", "--", "after.txt.dvc"], clone, bob.env)
    check_failed(bob.dvc("pull", "after.txt.dvc", check=False, cwd=clone),
                 "no data key for key epoch 3")
    assert not (clone / "after.txt").exists()
    # and the incident is in the trail
    events = json.loads(repo.secure("audit", "--json").stdout)["events"]
    assert [e["action"] for e in events if e["action"] in ("revoke", "incident")] == [
        "revoke", "incident"]
