"""Sealing and offline verification through real git commits, merges and reverts."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SecureRepo


def _commit_dataset(repo: SecureRepo, content: str, message: str, seal: bool = True) -> None:
    data = repo.root / "data"
    data.mkdir(exist_ok=True)
    (data / "a.txt").write_text(content)
    (data / "b.txt").write_text(content * 2)
    repo.dvc("add", "-q", "data")
    if seal:
        repo.dvc("push", "-q")
        repo.secure("seal", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", message)


def _findings(repo: SecureRepo, *args: str) -> tuple[int, list[dict[str, str]]]:
    proc = repo.secure("verify", "--json", *args, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verified"] == (proc.returncode == 0)
    return proc.returncode, doc["findings"]


def test_honest_history_verifies_and_logs(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    rc, findings = _findings(repo, "--all-revisions")
    assert (rc, findings) == (0, [])
    log = repo.secure("log", "data").stdout
    lines = [line.split() for line in log.splitlines()[1:]]
    assert [line[0] for line in lines] == ["2", "1"]
    assert "alice" in log


def test_reseal_of_unchanged_data_changes_nothing(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    before = (repo.root / "data.dvc.seal").read_bytes()
    out = repo.secure("seal").stdout
    assert "unchanged (version 1)" in out
    assert (repo.root / "data.dvc.seal").read_bytes() == before


def test_metafile_edited_without_reseal_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2 unsealed", seal=False)
    rc, findings = _findings(repo)
    assert rc == 1
    assert [f["code"] for f in findings] == ["metafile-not-bound"]
    assert "dvc-secure seal data.dvc" in findings[0]["fix"]


def test_unsealed_dataset_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1", seal=False)
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["unsealed-output"]


def test_git_revert_rollback_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    repo.git("revert", "--no-edit", "HEAD")  # puts the version-1 sidecar back
    rc, findings = _findings(repo)
    assert rc == 1
    assert [f["code"] for f in findings] == ["sidecar-replayed"]
    assert "dvc-secure restore" in findings[0]["fix"]


def test_sidecar_deleted_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    repo.git("rm", "-q", "data.dvc.seal")
    repo.git("commit", "-q", "-m", "drop seal")
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["sidecar-deleted"]


def test_sidecar_hand_edited_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    seal = repo.root / "data.dvc.seal"
    doc = json.loads(seal.read_text())
    doc["signed"]["access"]["classification"] = "public"
    seal.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    repo.git("commit", "-q", "-am", "declassify by hand")
    rc, findings = _findings(repo)
    assert rc == 1
    assert "bad-signature" in [f["code"] for f in findings]


def test_fork_merged_without_reseal_detected_and_merge_seal_resolves(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    main = repo.git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    repo.git("checkout", "-q", "-b", "side")
    _commit_dataset(repo, "side-v2", "side v2")
    repo.git("checkout", "-q", main)
    _commit_dataset(repo, "main-v2", "main v2")
    # both branches sealed version 2; a merge that keeps one side must be flagged
    repo.git("branch", "-q", "bad-merge")
    repo.git("checkout", "-q", "bad-merge")
    repo.git("merge", "-q", "--no-edit", "-X", "ours", "side")
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["fork-unresolved"]
    # the right way: re-seal while the merge is in progress
    repo.git("checkout", "-q", main)
    repo.git("merge", "-q", "--no-commit", "-X", "ours", "side")
    repo.dvc("push", "-q")
    out = repo.secure("seal").stdout
    assert "sealed version 3" in out
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "merge side, re-sealed")
    rc, findings = _findings(repo)
    assert (rc, findings) == (0, [])


def test_range_and_junit_report(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    base = repo.git("rev-parse", "HEAD").stdout.strip()
    _commit_dataset(repo, "v2", "v2 unsealed", seal=False)
    _commit_dataset(repo, "v3", "v3")
    junit = tmp_path / "report.xml"
    proc = repo.secure("verify", "--rev", f"{base}..HEAD", "--junit", str(junit), check=False)
    assert proc.returncode == 1
    assert "NOT verified: 1 finding(s) in 2 revision(s)" in proc.stdout
    xml = junit.read_text()
    assert 'failures="1"' in xml and "metafile-not-bound" in xml
    # the range before the bad commit is clean
    assert repo.secure("verify", "--rev", base, check=False).returncode == 0


def test_seal_refuses_identity_outside_keyring(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1", seal=False)
    stranger = tmp_path / "stranger.txt"
    repo.secure("keygen", "--output", str(stranger))
    repo.env["DVC_SECURE_IDENTITY_FILE"] = str(stranger)
    proc = repo.secure("seal", check=False)
    assert proc.returncode == 2
    assert "not a member" in proc.stderr
    assert not (repo.root / "data.dvc.seal").exists()


def test_restore_returns_to_old_data_as_new_verified_version(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    # a fresh clone of the cache: restore must fetch version 1's objects from the remote
    import shutil

    shutil.rmtree(repo.root / ".dvc" / "cache")
    out = repo.secure("restore", "data", "--version", "1").stdout
    assert "sealed as version 3" in out
    assert (repo.root / "data" / "a.txt").read_text() == "v1"
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "restore v1")
    rc, findings = _findings(repo, "--all-revisions")
    assert (rc, findings) == (0, [])
    log = repo.secure("log", "data").stdout.splitlines()[1:]
    assert [line.split()[0] for line in log] == ["3", "2", "1"]
    assert log[0].split()[5] == log[2].split()[5]  # same content digest as version 1


def test_restore_of_unknown_version_is_a_usage_error(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    proc = repo.secure("restore", "data", "--version", "7", check=False)
    assert proc.returncode == 2 and "no sealed version 7" in proc.stderr


def test_gc_cannot_silently_destroy_sealed_revision(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    before = repo.stored_objects()
    proc = repo.dvc("gc", "-c", "-w", "-f")
    assert "sealed versions still need" in proc.stdout + proc.stderr
    assert repo.stored_objects() == before  # v1's objects are pinned
    import shutil

    shutil.rmtree(repo.root / ".dvc" / "cache")
    repo.secure("restore", "data", "--version", "1")
    assert (repo.root / "data" / "a.txt").read_text() == "v1"
    # explicit opt-out (erasure) really deletes what the workspace (now v1) does not use
    repo.dvc("remote", "modify", "--local", "vault", "allow_gc_sealed", "true")
    repo.dvc("gc", "-c", "-w", "-f")
    assert len(repo.stored_objects()) < len(before)


def _storage_files(repo: SecureRepo) -> list[Path]:
    return [p for p in repo.stored_objects() if "dvc-secure" not in p.parts]


def test_remote_verify_needs_no_key(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    repo.env["DVC_SECURE_IDENTITY_FILE"] = str(tmp_path / "no-such-identity")
    rc, findings = _findings(repo, "--remote")
    assert (rc, findings) == (0, [])


def test_remote_object_deleted_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _storage_files(repo)[0].unlink()
    rc, findings = _findings(repo, "--remote")
    assert rc == 1 and [f["code"] for f in findings] == ["remote-object-missing"]


def test_remote_object_truncated_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    victim = _storage_files(repo)[0]
    victim.write_bytes(victim.read_bytes()[:-10])
    rc, findings = _findings(repo, "--remote")
    assert rc == 1 and [f["code"] for f in findings] == ["remote-object-size-mismatch"]


def test_remote_object_corrupted_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    victim = _storage_files(repo)[0]
    data = bytearray(victim.read_bytes())
    data[100] ^= 0xFF
    victim.write_bytes(bytes(data))
    rc, findings = _findings(repo, "--remote")
    assert rc == 1 and [f["code"] for f in findings] == ["remote-object-corrupted"]


def test_remote_objects_swapped_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    a, b = _storage_files(repo)[:2]
    da, db = a.read_bytes(), b.read_bytes()
    a.write_bytes(db)
    b.write_bytes(da)
    rc, findings = _findings(repo, "--remote")
    assert rc == 1
    assert {f["code"] for f in findings} <= {"remote-object-corrupted", "remote-object-size-mismatch"}
    assert len(findings) == 2


def test_deep_verify_passes_and_catches_writer_substituted_content(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    import io

    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.format.object_format import EncryptingReader

    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    assert _findings(repo, "--deep") == (0, [])
    # a writer (valid signing key) replaces a.txt's object with other content
    import hashlib
    import os

    oid = hashlib.md5(b"v1").hexdigest()
    rel = f"files/md5/{oid[:2]}/{oid[2:]}"
    os.environ["DVC_SECURE_IDENTITY_FILE"] = str(repo.identity_file)
    try:
        keys = LazyRepoKeys(str(repo.root / ".dvc")).get()
    finally:
        del os.environ["DVC_SECURE_IDENTITY_FILE"]
    from dvc_secure.core.format.names import hide_name

    target = repo.storage / hide_name(keys.remote_names("storage")[0], rel, keys.remote_names("storage")[1])
    assert target.is_file()
    forged = EncryptingReader(io.BytesIO(b"v9"), data_key=keys.keyset.key_for_epoch(1), epoch=1,
                              object_id=rel.encode(), signer=keys.signer())
    target.write_bytes(forged.read())
    rc, findings = _findings(repo, "--deep")
    assert rc == 1 and [f["code"] for f in findings] == ["deep-content-mismatch"]


def test_verify_remote_all_revisions_after_sealed_data_erased(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    assert _findings(repo, "--remote", "--all-revisions") == (0, [])
    repo.dvc("remote", "modify", "--local", "vault", "allow_gc_sealed", "true")
    repo.dvc("gc", "-c", "-w", "-f")
    rc, findings = _findings(repo, "--remote", "--all-revisions")
    assert rc == 1
    assert {f["code"] for f in findings} == {"remote-object-missing"}


def test_incremental_verify_still_catches_rollback_on_new_commit(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    _commit_dataset(repo, "v2", "v2")
    assert _findings(repo) == (0, [])  # caches the verified chain state
    cache = Path(repo.git("rev-parse", "--git-dir").stdout.strip())
    cache = (repo.root / cache if not cache.is_absolute() else cache) / "dvc-secure" / "verify-cache.json"
    assert cache.is_file()
    repo.git("revert", "--no-edit", "HEAD")
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["sidecar-replayed"]
    # and the same verdict without the cache
    assert _findings(repo, "--no-cache") == (rc, findings)


def test_damaged_verify_cache_is_ignored(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    assert _findings(repo) == (0, [])
    git_dir = Path(repo.git("rev-parse", "--absolute-git-dir").stdout.strip())
    (git_dir / "dvc-secure" / "verify-cache.json").write_text("{not json")
    _commit_dataset(repo, "v2", "v2 unsealed", seal=False)
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["metafile-not-bound"]


def test_policy_changed_without_admin_signatures_detected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring, Member

    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    path = repo.root / ".dvc" / "secure" / "keyring.json"
    ring = Keyring.from_json(path.read_text())
    mallory = Identity.generate()
    assert mallory.signing is not None
    forged = ring.successor()
    # Mallory, who can push to git but holds no admin key, makes herself an admin and signs
    # the result herself: valid under its own member list, not under the previous admins
    forged.members.append(Member("mallory", mallory.recipient, "admin", mallory.signing_key, "x"))
    forged.sign(mallory.signing)
    path.write_text(forged.to_json())
    repo.git("commit", "-q", "-am", "innocent-looking keyring update")
    rc, findings = _findings(repo)
    assert rc == 1
    assert [f["code"] for f in findings] == ["policy-change-unauthorized"]
    assert "previous admins" in findings[0]["message"]


def test_remote_manifest_tampered_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    import os
    import shutil

    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.format.names import hide_name

    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    seal = json.loads((repo.root / "data.dvc.seal").read_text())
    digest = seal["signed"]["outputs"]["data"]["sha256"]
    os.environ["DVC_SECURE_IDENTITY_FILE"] = str(repo.identity_file)
    try:
        keys = LazyRepoKeys(str(repo.root / ".dvc")).get()
    finally:
        del os.environ["DVC_SECURE_IDENTITY_FILE"]
    stored = repo.storage / hide_name(keys.remote_names("storage")[0], f"secure/manifests/{digest}",
                                        keys.remote_names("storage")[1])
    data = bytearray(stored.read_bytes())
    data[-20] ^= 1
    stored.write_bytes(bytes(data))
    shutil.rmtree(repo.root / ".dvc" / "cache" / "secure")  # force the remote copy
    rc, findings = _findings(repo, "--remote", "--deep")
    assert rc == 1
    assert {f["code"] for f in findings} == {"remote-object-corrupted", "deep-object-failed"}


def test_pipeline_outputs_in_dvc_lock_are_sealed(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    (repo.root / "in.txt").write_text("input")
    repo.dvc("stage", "add", "-q", "-n", "copy", "-d", "in.txt", "-o", "out.txt", "cp in.txt out.txt")
    repo.dvc("repro", "-q")
    repo.dvc("push", "-q")
    out = repo.secure("seal", "dvc.lock").stdout
    assert "dvc.lock.seal: sealed version 1" in out
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "pipeline")
    assert _findings(repo, "--remote", "--deep") == (0, [])
    (repo.root / "in.txt").write_text("changed")
    repo.dvc("repro", "-q")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "repro without seal")
    rc, findings = _findings(repo)
    assert rc == 1 and [(f["dataset"], f["code"]) for f in findings] == [("dvc.lock", "metafile-not-bound")]


def test_rewritten_history_with_foreign_root_policy_detected(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    root = repo.secure("policy-id").stdout.strip()
    assert _findings(repo, "--root-policy", root) == (0, [])
    # an attacker force-pushes a history that starts from a keyring of their own
    other = make_secure_repo(name="attacker")
    _commit_dataset(other, "evil", "evil")
    rc, findings = _findings(other, "--root-policy", root)
    assert rc == 1 and [f["code"] for f in findings] == ["untrusted-root-policy"]


def test_incremental_verify_checks_policy_change_against_cached_parent(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring, Member

    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1")
    assert _findings(repo) == (0, [])  # HEAD's chain state (and policy) now cached
    path = repo.root / ".dvc" / "secure" / "keyring.json"
    forged = Keyring.from_json(path.read_text()).successor()
    mallory = Identity.generate()
    assert mallory.signing is not None
    forged.members.append(Member("mallory", mallory.recipient, "admin", mallory.signing_key, "x"))
    forged.sign(mallory.signing)
    path.write_text(forged.to_json())
    repo.git("commit", "-q", "-am", "keyring update", "--no-verify")
    rc, findings = _findings(repo)
    assert rc == 1 and [f["code"] for f in findings] == ["policy-change-unauthorized"]


def test_verify_of_an_older_revision_after_caching_its_descendant_checks_it(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """A cached descendant must not hide the revision asked for (it once did: git's
    revwalk hides every ancestor of a hidden commit, so 'verified: 0 revision(s)' passed)."""
    repo = make_secure_repo()
    _commit_dataset(repo, "v1", "v1 unsealed", seal=False)
    _commit_dataset(repo, "v2", "v2")
    assert _findings(repo) == (0, [])  # HEAD verifies; its chain state is cached
    rc, findings = _findings(repo, "--rev", "HEAD~1")
    assert rc == 1 and [f["code"] for f in findings] == ["unsealed-output"]
    assert _findings(repo, "--rev", "HEAD~1", "--no-cache") == (rc, findings)
    text = repo.secure("verify", "--rev", "HEAD~1", check=False).stdout
    assert "in 1 revision(s)" in text
