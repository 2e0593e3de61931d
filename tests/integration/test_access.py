"""Team access with several real identities in one repository (docs/access.md): real
`dvc-secure keygen/grant/revoke/rotate/threshold/approve`, real git, real `dvc push/pull`
through a secure local-directory remote."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from dvc_secure.core.format.object_format import read_header
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import (
    assert_no_key_material,
    check_failed,
    days_later,
    secrets_of,
)

KEYRING = ".dvc/secure/keyring.json"


class Person:
    """A real identity made by `dvc-secure keygen`, acting in a repository."""

    def __init__(self, repo: SecureRepo, tmp_path: Path, name: str) -> None:
        self.repo, self.name = repo, name
        self.file = tmp_path / f"{name}-identity.txt"
        out = run([*DVC_SECURE, "keygen", "--output", str(self.file)], repo.root, repo.env).stdout
        lines = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
        self.recipient, self.signing_key = lines["recipient"], lines["signing-key"]
        self.env = {**repo.env, ENV_IDENTITY_FILE: str(self.file)}

    def dvc(self, *args: str, check: bool = True, cwd: Path | None = None):  # type: ignore[no-untyped-def]
        return run([*DVC, *args], cwd or self.repo.root, self.env, check)

    def secure(self, *args: str, check: bool = True, cwd: Path | None = None):  # type: ignore[no-untyped-def]
        return run([*DVC_SECURE, *args], cwd or self.repo.root, self.env, check)


def grant(repo: SecureRepo, who: Person, role: str, *extra: str) -> None:
    args = ["grant", who.recipient, "--role", role, "--name", who.name, *extra]
    if role != "reader":
        args += ["--signing-key", who.signing_key]
    out = repo.secure(*args)
    assert "git add .dvc/secure" in out.stderr
    commit_keyring(repo, f"grant {who.name}")


def commit_keyring(repo: SecureRepo, message: str) -> None:
    repo.git("add", ".dvc/secure")
    repo.git("commit", "-q", "-m", message)


def add_and_push(repo: SecureRepo, name: str, content: bytes) -> None:
    (repo.root / name).write_bytes(content)
    repo.dvc("add", "-q", name)
    repo.dvc("push", "-q")
    repo.secure("seal", f"{name}.dvc")
    repo.git("add", f"{name}.dvc", f"{name}.dvc.seal", ".gitignore")
    repo.git("commit", "-q", "-m", f"add {name}")


def wipe(repo: SecureRepo, *names: str) -> None:
    shutil.rmtree(repo.root / ".dvc" / "cache", ignore_errors=True)
    for name in names:
        (repo.root / name).unlink(missing_ok=True)


def encrypted_objects(repo: SecureRepo) -> list[Path]:
    """Stored ciphertext objects (not the plaintext remote indexes of sealed versions)."""
    index = repo.storage / "dvc-secure"
    return [p for p in repo.stored_objects() if index not in p.parents]


def storage_snapshot(repo: SecureRepo) -> dict[Path, bytes]:
    """Stored data (the audit log's events left out: a refused push is recorded there)."""
    audit = repo.storage / "dvc-secure" / "audit"
    return {p: p.read_bytes() for p in repo.stored_objects() if audit not in p.parents}


def stored_epochs(repo: SecureRepo) -> set[int]:
    epochs = set()
    for path in encrypted_objects(repo):
        with path.open("rb") as f:
            epochs.add(read_header(f).epoch)
    return epochs


def test_reader_cannot_seal_or_push(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"pushed by the admin\n")
    reader = Person(repo, tmp_path, "rita")
    grant(repo, reader, "reader")

    wipe(repo, "a.txt")
    reader.dvc("pull", "-q")
    assert (repo.root / "a.txt").read_bytes() == b"pushed by the admin\n"

    before = storage_snapshot(repo)
    (repo.root / "b.txt").write_text("a reader's edit\n")
    reader.dvc("add", "-q", "b.txt")
    secrets = secrets_of(repo) + secrets_of(repo, identity_file=reader.file)
    text = check_failed(reader.dvc("push", check=False), "may not push", "role: reader")
    assert_no_key_material(text, secrets)
    check_failed(reader.secure("seal", "b.txt.dvc", "--offline", check=False),
                 "may not push", "role: reader")
    assert storage_snapshot(repo) == before
    assert not (repo.root / "b.txt.dvc.seal").exists()


def test_revoked_member_cannot_decrypt_after_revocation(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "old.txt", b"before the revocation\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer")
    # bob's own clone, made while he was a member: it keeps his keyring (policy version 2)
    clone = tmp_path / "bob-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, bob.env)
    bob.dvc("pull", "-q", cwd=clone)
    assert (clone / "old.txt").read_bytes() == b"before the revocation\n"

    out = repo.secure("revoke", "bob")
    assert "new key epoch 2" in out.stdout
    commit_keyring(repo, "revoke bob")
    add_and_push(repo, "new.txt", b"after the revocation: bob must not read this\n")
    assert stored_epochs(repo) == {1, 2}

    # 1. in the admin's repository (current keyring): bob is no longer a member
    wipe(repo, "new.txt", "old.txt")
    proc = bob.dvc("pull", check=False)
    check_failed(proc, "not a member", "epoch 2", "grant")
    assert not (repo.root / "new.txt").exists()

    # 2. in his clone, with the keyring that still lists him: no key for epoch 2
    run(["git", "fetch", "-q", "origin"], clone, bob.env)
    run(["git", "checkout", "FETCH_HEAD", "--", "new.txt.dvc"], clone, bob.env)
    proc = bob.dvc("pull", "new.txt.dvc", check=False, cwd=clone)
    check_failed(proc, "no data key for key epoch 2")
    assert not (clone / "new.txt").exists()
    leftovers = [p for p in clone.rglob("*") if p.is_file() and b"must not read" in p.read_bytes()]
    assert leftovers == []
    # what he could read before stays readable to him (docs/access.md says so)
    assert (clone / "old.txt").read_bytes() == b"before the revocation\n"

    # the admin can still read both epochs
    repo.dvc("pull", "-q")
    assert (repo.root / "new.txt").read_bytes().startswith(b"after the revocation")


def _forge_admin_grant(repo: SecureRepo, tmp_path: Path) -> Person:
    """Mallory edits keyring.json by hand: adds herself as admin and signs it herself."""
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring, Member

    mallory = Person(repo, tmp_path, "mallory")
    ident = Identity.from_text(mallory.file.read_text(), "mallory")
    assert ident.signing is not None
    path = repo.root / KEYRING
    forged = Keyring.from_json(path.read_text()).successor()
    forged.members.append(Member("mallory", ident.recipient, "admin", ident.signing_key, "x"))
    forged.sign(ident.signing)
    Keyring.from_json(forged.to_json()).verify_signatures()  # self-consistent on its own
    path.write_text(forged.to_json())
    return mallory


def test_forged_grant_is_rejected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"sensitive\n")
    repo.dvc("pull", "-q")  # this clone now trusts (pins) policy version 1
    mallory = _forge_admin_grant(repo, tmp_path)
    before = storage_snapshot(repo)

    (repo.root / "b.txt").write_text("pushed under a forged policy\n")
    repo.dvc("add", "-q", "b.txt")
    for proc in (repo.dvc("push", check=False), mallory.dvc("push", check=False)):
        check_failed(proc, "policy version 2", "not a valid successor", "previous admins",
                     "git checkout")
    wipe(repo, "a.txt")
    check_failed(mallory.dvc("pull", check=False), "policy version 2", "previous admins")
    check_failed(repo.secure("seal", "b.txt.dvc", "--offline", check=False),
                 "policy version 2", "previous admins")
    check_failed(mallory.secure("grant", mallory.recipient, "--role", "reader", check=False),
                 "policy version 2")
    assert storage_snapshot(repo) == before

    # committed, it is also what `verify` reports; and a fresh clone (no pin) refuses it
    repo.git("add", KEYRING)
    repo.git("commit", "-q", "-m", "innocent-looking keyring update")
    proc = repo.secure("verify", "--json", check=False)
    assert proc.returncode == 1
    codes = [f["code"] for f in json.loads(proc.stdout)["findings"]]
    assert "policy-change-unauthorized" in codes
    clone = repo.root.parent / "fresh-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], repo.root.parent, repo.env)
    check_failed(run([*DVC, "pull"], clone, mallory.env, check=False),
                 "policy version 2", "previous admins")

    # restoring the good keyring (the hint's git command) makes everything work again
    repo.git("checkout", "HEAD~1", "--", KEYRING)
    repo.dvc("pull", "-q", "a.txt.dvc")
    assert (repo.root / "a.txt").read_bytes() == b"sensitive\n"


def test_old_epochs_remain_readable_after_rotation(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    reader = Person(repo, tmp_path, "rita")
    grant(repo, reader, "reader")
    add_and_push(repo, "one.txt", b"epoch one\n")
    out = repo.secure("rotate")
    assert "new key epoch 2" in out.stdout
    commit_keyring(repo, "rotate")
    add_and_push(repo, "two.txt", b"epoch two\n")
    assert stored_epochs(repo) == {1, 2}

    for who_env in (repo.env, reader.env):
        wipe(repo, "one.txt", "two.txt")
        run([*DVC, "pull", "-q"], repo.root, who_env)
        assert (repo.root / "one.txt").read_bytes() == b"epoch one\n"
        assert (repo.root / "two.txt").read_bytes() == b"epoch two\n"

    # an old checkout (policy version 2, epoch 1 current) still pulls, but a push from it
    # encrypts to the newest trusted epoch (2), never to the old one
    repo.git("checkout", "-q", "HEAD~2", "--", KEYRING)
    (repo.root / "three.txt").write_text("pushed from an old checkout\n")
    repo.dvc("add", "-q", "three.txt")
    before = set(encrypted_objects(repo))
    repo.dvc("push", "-q")
    new = set(encrypted_objects(repo)) - before
    assert new
    for path in new:
        with path.open("rb") as f:
            assert read_header(f).epoch == 2


def test_expired_writer_cannot_seal(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    bob = Person(repo, tmp_path, "bob")
    # granted until today (a date already past is refused); the rest runs two days later
    last_day = dt.datetime.now(dt.timezone.utc).date().isoformat()
    grant(repo, bob, "writer", "--expires", last_day)
    later = days_later(repo.env, 2)
    bob.env = days_later(bob.env, 2)
    listing = json.loads(run([*DVC_SECURE, "members", "--json"], repo.root, later).stdout)
    row = next(m for m in listing["members"] if m["name"] == "bob")
    assert row["expired"] is True and row["expires"] == last_day and row["role"] == "writer"

    before = storage_snapshot(repo)
    (repo.root / "b.txt").write_text("bob's change\n")
    bob.dvc("add", "-q", "b.txt")
    check_failed(bob.dvc("push", check=False), f"expired on {last_day}")
    check_failed(bob.secure("seal", "b.txt.dvc", "--offline", check=False),
                 f"expired on {last_day}")
    assert storage_snapshot(repo) == before
    # decryption is not stopped by the date (docs/access.md): bob can still pull ...
    wipe(repo, "a.txt")
    bob.dvc("pull", "-q", "a.txt.dvc")
    # ... which verify reports until an admin rotates
    proc = run([*DVC_SECURE, "verify", "--json"], repo.root, later, check=False)
    findings = json.loads(proc.stdout)["findings"]
    assert proc.returncode == 1
    assert [f["code"] for f in findings] == ["expired-member-holds-key"]
    assert "dvc-secure rotate" in findings[0]["fix"]

    out = run([*DVC_SECURE, "rotate"], repo.root, later)
    assert "dropped 'bob' (grant expired)" in out.stdout
    commit_keyring(repo, "rotate")
    proc = run([*DVC_SECURE, "verify", "--json"], repo.root, later)
    assert json.loads(proc.stdout)["findings"] == []
    add_and_push(repo, "c.txt", b"after rotation\n")
    wipe(repo, "c.txt")
    check_failed(bob.dvc("pull", "c.txt.dvc", check=False), "not a member")


def test_threshold_two_needs_second_admin(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin")
    keyring = repo.root / KEYRING
    pending = repo.root / ".dvc/secure/keyring.pending.json"

    # raising the threshold to 2 needs the new policy to carry two admin signatures itself
    out = repo.secure("threshold", "2")
    assert "PENDING: 1 of 2" in out.stdout and pending.exists()
    out = bob.secure("approve")
    assert "policy version 3 saved" in out.stdout and not pending.exists()
    commit_keyring(repo, "threshold 2")

    carol = Person(repo, tmp_path, "carol")
    v4 = keyring.read_text()
    out = repo.secure("grant", carol.recipient, "--role", "reader", "--name", "carol")
    assert "PENDING" in out.stdout
    assert keyring.read_text() == v4  # not in effect with one signature
    wipe(repo, "a.txt")
    check_failed(carol.dvc("pull", check=False), "not a member")
    # nothing else may change meanwhile; a reader may not approve
    check_failed(repo.secure("rotate", check=False), "awaits more admin signatures", "approve")
    check_failed(carol.secure("approve", check=False), "only an admin")

    bob.secure("approve")
    assert not pending.exists() and keyring.read_text() != v4
    commit_keyring(repo, "grant carol")
    carol.dvc("pull", "-q")
    assert (repo.root / "a.txt").read_bytes() == b"data\n"
    assert repo.secure("verify", "--json").returncode == 0


# --- the clone-local trust pin (docs/policy.md) ---------------------------------------------


def test_unchanged_keyring_is_checked_without_git(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """The hooks' fast path: a pinned keyring is a file read and a digest compare."""
    import sys

    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")  # pins policy version 1
    code = ("import sys; from dvc_secure.adapters.local.repo_keyring import load_keyring; "
            "load_keyring('.dvc'); print('pygit2' in sys.modules)")
    assert run([sys.executable, "-c", code], repo.root, repo.env).stdout.strip() == "False"


def test_forked_policy_of_the_same_version_is_rejected(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two different version-2 keyrings (e.g. history rewritten after this clone saw one):
    the clone keeps the one it trusted."""
    import pytest

    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.adapters.local.repo_keyring import load_keyring, save_keyring
    from dvc_secure.core.keys import keyring as kr
    from dvc_secure.core.keys import policy_changes as changes
    from dvc_secure.errors import UntrustedPolicyError

    repo = make_secure_repo()
    dvc_dir = repo.root / ".dvc"
    v1 = load_keyring(dvc_dir)  # pins version 1
    alice = load_identity(repo.env)
    assert alice.signing is not None
    readers = [Person(repo, tmp_path, n) for n in ("rita", "ruth")]
    forks = []
    for who in readers:
        fork = changes.grant(v1, v1.unwrap(alice), name=who.name, recipient=who.recipient,
                        role="reader", signing_key=None, expires=None, now="t")
        fork.sign(alice.signing)
        forks.append(fork)
    save_keyring(dvc_dir, forks[0])
    assert load_keyring(dvc_dir).digest == forks[0].digest  # valid successor, uncommitted
    commit_keyring(repo, "grant rita")
    assert load_keyring(dvc_dir).digest == forks[0].digest  # committed: re-pinned
    save_keyring(dvc_dir, forks[1])
    with pytest.raises(UntrustedPolicyError, match="not the version 2 this clone trusted"):
        load_keyring(dvc_dir)
    save_keyring(dvc_dir, v1)
    assert load_keyring(dvc_dir).digest == v1.digest  # an older version on the chain: readable
    other = kr.Keyring.create(alice, "alice", "t")
    save_keyring(dvc_dir, other)
    with pytest.raises(UntrustedPolicyError, match="another keyring"):
        load_keyring(dvc_dir)


def test_forged_keyring_in_history_does_not_vouch_for_audit_events(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from dvc_secure.core.keys.keyring import Keyring
    from dvc_secure.services.audit_recorder import keyring_signers

    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"sensitive\n")
    repo.dvc("pull", "-q")  # pins policy version 1
    genuine = Keyring.from_json((repo.root / KEYRING).read_text(encoding="utf-8"))
    mallory = _forge_admin_grant(repo, tmp_path)
    repo.git("add", KEYRING)
    repo.git("commit", "-q", "-m", "forged keyring")  # in HEAD's history from now on
    repo.git("checkout", "HEAD~1", "--", KEYRING)
    repo.git("commit", "-q", "-m", "back to the genuine keyring")
    signers = keyring_signers(repo.root, genuine)
    forged = Keyring.from_json(run(["git", "show", f"HEAD~1:{KEYRING}"], repo.root,
                                   repo.env).stdout)
    forged_keys = {m.signing_key for m in forged.members} - {m.signing_key for m in genuine.members}
    assert forged_keys, mallory
    assert not forged_keys & set(signers)
