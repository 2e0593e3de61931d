"""Repair that restores proof, and disaster recovery from the backup alone, through real
dvc, git and dvc-secure commands (docs/verification.md#repair, docs/backup.md).

Re-pushed objects get fresh salts, so their bytes differ from what the sidecars pinned;
signed upload records on the remote (docs/spec/repair.md) let ``verify --remote`` accept
them — and nothing else: swapped, truncated and foreign objects and forged records still
fail, keylessly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import storage_path

V1 = {"a.txt": "alpha, version one\n" * 50, "b.txt": "shared by both versions\n" * 80}
V2 = {"a.txt": "alpha, version two\n" * 60, "b.txt": V1["b.txt"], "c.txt": "new in two\n" * 30}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _commit_version(repo: SecureRepo, files: dict[str, str], message: str) -> None:
    shutil.rmtree(repo.root / "data", ignore_errors=True)
    (repo.root / "data").mkdir()
    for name, text in files.items():
        (repo.root / "data" / name).write_text(text)
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    repo.secure("seal", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)


def _two_versions(repo: SecureRepo) -> None:
    _commit_version(repo, V1, "data v1")
    _commit_version(repo, V2, "data v2")


def _obj(repo: SecureRepo, text: str) -> Path:
    return storage_path(repo, _md5(text))


def _verify(repo: SecureRepo, *args: str, env: dict[str, str] | None = None
            ) -> tuple[int, list[dict[str, str]]]:
    proc = run([*DVC_SECURE, "verify", "--json", "--remote", "--all-revisions", *args],
               repo.root, env or repo.env, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)["findings"]


def _keyless(repo: SecureRepo, tmp_path: Path) -> dict[str, str]:
    """CI: storage read access, no identity at all."""
    return dict(repo.env, **{ENV_IDENTITY_FILE: str(tmp_path / "no-identity-here")})


def _records(repo: SecureRepo, storage: Path | None = None) -> list[Path]:
    return sorted(((storage or repo.storage) / "dvc-secure" / "uploads").glob("*.json"))


def _dir_oid(repo: SecureRepo, rev: str) -> str:
    text = repo.git("show", f"{rev}:data.dvc").stdout
    return next(w for w in text.split() if w.endswith(".dir"))


def _lose_and_repush(repo: SecureRepo) -> dict[str, Path]:
    """v1's own a.txt and directory listing (old revision only) and the shared b.txt are
    lost, then ``dvc push --all-commits`` puts them back with new bytes. (DVC skips the
    files of a directory whose ``.dir`` listing is still on the remote: that case is
    ``dvc-secure repair``'s.)"""
    lost = {"a1": _obj(repo, V1["a.txt"]), "b": _obj(repo, V1["b.txt"]),
            "dir1": storage_path(repo, _dir_oid(repo, "HEAD~1")),
            "dir2": storage_path(repo, _dir_oid(repo, "HEAD"))}
    for p in lost.values():
        p.unlink()
    rc, findings = _verify(repo)
    assert rc == 1 and {f["code"] for f in findings} == {"remote-object-missing"}
    repo.dvc("push", "-q", "--all-commits")
    return lost


# --- repair that restores proof ---------------------------------------------------------


def test_lost_objects_repushed_with_dvc_push_verify_again_including_old_revision(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    pinned = {k: _sha(p) for k, p in {"a1": _obj(repo, V1["a.txt"]),
                                      "b": _obj(repo, V1["b.txt"]),
                                      "dir1": storage_path(repo, _dir_oid(repo, "HEAD~1")),
                                      "dir2": storage_path(repo, _dir_oid(repo, "HEAD")),
                                      }.items()}
    lost = _lose_and_repush(repo)
    for key, path in lost.items():  # really new ciphertexts, not the pinned bytes
        assert path.is_file() and _sha(path) != pinned[key]
    assert _records(repo), "the push wrote no upload record"
    assert _verify(repo, env=_keyless(repo, tmp_path)) == (0, [])
    # the old revision on its own, too
    v1 = repo.git("rev-parse", "HEAD~1").stdout.strip()
    proc = run([*DVC_SECURE, "verify", "--remote", "--rev", v1], repo.root,
               _keyless(repo, tmp_path), check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_repushed_objects_then_reencrypted_still_verify(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    _lose_and_repush(repo)
    repo.secure("rotate", "--reencrypt")  # re-encrypts HEAD's objects, re-pushed ones included
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "rotate + re-encrypt")
    assert _verify(repo) == (0, [])


def test_pre_push_hook_repush_restores_proof(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    repo.env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{repo.env.get('PATH', '')}"
    repo.secure("install")
    bare = repo.root.parent / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], repo.root.parent, repo.env)
    repo.git("remote", "add", "origin", str(bare))
    (repo.root / "data").mkdir()
    for name, text in V1.items():
        (repo.root / "data" / name).write_text(text)
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    repo.git("add", "-A")
    assert "sealed" in repo.git("commit", "-q", "-m", "v1").stderr
    for p in repo.stored_objects():  # the storage is wiped before the git push
        if "dvc-secure" not in p.relative_to(repo.storage).parts:
            p.unlink()
    proc = repo.git("push", "-u", "origin", "HEAD")
    assert "dvc push" in proc.stderr
    assert _verify(repo) == (0, [])


def test_repair_command_restores_missing_corrupted_index_and_manifest(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    _obj(repo, V1["a.txt"]).unlink()  # missing (old revision only)
    corrupt = _obj(repo, V2["c.txt"])  # present but damaged: `dvc push` cannot see it
    data = bytearray(corrupt.read_bytes())
    data[200] ^= 1
    corrupt.write_bytes(bytes(data))
    for index in (repo.storage / "dvc-secure" / "index").glob("*.json"):
        index.unlink()  # every remote index ...
        break
    # ... and an encrypted manifest
    from tests.integration.secure_helpers import hidden_rel

    manifests = sorted((repo.root / ".dvc" / "cache" / "secure" / "manifests").iterdir())
    (repo.storage / hidden_rel(repo, f"secure/manifests/{manifests[0].name}")).unlink()
    assert _verify(repo)[0] == 1

    dry = repo.secure("repair", "--all-revisions", "--dry-run", "--json", check=False)
    assert dry.returncode == 1, dry.stderr
    doc = json.loads(dry.stdout)
    problems = {i["problem"] for i in doc["items"]}
    assert {"remote-object-missing", "remote-object-corrupted"} <= problems | {
        "remote-index-missing"}
    assert not doc["complete"] and all(i["action"].startswith("would") for i in doc["items"])
    assert _verify(repo)[0] == 1  # a dry run changes nothing

    proc = repo.secure("repair", "--all-revisions", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "complete" in proc.stdout and "RE-PUSHED" in proc.stdout
    assert "nothing to commit" in proc.stderr
    assert _verify(repo, env=_keyless(repo, tmp_path)) == (0, [])
    again = repo.secure("repair", "--all-revisions", "--json")
    assert json.loads(again.stdout)["items"] == []  # healthy: nothing to do, exit 0
    # and the data is really back: a fresh pull of both versions
    shutil.rmtree(repo.root / ".dvc" / "cache")
    repo.dvc("fetch", "-q", "--all-commits")


def test_repair_reports_what_nobody_here_has(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    _obj(repo, V1["a.txt"]).unlink()
    shutil.rmtree(repo.root / ".dvc" / "cache" / "files")  # this clone has no data either
    proc = repo.secure("repair", "--all-revisions", "--json", check=False)
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert [i["action"] for i in doc["items"]] == ["not repaired"]
    assert "not in this clone's cache" in doc["items"][0]["detail"]
    assert doc["remaining"][0]["code"] == "remote-object-missing"


def test_repair_names_the_other_remote_that_has_what_this_clone_lacks(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    repo.dvc("remote", "add", "backup-store", str(tmp_path / "backup-storage"))
    repo.secure("init", "--remote", "backup-store", "--name", "backup", "--no-default")
    repo.secure("remote-policy", "--update")  # an admin pins the new remote (signed)
    repo.git("add", ".dvc/config", ".dvc/secure/keyring.json")
    repo.git("commit", "-q", "-m", "backup remote")
    _two_versions(repo)
    repo.dvc("push", "-q", "-r", "backup", "--all-commits")
    _obj(repo, V1["a.txt"]).unlink()
    shutil.rmtree(repo.root / ".dvc" / "cache" / "files")
    proc = repo.secure("repair", "--all-revisions", "--json", check=False)
    assert proc.returncode == 1
    [item] = json.loads(proc.stdout)["items"]
    assert item["action"] == "not repaired" and item["available_on"] == ["backup"]
    assert "dvc fetch -r backup --all-commits" in item["detail"]
    repo.dvc("fetch", "-q", "-r", "backup", "--all-commits")  # what the report says to do
    assert repo.secure("repair", "--all-revisions", check=False).returncode == 0
    assert _verify(repo) == (0, [])


def test_repair_of_unknown_remote_is_a_usage_error(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    proc = repo.secure("repair", "-r", "storage", check=False)  # the plain, wrapped remote
    assert proc.returncode == 2 and "not a secure:// remote" in proc.stderr


# --- what repair must not let through ------------------------------------------------------


def _finding_for(findings: list[dict[str, str]], path: Path, repo: SecureRepo) -> set[str]:
    rel = path.relative_to(repo.storage).as_posix()
    return {f["code"] for f in findings if rel in f["message"]}


def test_swapped_object_after_repair_detected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    # another valid, recorded object of the same repository moved under b.txt's name
    lost["b"].write_bytes(_obj(repo, V2["c.txt"]).read_bytes())
    rc, findings = _verify(repo, env=_keyless(repo, tmp_path))
    assert rc == 1
    assert _finding_for(findings, lost["b"], repo) & {"remote-object-corrupted",
                                                       "remote-object-size-mismatch"}


def test_truncated_repushed_object_detected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    lost["a1"].write_bytes(lost["a1"].read_bytes()[:-17])
    rc, findings = _verify(repo, env=_keyless(repo, tmp_path))
    assert rc == 1 and _finding_for(findings, lost["a1"], repo) == {"remote-object-size-mismatch"}


def _plant_record(repo: SecureRepo, data: bytes) -> None:
    path = repo.storage / "dvc-secure" / "uploads" / f"{hashlib.sha256(data).hexdigest()}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_foreign_ciphertext_by_non_member_with_its_own_record_detected(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.adapters.local.repo_keyring import load_keyring
    from dvc_secure.core.format.object_format import EncryptingReader
    from dvc_secure.core.format.primitives import SigningKeyPair, random_bytes
    from dvc_secure.core.records.upload import UploadedObject, UploadRecord

    repo = make_secure_repo()
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    outsider = SigningKeyPair.generate()
    reader = EncryptingReader(io.BytesIO(b"not your data\n" * 40), data_key=random_bytes(32),
                              epoch=1, object_id=f"files/md5/{_md5(V1['b.txt'])[:2]}/"
                              f"{_md5(V1['b.txt'])[2:]}".encode(), signer=outsider)
    foreign = reader.read()
    lost["b"].write_bytes(foreign)
    rel = lost["b"].relative_to(repo.storage).as_posix()
    ring = load_keyring(repo.root / ".dvc")
    forged = UploadRecord.create(ring.keyring_id, 1, "2026-12-06T00:00:00Z", [
        UploadedObject(rel, hashlib.sha256(foreign).hexdigest(), len(foreign))]).sign(outsider)
    _plant_record(repo, forged.to_bytes())
    rc, findings = _verify(repo, env=_keyless(repo, tmp_path))
    assert rc == 1
    assert _finding_for(findings, lost["b"], repo) & {"remote-object-corrupted",
                                                       "remote-object-size-mismatch"}
    assert any("no valid signature by a writer" in f["message"] for f in findings)


def _corrupt_same_size(path: Path) -> bytes:
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x55
    path.write_bytes(bytes(data))
    return bytes(data)


def test_upload_record_edited_after_signing_rejected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    bad = _corrupt_same_size(lost["b"])
    rel = lost["b"].relative_to(repo.storage).as_posix()
    for record in _records(repo):  # vouch for the damaged bytes in the writer's own record
        doc = json.loads(record.read_text())
        for entry in doc["signed"]["objects"]:
            if entry["path"] == rel:
                entry["sha256"] = hashlib.sha256(bad).hexdigest()
                _plant_record(repo, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    rc, findings = _verify(repo)
    assert rc == 1 and _finding_for(findings, lost["b"], repo) == {"remote-object-corrupted"}


def test_upload_record_replayed_for_another_path_rejected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    src, dst = lost["a1"], _obj(repo, V2["a.txt"])
    dst.write_bytes(src.read_bytes())  # a recorded ciphertext copied under another name ...
    src_rel, dst_rel = (p.relative_to(repo.storage).as_posix() for p in (src, dst))
    for record in _records(repo):  # ... and its signed entry re-pointed at that name
        doc = json.loads(record.read_text())
        entries = [e for e in doc["signed"]["objects"] if e["path"] == src_rel]
        if entries:
            doc["signed"]["objects"] = [dict(entries[0], path=dst_rel)]
            _plant_record(repo, (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode())
    rc, findings = _verify(repo)
    assert rc == 1 and _finding_for(findings, dst, repo) & {"remote-object-corrupted",
                                                            "remote-object-size-mismatch"}


def test_upload_record_signed_by_reader_rejected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.adapters.local.repo_keyring import load_keyring
    from dvc_secure.core.records.upload import UploadedObject, UploadRecord

    repo = make_secure_repo()
    ident = tmp_path / "reader-identity.txt"
    env = dict(repo.env, **{ENV_IDENTITY_FILE: str(ident)})
    out = run([*DVC_SECURE, "keygen"], repo.root, env).stdout
    lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    repo.secure("grant", lines["recipient"], "--signing-key", lines["signing-key"],
                "--role", "reader", "--name", "rita")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "grant rita (reader)")
    _two_versions(repo)
    lost = _lose_and_repush(repo)
    bad = _corrupt_same_size(lost["b"])
    rel = lost["b"].relative_to(repo.storage).as_posix()
    rita = load_identity({ENV_IDENTITY_FILE: str(ident)})
    assert rita.signing is not None
    ring = load_keyring(repo.root / ".dvc")
    record = UploadRecord.create(ring.keyring_id, ring.current_epoch, "2026-12-06T00:00:00Z", [
        UploadedObject(rel, hashlib.sha256(bad).hexdigest(), len(bad))]).sign(rita.signing)
    _plant_record(repo, record.to_bytes())
    rc, findings = _verify(repo)
    assert rc == 1 and _finding_for(findings, lost["b"], repo) == {"remote-object-corrupted"}


# --- disaster recovery from the backup alone (docs/backup.md, step by step) ---------------


def _sh(cwd: Path, env: dict[str, str], *cmd: str, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
    exe = {"dvc": DVC, "dvc-secure": DVC_SECURE}.get(cmd[0], [cmd[0]])
    return run([*exe, *cmd[1:]], cwd, env, check)


@pytest.mark.parametrize("hide_names", [True], ids=["hidden-names"])
def test_disaster_recovery_from_backup_alone(make_secure_repo, tmp_path: Path,
                                             hide_names: bool) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo(hide_names=hide_names)
    env, root = repo.env, repo.root
    backup_dir = tmp_path / "backup-storage"
    # set-up, once per repository
    _sh(root, env, "dvc", "remote", "add", "backup-store", str(backup_dir))
    _sh(root, env, "dvc-secure", "init", "--remote", "backup-store", "--name", "backup",
        "--no-default")
    _sh(root, env, "dvc-secure", "remote-policy", "--update")
    _sh(root, env, "git", "add", ".dvc/config", ".dvc/secure/keyring.json")
    _sh(root, env, "git", "commit", "-q", "-m", "dvc-secure: backup remote")
    _two_versions(repo)
    # routine: keep both copies complete, and provable
    _sh(root, env, "dvc", "push", "--all-commits")
    _sh(root, env, "dvc", "push", "-r", "backup", "--all-commits")
    proc = _sh(root, env, "dvc-secure", "verify", "--remote", "-r", "backup", "--all-revisions",
               check=False)  # (not a runbook step: without the indexes nothing is provable)
    assert proc.returncode == 1 and "remote index" in proc.stdout
    _sh(root, env, "dvc-secure", "repair", "-r", "backup", "--all-revisions")
    _sh(root, env, "dvc-secure", "verify", "--remote", "-r", "backup", "--all-revisions")
    # (not a runbook step: the backup check is not vacuous — a swap there is caught)
    a, b = (storage_path(repo, _md5(V2[f]), wraps="backup-store", storage=backup_dir)
            for f in ("a.txt", "c.txt"))  # the backup's own hidden names
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    proc = _sh(root, env, "dvc-secure", "verify", "--remote", "-r", "backup", "--all-revisions",
               check=False)
    assert proc.returncode == 1 and "on remote 'backup'" in proc.stdout
    a.write_bytes(da)
    b.write_bytes(db)
    bare = tmp_path / "origin.git"
    _sh(tmp_path, env, "git", "clone", "-q", "--bare", str(root), str(bare))

    # disaster: the primary storage is lost entirely
    shutil.rmtree(repo.storage)
    proc = _sh(root, env, "dvc-secure", "verify", "--remote", "--all-revisions", check=False)
    assert proc.returncode == 1 and "missing" in proc.stdout

    # recover on another machine with a granted identity: git and the backup are all it needs
    clone = tmp_path / "clone"
    _sh(tmp_path, env, "git", "clone", "-q", str(bare), str(clone))
    _sh(clone, env, "dvc", "fetch", "-r", "backup", "--all-commits")
    new_primary = tmp_path / "new-primary-storage"
    _sh(clone, env, "dvc", "remote", "modify", "--local", "storage", "url", str(new_primary))
    _sh(clone, env, "dvc-secure", "remote-policy", "--update")  # an admin signs the new URL
    _sh(clone, env, "dvc", "push", "-r", "vault", "--all-commits")
    _sh(clone, env, "dvc-secure", "repair", "-r", "vault", "--all-revisions")
    _sh(clone, env, "dvc-secure", "verify", "--remote", "-r", "vault", "--all-revisions")
    _sh(clone, env, "dvc-secure", "verify", "--remote", "-r", "backup", "--all-revisions")
    _sh(clone, env, "dvc-secure", "verify", "--remote", "--all-revisions")
    _sh(clone, env, "dvc", "remote", "modify", "storage", "url", str(new_primary))
    _sh(clone, env, "git", "commit", "-q", "-am", "primary storage re-seeded from backup")
    _sh(clone, env, "dvc-secure", "verify", "--remote", "--all-revisions")  # as committed
    old_store = tmp_path / "repo-storage"  # nothing was pushed to the lost store's old URL
    assert not [p for p in old_store.rglob("*")
                if p.is_file() and "dvc-secure" not in p.relative_to(old_store).parts]
    # the re-seeded primary really serves every revision: pull the old one from it alone
    shutil.rmtree(clone / ".dvc" / "cache")
    _sh(clone, env, "git", "checkout", "-q", "HEAD~2")
    _sh(clone, env, "dvc", "pull", "-r", "vault")
    assert (clone / "data" / "a.txt").read_text() == V1["a.txt"]
    # keyless, as CI runs it
    ci = _keyless(repo, tmp_path)
    _sh(clone, ci, "git", "checkout", "-q", "-")
    _sh(clone, ci, "dvc-secure", "verify", "--remote", "-r", "backup", "--all-revisions")
