"""Adversarial review (issue 13 item 6), capabilities *revoked member* and *expired
member*: someone who was granted access keeps their identity, an old clone and their old
keyring, and tries to keep writing or governing after the revocation / expiry.

Older tests of the same capabilities: ``tests/integration/test_revoked_writer.py``
(old-epoch ciphertext over a sealed object), ``test_access.py::test_revoked_member_cannot_
decrypt_after_revocation``, ``test_reencrypt.py::test_revoked_member_cannot_read_objects_
after_revoke_reencrypt``, ``test_expiry.py`` (clock set back), ``test_access.py::
test_expired_writer_cannot_seal``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from tests.conftest import DVC_SECURE, run
from tests.integration.attacks.helpers import add_and_push, finding_codes
from tests.integration.secure_helpers import check_failed, days_later
from tests.integration.test_access import (
    KEYRING,
    Person,
    commit_keyring,
    grant,
    storage_snapshot,
)

TODAY = dt.datetime.now(dt.timezone.utc).date()


def test_attack_revoked_writer_seals_on_a_stale_clone_and_gets_it_merged(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Bob cloned while he was a writer. After his revocation he keeps working in that clone
    (its keyring still lists him, so his own client and hooks are happy), pushes objects
    and seals a dataset on a branch that forks from before the revocation; the branch is
    merged into main. The merge result must not verify: his signature is not trusted by
    the policy in force there."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"main data\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "writer")
    clone = tmp_path / "bob-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, bob.env)
    main = repo.git("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()

    repo.secure("revoke", "bob")
    commit_keyring(repo, "revoke bob")
    # in the admin's repository (current keyring) bob can neither push nor seal
    (repo.root / "x.txt").write_text("bob, current keyring\n")
    bob.dvc("add", "-q", "x.txt")
    before = storage_snapshot(repo)
    check_failed(bob.dvc("push", check=False), "not a member")
    check_failed(bob.secure("seal", "x.txt.dvc", "--offline", check=False), "not a member")
    assert storage_snapshot(repo) == before
    (repo.root / "x.txt").unlink()
    (repo.root / "x.txt.dvc").unlink()
    repo.git("checkout", "--", ".gitignore")

    # in his stale clone, on a branch forked before the revocation
    run(["git", "checkout", "-q", "-b", "bob-work"], clone, bob.env)
    (clone / "b.txt").write_bytes(b"bob's late data\n")
    bob.dvc("add", "-q", "b.txt", cwd=clone)
    bob.dvc("push", "-q", cwd=clone)
    bob.secure("seal", "b.txt.dvc", cwd=clone)
    run(["git", "add", "b.txt.dvc", "b.txt.dvc.seal", ".gitignore"], clone, bob.env)
    run(["git", "commit", "-q", "-m", "bob: more data"], clone, bob.env)

    repo.git("fetch", "-q", str(clone), "bob-work:bob-work")
    base = repo.git("rev-parse", "HEAD").stdout.strip()
    repo.git("merge", "-q", "--no-edit", "bob-work")
    assert (repo.root / "b.txt.dvc.seal").is_file()
    assert json.loads((repo.root / KEYRING).read_text())["signed"]["policy_version"] == 3
    for args in ((), ("--rev", f"{base}..HEAD"), ("--rev", f"{main}~1..{main}")):
        rc, codes = finding_codes(repo, *args)
        assert rc == 1 and "untrusted-signer" in codes, (args, codes)


def test_attack_expired_admin_renews_his_own_grant(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An admin whose grant expired re-grants himself (a new expiry) or changes the policy;
    his own client must refuse, as it refuses sealing (was possible before issue 13
    item 6: only sealing and pushing checked the expiry)."""
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin", "--expires", TODAY.isoformat())
    keyring = (repo.root / KEYRING).read_bytes()
    bob.env = days_later(bob.env, 3)
    far = (TODAY + dt.timedelta(days=365)).isoformat()
    carol = Person(repo, tmp_path, "carol")
    for args in (("grant", bob.recipient, "--role", "admin", "--signing-key", bob.signing_key,
                  "--name", "bob", "--expires", far),
                 ("grant", carol.recipient, "--role", "writer", "--signing-key",
                  carol.signing_key, "--name", "carol"),
                 ("revoke", "alice"),
                 ("rotate",)):
        check_failed(bob.secure(*args, check=False), f"expired on {TODAY}")
    assert (repo.root / KEYRING).read_bytes() == keyring
    # a pending change of a valid admin cannot be approved by him either
    run([*DVC_SECURE, "threshold", "2"], repo.root, days_later(repo.env, 3))
    check_failed(bob.secure("approve", check=False), f"expired on {TODAY}")
    assert (repo.root / KEYRING).read_bytes() == keyring


def test_attack_expired_admin_with_clock_set_back_renews_his_own_grant(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Fixed (issue 13 item 6): the verifier's date decides. A policy change that arrives
    after a signer's expiry does not count his signature: the CI gate over the range, and
    another clone whose trust pin would advance to it, both refuse it."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"data\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin", "--expires", TODAY.isoformat())
    # alice's other clone trusts policy version 2 (bob an admin until today)
    clone = tmp_path / "alice-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, repo.env)
    run([*DVC_SECURE, "members"], clone, repo.env)
    # three days later, bob's clock set back to today: his client lets him renew himself
    far = (TODAY + dt.timedelta(days=365)).isoformat()
    bob.secure("grant", bob.recipient, "--role", "admin", "--signing-key", bob.signing_key,
               "--name", "bob", "--expires", far)
    commit_keyring(repo, "renew bob")
    later = days_later(repo.env, 3)
    rc, codes = finding_codes(repo, "--rev", "HEAD~1..HEAD", env=later)
    assert rc == 1 and codes == ["policy-change-unauthorized"], codes
    run(["git", "pull", "-q", "--no-rebase"], clone, later)
    check_failed(run([*DVC_SECURE, "members"], clone, later, check=False),
                 f"had expired by {TODAY + dt.timedelta(days=3)}")
    # judged on the day it arrived (today, bob still valid), the same change verifies
    assert finding_codes(repo, "--rev", "HEAD~1..HEAD") == (0, [])
