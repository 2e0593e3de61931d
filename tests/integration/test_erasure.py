"""Erasure that reaches every copy (docs/erasure.md), through real dvc, git and dvc-secure
commands with two secure remotes: ``vault`` (primary) and ``backup``.

One journey per test, sharing a module-scoped set-up built once: two datasets, ``cohort``
sealed into key domain ``cohort-2024`` (delete_after 2027-06-30) and ``other`` in the
repository's default domain, both pushed to both remotes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dvc_secure.core.format.domain_keys import DOMAIN_DIR
from tests.conftest import SecureRepo
from tests.integration.conftest import copy_template, init_admin_repo, write_files

COHORT = {"cohort/p1.csv": b"patient-1,diagnosis-A\n" * 50,
          "cohort/p2.csv": b"patient-2,diagnosis-B\n" * 70}
OTHER = {"other.csv": b"public,stats\n" * 30}
DOMAIN = "cohort-2024"
LATE = "2027-07-01"


def _build(base: Path) -> None:
    repo = init_admin_repo(base)
    repo.dvc("remote", "add", "backup-store", "../backup-storage")
    repo.secure("init", "--remote", "backup-store", "--name", "backup", "--no-default")
    repo.secure("remote-policy", "--update")
    write_files(repo, {**COHORT, **OTHER})
    repo.dvc("add", "-q", "cohort", "other.csv")
    repo.dvc("push", "-q")
    repo.dvc("push", "-q", "-r", "backup")
    repo.secure("seal", "cohort.dvc", "--domain", DOMAIN, "--delete-after", "2027-06-30")
    repo.secure("seal", "other.csv.dvc")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "datasets")


@pytest.fixture(scope="module")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("erasure") / "t"
    _build(base)
    return base


@pytest.fixture
def repo(_template: Path, tmp_path: Path, isolated_env: dict[str, str]) -> SecureRepo:
    return copy_template(_template, tmp_path / "r")


def _wipe(repo: SecureRepo) -> None:
    shutil.rmtree(repo.root / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(repo.root / "cohort", ignore_errors=True)
    (repo.root / "other.csv").unlink(missing_ok=True)


def _verify(repo: SecureRepo, *args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    proc = repo.secure("verify", "--json", *args, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def _codes(doc: dict, key: str) -> set[str]:  # type: ignore[type-arg]
    return {f["code"] for f in doc[key]}


def _domain_files(storage: Path) -> list[Path]:
    d = storage / DOMAIN_DIR
    return sorted(p for p in d.rglob("*") if p.is_file()) if d.exists() else []


def _domain_secret(repo: SecureRepo) -> bytes:
    """The domain secret, opened from the vault's key file with the repository's keys."""
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.format.domain_keys import open_key_file

    keys = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env).get()
    [path] = _domain_files(repo.root.parent / "storage")
    _d, _e, secret = open_key_file(path.read_bytes(), keys.keyset.key_for_epoch(1), str(path))
    return secret


def _commit(repo: SecureRepo, msg: str) -> None:
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", msg)


def _shred(repo: SecureRepo) -> str:
    out = repo.secure("shred", DOMAIN, "--reason", "erasure request 17").stdout
    _commit(repo, "erase cohort-2024")
    return out


def _dvc_version() -> tuple[int, ...]:
    import dvc

    return tuple(int(p) for p in dvc.__version__.split(".")[:2] if p.isdigit())


def test_domain_objects_pull_from_both_remotes_until_shredded(repo: SecureRepo) -> None:
    base = repo.root.parent
    assert len(_domain_files(base / "storage")) == 1 == len(_domain_files(base / "backup-storage"))
    for remote in ("vault", "backup"):
        _wipe(repo)
        repo.dvc("pull", "-q", "-r", remote)
        assert (repo.root / "cohort/p1.csv").read_bytes() == COHORT["cohort/p1.csv"]
    pre_shred = repo.git("rev-parse", "HEAD").stdout.strip()
    secret = _domain_secret(repo)
    for path in [*repo.root.rglob("*"), *(base / "home").rglob("*")]:  # no local copy
        if path.is_file():
            data = path.read_bytes()
            assert secret not in data and secret.hex().encode() not in data, path

    out = _shred(repo)
    assert "shredded key domain 'cohort-2024'" in out and "backup: 1 key file(s)" in out
    assert not _domain_files(base / "storage") and not _domain_files(base / "backup-storage")
    record = json.loads((repo.root / ".dvc/secure/erasures/cohort-2024.json").read_text())
    assert record["signed"]["reason"] == "erasure request 17"
    assert sorted(record["signed"]["remotes"]) == ["backup", "vault"]
    assert list(record["signed"]["datasets"]) == ["cohort.dvc"]

    for remote in ("vault", "backup"):  # the admin's own identity, either remote
        _wipe(repo)
        proc = repo.dvc("pull", "-r", remote, "cohort.dvc", check=False)
        assert proc.returncode != 0
        assert "erased on" in proc.stderr and "erasure request 17" in proc.stderr, proc.stderr
        assert not (repo.root / "cohort").exists() or not any((repo.root / "cohort").iterdir())
        repo.dvc("pull", "-q", "-r", remote, "other.csv.dvc")  # other domains still pull
        assert (repo.root / "other.csv").read_bytes() == OTHER["other.csv"]

    # a plain 'dvc push' afterwards: the tombstone stands in for the erased objects
    (repo.root / "more.txt").write_text("more\n")
    repo.dvc("add", "-q", "more.txt")
    repo.dvc("push", "-q")
    rc, doc = _verify(repo, "--all-revisions")
    assert rc == 0, doc
    assert "erased" in _codes(doc, "notices")
    assert any("erasure request 17" in n["message"] for n in doc["notices"])

    # the keyring (and everything else) checked out from the pre-shred revision: no key
    repo.git("checkout", "-q", pre_shred)
    _wipe(repo)
    proc = repo.dvc("pull", "cohort.dvc", check=False)
    if _dvc_version() >= (3, 1):
        assert proc.returncode != 0
    else:  # DVC 3.0.x reports objects missing on the remote as a warning and exits 0
        assert "do not exist" in proc.stderr + proc.stdout, proc
    assert not (repo.root / "cohort").exists() or not any((repo.root / "cohort").iterdir())
    rc, doc = _verify(repo, "--remote")  # without the record, a missing key is a failure
    assert rc == 1 and "domain-key-missing" in _codes(doc, "findings"), doc


def test_pull_of_restored_backup_copy_names_the_record(repo: SecureRepo,
                                                        tmp_path: Path) -> None:
    base = repo.root.parent
    saved = tmp_path / "tape"
    shutil.copytree(base / "backup-storage", saved)  # an old tape of the backup remote
    _shred(repo)
    shutil.rmtree(base / "backup-storage")
    shutil.copytree(saved, base / "backup-storage")
    shutil.rmtree(base / "backup-storage" / DOMAIN_DIR)  # the tape had the key: shredded
    _wipe(repo)
    proc = repo.dvc("pull", "-r", "backup", "cohort.dvc", check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "erased on" in text and "by alice" in text and "erasure request 17" in text, text
    assert not any(p.is_file() for p in (repo.root / "cohort").rglob("*")) \
        if (repo.root / "cohort").exists() else True


def test_deleted_domain_key_without_record_fails_closed(repo: SecureRepo) -> None:
    base = repo.root.parent
    shutil.rmtree(base / "storage" / DOMAIN_DIR)  # a storage-write attacker
    _wipe(repo)
    proc = repo.dvc("pull", "cohort.dvc", check=False)
    assert proc.returncode != 0
    assert "no valid erasure record" in proc.stdout + proc.stderr
    rc, doc = _verify(repo, "--remote")
    assert rc == 1 and "erased" not in _codes(doc, "notices")


def test_forged_erasure_records_are_rejected(repo: SecureRepo) -> None:
    _shred(repo)
    path = repo.root / ".dvc/secure/erasures/cohort-2024.json"
    doc = json.loads(path.read_text())
    doc["signed"]["reason"] = "edited"
    path.write_text(json.dumps(doc))
    rc, report = _verify(repo)
    assert rc == 1 and "invalid-erasure-or-hold-record" in _codes(report, "findings")
    # replayed onto another domain's name
    repo.git("checkout", "--", str(path))
    shutil.copy(path, path.with_name("other-domain.json"))
    rc, report = _verify(repo)
    assert rc == 1 and any("replayed" in f["message"] for f in report["findings"])
    path.with_name("other-domain.json").unlink()
    # written and signed by someone who is not an admin (no shred ran for this domain)
    import os

    from dvc_secure.core.format.primitives import SigningKeyPair
    from dvc_secure.core.records.erasure import ErasureRecord

    good = ErasureRecord.from_bytes(path.read_bytes(), "r")
    forged = ErasureRecord.create(keyring_id=good.keyring_id, epoch=1, created=good.created,
                                  domain="other", reason="x", by="mallory",
                                  datasets={"other.csv.dvc": []}, objects=["files/md5/aa/b"],
                                  remotes=["vault"]).sign(SigningKeyPair.from_private(os.urandom(32)))
    path.with_name("other.json").write_bytes(forged.to_bytes())
    rc, report = _verify(repo)
    assert rc == 1 and any("0 admin(s)" in f["message"] for f in report["findings"]), report


def test_retention_due_then_apply_then_verify_passes(repo: SecureRepo) -> None:
    rc, doc = _verify(repo, "--as-of", LATE)
    assert rc == 1 and "retention-overdue" in _codes(doc, "findings")
    assert repo.secure("retention", "--as-of", LATE, check=False).returncode == 1
    assert _verify(repo)[0] == 0  # today: not due yet
    out = repo.secure("retention", "--apply", "--as-of", LATE).stdout
    assert "shredded key domain 'cohort-2024'" in out
    _commit(repo, "retention")
    rc, doc = _verify(repo, "--as-of", LATE, "--all-revisions")
    assert rc == 0, doc
    assert "erased" in _codes(doc, "notices")


def test_hold_blocks_shred_and_retention_until_released(repo: SecureRepo) -> None:
    repo.secure("hold", DOMAIN, "--reason", "litigation 2026-44")
    _commit(repo, "hold")
    proc = repo.secure("shred", DOMAIN, "--reason", "erasure request 17", check=False)
    assert proc.returncode == 2 and "legal hold" in proc.stderr
    assert _domain_files(repo.root.parent / "storage")
    out = repo.secure("retention", "--apply", "--as-of", LATE).stdout
    assert "nothing overdue to shred" in out and "HELD" in out
    rc, doc = _verify(repo, "--as-of", LATE)
    assert rc == 0 and "retention-held" in _codes(doc, "notices")
    inv = json.loads(repo.secure("inventory", "--format", "json").stdout)
    hold = {d["dataset"]: d["retention"]["hold"] for d in inv["datasets"]}
    assert "litigation 2026-44" in hold["cohort.dvc"] and hold["other.csv.dvc"] == "none"
    repo.secure("hold", DOMAIN, "--release", "--reason", "case closed")
    _commit(repo, "release")
    assert _verify(repo, "--as-of", LATE)[0] == 1
    _shred(repo)
    assert _verify(repo, "--as-of", LATE)[0] == 0


def test_unreachable_remote_is_named_and_shred_resumes(repo: SecureRepo) -> None:
    base = repo.root.parent
    (base / "backup-storage").rename(base / "backup-away")
    proc = repo.secure("shred", DOMAIN, "--reason", "erasure request 17", check=False)
    assert proc.returncode != 0 and "'backup' cannot be reached" in proc.stderr
    assert not _domain_files(base / "storage")  # the reachable one is done
    (base / "backup-away").rename(base / "backup-storage")
    out = repo.secure("shred", DOMAIN, "--reason", "erasure request 17").stdout
    assert "(resumed)" in out
    assert not _domain_files(base / "backup-storage")


def test_non_admin_cannot_shred(repo: SecureRepo, tmp_path: Path) -> None:
    env = dict(repo.env, DVC_SECURE_IDENTITY_FILE=str(tmp_path / "bob.txt"))
    SecureRepo(repo.root, repo.storage, tmp_path / "bob.txt", env).secure("keygen")
    proc = SecureRepo(repo.root, repo.storage, tmp_path / "bob.txt", env).secure(
        "shred", DOMAIN, "--reason", "x", check=False)
    assert proc.returncode != 0
    assert _domain_files(repo.root.parent / "storage")


def test_shred_killed_between_remotes_resumes(repo: SecureRepo) -> None:
    from tests.faults.fault_helpers import kill_when, launch

    base = repo.root.parent
    proc = launch(repo, "dvc-secure", "shred", DOMAIN, "--reason", "erasure request 17",
                  slow={"dvc_secure.adapters.dvc.domain_store:DomainStore.destroy": 3.0})
    # remotes go in name order: 'backup' first; SIGKILL once its key is gone
    assert kill_when(proc, lambda: not _domain_files(base / "backup-storage"))
    assert _domain_files(base / "storage")  # 'vault' still holds the key
    assert (repo.root / ".dvc/secure/erasures/cohort-2024.json").is_file()  # written first
    out = repo.secure("shred", DOMAIN).stdout  # the rerun resumes with the same record
    assert "(resumed)" in out and not _domain_files(base / "storage")
    _commit(repo, "erase")
    for remote in ("vault", "backup"):
        _wipe(repo)
        proc2 = repo.dvc("pull", "-r", remote, "cohort.dvc", check=False)
        assert proc2.returncode != 0
    assert _verify(repo, "--all-revisions")[0] == 0


def test_grant_rotate_reencrypt_and_new_versions_stay_in_the_domain(repo: SecureRepo,
                                                                     tmp_path: Path) -> None:
    from tests.integration.test_access import Person, grant

    carol = Person(repo, tmp_path, "carol")
    grant(repo, carol, "reader")
    _wipe(repo)
    carol.dvc("pull", "-q")  # a granted member reads the domain through the epoch key
    assert (repo.root / "cohort/p2.csv").read_bytes() == COHORT["cohort/p2.csv"]

    # a new version, pushed by plain 'dvc push', goes into the domain by the domain map
    repo.dvc("pull", "-q")
    (repo.root / "cohort/p3.csv").write_bytes(b"patient-3,diagnosis-C\n" * 20)
    repo.dvc("add", "-q", "cohort")
    repo.dvc("push", "-q")
    repo.dvc("push", "-q", "-r", "backup")
    repo.secure("seal", "cohort.dvc")  # later versions keep the domain
    _commit(repo, "cohort v2")
    repo.secure("rotate", "--reencrypt")  # epoch 2: domain objects re-encrypted in the domain
    _commit(repo, "rotate")
    base = repo.root.parent
    assert any(p.name == "epoch-2.key" for p in _domain_files(base / "storage"))
    _wipe(repo)
    carol.dvc("pull", "-q")
    assert (repo.root / "cohort/p3.csv").is_file()

    tape = tmp_path / "tape"
    shutil.copytree(base / "storage", tape)
    _shred(repo)
    shutil.rmtree(base / "storage")
    shutil.copytree(tape, base / "storage")  # every object, old and new, restored...
    shutil.rmtree(base / "storage" / DOMAIN_DIR)  # ...but the keys are gone
    for who in (repo, carol):
        _wipe(repo)
        proc = who.dvc("pull", "cohort.dvc", check=False)
        assert proc.returncode != 0 and "erased on" in proc.stderr, proc.stderr
        assert not any(p.is_file() for p in (repo.root / "cohort").rglob("*")) \
            if (repo.root / "cohort").exists() else True
    repo.dvc("pull", "-q", "other.csv.dvc")
    rc, doc = _verify(repo, "--all-revisions", "--remote")
    assert rc == 0 and "erased" in _codes(doc, "notices"), doc
    # a new version of the erased dataset is not encrypted into the shredded domain again
    repo.dvc("pull", "-q", "cohort.dvc", check=False)
    (repo.root / "cohort").mkdir(exist_ok=True)
    (repo.root / "cohort/new.csv").write_bytes(b"fresh\n")
    repo.dvc("add", "-q", "cohort")
    repo.dvc("push", "-q")
    assert not _domain_files(base / "storage")


def test_threshold_two_needs_a_second_admin_to_shred(repo: SecureRepo, tmp_path: Path) -> None:
    from tests.integration.test_access import Person, commit_keyring, grant

    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin")
    repo.secure("threshold", "2")
    bob.secure("approve")
    commit_keyring(repo, "threshold 2")
    base = repo.root.parent
    proc = repo.secure("shred", DOMAIN, "--reason", "erasure request 17", check=False)
    assert proc.returncode == 2 and "pending" in proc.stderr, proc.stderr
    assert _domain_files(base / "storage") and _domain_files(base / "backup-storage")
    rc, doc = _verify(repo)  # a pending record excuses nothing
    assert rc == 1 and "invalid-erasure-or-hold-record" in _codes(doc, "findings")
    out = bob.secure("shred", DOMAIN).stdout  # the second admin signs the same record
    assert "(resumed)" in out and "by alice" in out
    assert not _domain_files(base / "storage") and not _domain_files(base / "backup-storage")
    _commit(repo, "erase")
    assert _verify(repo, "--all-revisions")[0] == 0


def test_object_pushed_outside_the_domain_is_reported(repo: SecureRepo) -> None:
    (repo.root / ".dvc/secure/domains.json").unlink()  # a clone without the domain map
    (repo.root / "cohort/p4.csv").write_bytes(b"patient-4\n")
    repo.dvc("add", "-q", "cohort")
    repo.dvc("push", "-q")
    repo.dvc("push", "-q", "-r", "backup")
    repo.secure("seal", "cohort.dvc")
    _commit(repo, "v2 outside")
    rc, doc = _verify(repo, "--remote")
    assert rc == 1 and "object-outside-domain" in _codes(doc, "findings"), doc
    repo.secure("seal", "cohort.dvc", "--domain", DOMAIN)  # the fix the finding names
    _commit(repo, "moved")
    assert _verify(repo, "--remote")[0] == 0
    # older versions pinned the ciphertext that was moved: upload records vouch for it
    rc, doc = _verify(repo, "--remote", "--all-revisions")
    assert rc == 0, doc
