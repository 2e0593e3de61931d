"""Adversarial review (issue 13 item 6), capability *git push without keys* (or with one
admin key where a threshold of admins is required): the attacker edits what git tracks
(``.dvc`` files, sidecars, the keyring) and gets it committed, bypassing local hooks.

Older tests of the same capability: ``tests/integration/test_sidecar_history.py``
(metafile edited, sidecar hand-edited / deleted, git revert, fork, policy change without
admin signatures, rewritten root policy), ``test_access.py::test_forged_grant_is_rejected``
and ``test_forked_policy_of_the_same_version_is_rejected``, ``test_keyring_trust.py``
(rollback through ``merge -s ours``), ``test_config_attacks.py`` (``.dvc/config``),
``test_hooks.py::test_pre_commit_blocks_rollback_replay``, ``test_reencrypt.py::
test_forged_reencryption_record_is_rejected_by_verify_remote``, ``test_repair.py::
test_upload_record_edited_after_signing_rejected``, ``test_audit.py`` (audit events)."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

import yaml

from dvc_secure.adapters.local.identity_store import load_identity
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import Sidecar
from tests.conftest import DVC, run
from tests.integration.attacks.helpers import add_and_push, finding_codes, forge_sidecar
from tests.integration.secure_helpers import check_failed
from tests.integration.test_access import KEYRING, Person, commit_keyring, grant

BIN = str(Path(sys.executable).parent)


def test_attack_sidecar_of_another_dataset_put_beside_a_metafile(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """A validly signed sidecar of dataset A is committed as the sidecar of dataset B."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"dataset a\n")
    add_and_push(repo, "b.txt", b"dataset b\n")
    (repo.root / "b.txt.dvc.seal").write_bytes((repo.root / "a.txt.dvc.seal").read_bytes())
    repo.git("commit", "-q", "-am", "tidy seals")
    for args in ((), ("--rev", "HEAD~1..HEAD")):
        rc, codes = finding_codes(repo, *args)
        assert rc == 1 and "sidecar-for-other-dataset" in codes, codes


def test_attack_metafile_redirected_and_sidecar_resigned_with_own_key(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The attacker points b.txt.dvc at other content (here: a.txt's object, which is on
    the remote) and re-seals the sidecar by hand with a key of his own, so that metafile and
    sidecar agree and the chain moves forward."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"dataset a\n")
    add_and_push(repo, "b.txt", b"dataset b\n")
    a_meta = yaml.safe_load((repo.root / "a.txt.dvc").read_text())
    b_path = repo.root / "b.txt.dvc"
    b_meta = yaml.safe_load(b_path.read_text())
    b_meta["outs"][0].update(md5=a_meta["outs"][0]["md5"], size=a_meta["outs"][0]["size"])
    b_path.write_text(yaml.safe_dump(b_meta, sort_keys=False))
    a_out = Sidecar.from_bytes((repo.root / "a.txt.dvc.seal").read_bytes(), "a").outputs[0]

    def redirect(sc):  # type: ignore[no-untyped-def]
        out = dataclasses.replace(a_out, path=sc.outputs[0].path)
        return dataclasses.replace(sc, outputs=(out,))

    forge_sidecar(repo, "b.txt.dvc", Identity.generate(), redirect)
    repo.git("commit", "-q", "-am", "update b")
    for args in ((), ("--rev", "HEAD~1..HEAD")):
        rc, codes = finding_codes(repo, *args)
        assert rc == 1 and "untrusted-signer" in codes, codes


def test_attack_one_admin_lowers_the_threshold_alone(make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With a threshold of two admins, one admin (or whoever stole one admin key) writes
    policy version N+1 with threshold 1, signs it alone and commits it; every later change
    would then need only him."""
    repo = make_secure_repo()
    add_and_push(repo, "a.txt", b"sensitive\n")
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin")
    repo.secure("threshold", "2")
    bob.secure("approve")
    commit_keyring(repo, "threshold 2")
    # the honest client only makes it pending
    assert "PENDING" in repo.secure("threshold", "1").stdout
    repo.secure("approve", "--discard")

    path = repo.root / KEYRING
    ring = Keyring.from_json(path.read_text())
    forged = ring.successor()
    forged.threshold = 1
    alice = load_identity(repo.env)
    assert alice.signing is not None
    forged.sign(alice.signing)
    path.write_text(forged.to_json())
    commit_keyring(repo, "simplify approvals")

    rc, codes = finding_codes(repo, "--rev", "HEAD~1..HEAD")
    assert rc == 1 and "policy-change-unauthorized" in codes, codes
    (repo.root / "b.txt").write_text("pushed under the forged policy\n")
    repo.dvc("add", "-q", "b.txt")
    check_failed(repo.dvc("push", check=False), "signed by 1 of the previous admins",
                 "requires 2")
    clone = tmp_path / "fresh-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, repo.env)
    check_failed(run([*DVC, "pull"], clone, repo.env, check=False), "previous admins")


def test_attack_commit_with_hooks_bypassed_is_caught_by_the_ci_gate(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    """Hooks are the developer's, not a control: ``git commit --no-verify`` (or
    ``core.hooksPath`` pointed elsewhere, which git never transfers) commits a metafile that
    was not sealed. The CI range gate fails."""
    repo = make_secure_repo()
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    repo.secure("install")
    add_and_push(repo, "a.txt", b"v1\n")
    base = repo.git("rev-parse", "HEAD").stdout.strip()
    (repo.root / "a.txt").write_bytes(b"v2, never sealed nor pushed\n")
    repo.dvc("add", "-q", "a.txt")
    # the hooks block it, --no-verify included (not only pre-commit checks)
    check_failed(repo.git("commit", "-q", "-am", "v2", check=False), "not on the secure remote")
    check_failed(repo.git("commit", "-q", "--no-verify", "-am", "v2", check=False),
                 "not on the secure remote")
    repo.git("config", "core.hooksPath", "/dev/null")  # local only: git never transfers it
    repo.git("commit", "-q", "--no-verify", "-am", "v2 without hooks")
    rc, codes = finding_codes(repo, "--rev", f"{base}..HEAD")
    assert rc == 1 and "metafile-not-bound" in codes, codes


def test_attack_keyring_deleted_and_plain_default_remote_reach_a_fresh_clone(
        pushed_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One commit deletes the keyring (which holds the remote pin) and makes a plain remote
    of the attacker's the default. A clone that already trusts the policy refuses
    (``test_config_attacks.py::test_keyring_deleted_by_commit_cannot_unpin_remotes``); here
    the victim is a *fresh* clone, e.g. a CI job that produces data and pushes it: it used to
    push plaintext there (no keyring, no trust pin, so nothing to enforce)."""
    from tests.integration.secure_helpers import MARKER, files_under

    repo = pushed_repo
    evil = tmp_path / "attacker-storage"
    repo.git("rm", "-q", KEYRING)
    repo.dvc("remote", "add", "evil", str(evil))
    repo.dvc("remote", "default", "evil")
    repo.git("add", ".dvc/config")
    repo.git("commit", "-q", "-m", "simplify storage")
    rc, codes = finding_codes(repo, "--rev", "HEAD~1..HEAD")
    assert rc == 1 and "keyring-removed" in codes, codes

    clone = tmp_path / "ci-clone"
    run(["git", "clone", "-q", str(repo.root), str(clone)], tmp_path, repo.env)
    (clone / "out.txt").write_bytes(MARKER + b" produced by the job\n")
    run([*DVC, "add", "-q", "out.txt"], clone, repo.env)
    proc = run([*DVC, "push"], clone, repo.env, check=False)
    check_failed(proc, "keyring.json is missing", "git history has a keyring",
                 "git checkout")
    assert not [p for p in files_under(evil) if MARKER in p.read_bytes()]
    assert not list(evil.rglob("files")), "DVC's MD5 layout appeared in the attacker's storage"


def test_attack_pending_change_swapped_before_the_second_admin_approves(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With a threshold of 2, a change waits in the committed ``keyring.pending.json`` for a
    second admin. Carol, granted reader by that change and able to push to git, edits the
    pending file: she becomes admin, with her signing key. Alice's signature no longer
    covers it, so one approval does not apply it; ``approve`` shows every admin what they
    sign, and who signed it before, so nobody approves it blind (was: "approved policy
    version N" and nothing else)."""
    repo = make_secure_repo()
    bob = Person(repo, tmp_path, "bob")
    grant(repo, bob, "admin")
    repo.secure("threshold", "2")
    bob.secure("approve")
    commit_keyring(repo, "threshold 2")
    carol = Person(repo, tmp_path, "carol")
    keyring = (repo.root / KEYRING).read_bytes()

    repo.secure("grant", carol.recipient, "--role", "reader", "--name", "carol")
    commit_keyring(repo, "grant carol reader (pending)")
    pending = repo.root / ".dvc/secure/keyring.pending.json"
    honest = Keyring.from_json(pending.read_text())
    swapped = Keyring.from_json(honest.to_json())
    member = next(m for m in swapped.members if m.name == "carol")
    member.role, member.signing_key = "admin", carol.signing_key
    pending.write_text(swapped.to_json())
    commit_keyring(repo, "pending: fix carol's grant")

    out = bob.secure("approve").stdout
    assert "adds member 'carol' as admin" in out, out
    assert "signed before by: none of the current admins" in out, out
    assert "PENDING: 1 of 2" in out, out
    assert (repo.root / KEYRING).read_bytes() == keyring  # not in effect
    # the honest change, approved, says what it is and who proposed it
    repo.secure("approve", "--discard")
    repo.secure("grant", carol.recipient, "--role", "reader", "--name", "carol")
    out = bob.secure("approve").stdout
    assert "adds member 'carol' as reader" in out and "signed before by: alice" in out, out
