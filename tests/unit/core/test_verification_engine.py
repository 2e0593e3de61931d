"""The history state machine, fed synthetic revisions. Tests are named after the attack."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import pytest

from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.keys.identity import key_fingerprint
from dvc_secure.core.sidecar.model import AccessMetadata, SealedOutput, Sidecar
from dvc_secure.core.verification import engine as E
from dvc_secure.core.verification import findings as F

WRITER = SigningKeyPair.generate()
READER = SigningKeyPair.generate()
STRANGER = SigningKeyPair.generate()
SHA = "ab" * 32


class Trust:
    def __init__(self, sealers: list[SigningKeyPair], readers: list[SigningKeyPair] = ()) -> None:  # type: ignore[assignment]
        self._sealers = {key_fingerprint(k.public): k.public for k in sealers}
        self._readers = {key_fingerprint(k.public) for k in readers}
        self.expiries: dict[str, str] = {}

    def sealer_keys(self) -> Mapping[str, bytes]:
        return self._sealers

    def role_of(self, keyid: str) -> str | None:
        if keyid in self._sealers:
            return "writer"
        return "reader" if keyid in self._readers else None

    policy_id = "fixed-policy"
    policy_version = 1

    def transition_problems(self, successor: E.TrustView) -> list[str]:
        return []

    def sealer_expiry(self, keyid: str) -> str | None:
        return self.expiries.get(keyid)


TRUST = Trust([WRITER], [READER])


def seal(oid: str, version: int, previous: tuple[str, ...] = (), key: SigningKeyPair = WRITER,
         metafile: str = "data.dvc") -> Sidecar:
    sc = Sidecar(
        metafile=metafile, version=version, previous=previous, sealed_at="2026-11-22T00:00:00Z",
        signer_keyid=key_fingerprint(key.public), git_author="A <a@x>",
        outputs=(SealedOutput("data", oid, SHA, 3, 1, 1, "vault"),),
        access=AccessMetadata(),
    )
    return sc.sign(key)


def snap(rev: str, parents: tuple[str, ...], sc: Sidecar | None, oid: str | None = None,
         trust: E.TrustView | None = TRUST) -> E.Snapshot:
    if oid is None:
        oid = sc.outputs[0].oid if sc else "0" * 32
    mf = E.MetafileState("data.dvc", {"data": oid}, sc)
    return E.Snapshot(rev, parents, {"data.dvc": mf}, trust)


def codes(findings: list[F.Finding]) -> list[str]:
    return [f.code for f in findings]


def linear(v: E.HistoryVerifier, n: int) -> list[Sidecar]:
    out: list[Sidecar] = []
    prev: tuple[str, ...] = ()
    for i in range(1, n + 1):
        sc = seal(f"{i:032x}", i, prev)
        assert v.verify(snap(f"c{i}", (f"c{i - 1}",) if i > 1 else (), sc)) == []
        out.append(sc)
        prev = (sc.digest,)
    return out


def test_honest_linear_history_has_no_findings() -> None:
    linear(E.HistoryVerifier(), 5)


def test_unchanged_revisions_inherit_the_head() -> None:
    v = E.HistoryVerifier()
    (sc,) = linear(v, 1)
    assert v.verify(snap("c2", ("c1",), sc)) == []
    assert v.verify(snap("c3", ("c2",), sc)) == []


def test_metafile_edited_without_reseal_detected() -> None:
    v = E.HistoryVerifier()
    (sc,) = linear(v, 1)
    assert codes(v.verify(snap("c2", ("c1",), sc, oid="f" * 32))) == [F.UNBOUND]


def test_unsealed_output_detected() -> None:
    assert codes(E.HistoryVerifier().verify(snap("c1", (), None))) == [F.UNSEALED]


def test_sidecar_deleted_detected() -> None:
    v = E.HistoryVerifier()
    (sc,) = linear(v, 1)
    assert codes(v.verify(snap("c2", ("c1",), None, oid=sc.outputs[0].oid))) == [F.SIDECAR_DELETED]


def test_sidecar_signed_by_unknown_key_detected() -> None:
    sc = seal("1" * 32, 1, key=STRANGER)
    assert codes(E.HistoryVerifier().verify(snap("c1", (), sc))) == [F.UNTRUSTED_SIGNER]


def test_sidecar_signed_by_reader_detected() -> None:
    sc = seal("1" * 32, 1, key=READER)
    assert codes(E.HistoryVerifier().verify(snap("c1", (), sc))) == [F.READER_SIGNED]


def test_sidecar_edited_after_signing_detected() -> None:
    sc = seal("1" * 32, 1)
    forged = replace(sc, git_author="Mallory <m@x>")
    assert codes(E.HistoryVerifier().verify(snap("c1", (), forged))) == [F.BAD_SIGNATURE]


def test_rollback_to_lower_version_detected() -> None:
    v = E.HistoryVerifier()
    _s1, _s2 = linear(v, 2)
    fake = seal("9" * 32, 1, ())
    assert codes(v.verify(snap("c3", ("c2",), fake))) == [F.ROLLBACK]


def test_repeated_version_detected() -> None:
    v = E.HistoryVerifier()
    s1, _s2 = linear(v, 2)
    again = seal("9" * 32, 2, (s1.digest,))
    assert codes(v.verify(snap("c3", ("c2",), again))) == [F.ROLLBACK]


def test_replayed_older_signed_sidecar_detected() -> None:
    v = E.HistoryVerifier()
    _s1, s2, _s3 = linear(v, 3)
    # a `git revert` or hand copy puts version 2 back
    assert codes(v.verify(snap("c4", ("c3",), s2))) == [F.REPLAY]


def test_version_jump_detected() -> None:
    v = E.HistoryVerifier()
    (s1,) = linear(v, 1)
    jump = seal("2" * 32, 5, (s1.digest,))
    assert codes(v.verify(snap("c2", ("c1",), jump))) == [F.ROLLBACK]


def test_chain_to_foreign_sidecar_detected() -> None:
    v = E.HistoryVerifier()
    (_s1,) = linear(v, 1)
    stray = seal("2" * 32, 2, ("cd" * 32,))
    assert codes(v.verify(snap("c2", ("c1",), stray))) == [F.CHAIN_BROKEN]


def test_fork_merged_without_reseal_detected() -> None:
    v = E.HistoryVerifier()
    (s1,) = linear(v, 1)
    a = seal("a" * 32, 2, (s1.digest,))
    b = seal("b" * 32, 2, (s1.digest,))
    assert v.verify(snap("ca", ("c1",), a)) == []
    assert v.verify(snap("cb", ("c1",), b)) == []
    assert codes(v.verify(snap("m", ("ca", "cb"), a))) == [F.FORK]


def test_fork_resolved_by_merge_seal_is_accepted() -> None:
    v = E.HistoryVerifier()
    (s1,) = linear(v, 1)
    a = seal("a" * 32, 2, (s1.digest,))
    b = seal("b" * 32, 2, (s1.digest,))
    v.verify(snap("ca", ("c1",), a))
    v.verify(snap("cb", ("c1",), b))
    merged = seal("c" * 32, 3, tuple(sorted((a.digest, b.digest))))
    assert v.verify(snap("m", ("ca", "cb"), merged)) == []


def test_merge_dropping_newer_version_detected() -> None:
    v = E.HistoryVerifier()
    s1, _s2 = linear(v, 2)
    # side branch from c1 that never re-sealed, merged and its (older) side kept
    v.verify(snap("side", ("c1",), s1))
    assert codes(v.verify(snap("m", ("c2", "side"), s1))) == [F.ROLLBACK]


def test_fast_forward_merge_is_accepted() -> None:
    v = E.HistoryVerifier()
    s1, s2 = linear(v, 2)
    v.verify(snap("side", ("c1",), s1))
    assert v.verify(snap("m", ("c2", "side"), s2)) == []


def test_dataset_readded_with_old_version_detected() -> None:
    v = E.HistoryVerifier()
    s1, _s2 = linear(v, 2)
    assert v.verify(E.Snapshot("c3", ("c2",), {}, TRUST)) == []  # dataset removed
    assert codes(v.verify(snap("c4", ("c3",), s1))) == [F.REPLAY]


def test_sidecar_copied_from_other_dataset_detected() -> None:
    other = seal("1" * 32, 1, metafile="other.dvc")
    assert F.MISPLACED in codes(E.HistoryVerifier().verify(snap("c1", (), other)))


def test_missing_trust_policy_reported() -> None:
    sc = seal("1" * 32, 1)
    assert codes(E.HistoryVerifier().verify(snap("c1", (), sc, trust=None))) == [F.NO_TRUST]


@pytest.mark.parametrize("n", [1, 3])
def test_findings_name_dataset_revision_and_fix(n: int) -> None:
    v = E.HistoryVerifier()
    scs = linear(v, n)
    (f,) = v.verify(snap("bad", (f"c{n}",), scs[-1], oid="e" * 32))
    assert f.rev == "bad" and f.dataset == "data.dvc"
    assert "dvc-secure seal data.dvc" in f.fix


# --- trust policy transitions, with real keyrings ------------------------------------------

from dvc_secure.core.keys.identity import Identity  # noqa: E402
from dvc_secure.core.keys.keyring import Keyring, Member  # noqa: E402


def _policy_snap(rev: str, parents: tuple[str, ...], ring: Keyring) -> E.Snapshot:
    return E.Snapshot(rev, parents, {}, Keyring.from_json(ring.to_json()))


def test_policy_change_signed_by_previous_admin_accepted() -> None:
    admin = Identity.generate()
    v1 = Keyring.create(admin, "admin", "t")
    v2 = v1.successor()
    v2.threshold = 1
    assert admin.signing is not None
    v2.sign(admin.signing)
    v = E.HistoryVerifier()
    assert v.verify(_policy_snap("c1", (), v1)) == []
    assert v.verify(_policy_snap("c2", ("c1",), v2)) == []


def test_policy_takeover_by_self_signed_admin_detected() -> None:
    admin, mallory = Identity.generate(), Identity.generate()
    assert mallory.signing is not None
    v1 = Keyring.create(admin, "admin", "t")
    forged = v1.successor()
    forged.members.append(Member("mallory", mallory.recipient, "admin", mallory.signing_key, "t"))
    forged.sign(mallory.signing)  # valid under its own member list, not under v1's admins
    v = E.HistoryVerifier()
    v.verify(_policy_snap("c1", (), v1))
    assert codes(v.verify(_policy_snap("c2", ("c1",), forged))) == [F.POLICY_UNAUTHORIZED]


def test_policy_rollback_detected() -> None:
    admin = Identity.generate()
    assert admin.signing is not None
    v1 = Keyring.create(admin, "admin", "t")
    v2 = v1.successor()
    v2.sign(admin.signing)
    v = E.HistoryVerifier()
    v.verify(_policy_snap("c1", (), v1))
    v.verify(_policy_snap("c2", ("c1",), v2))
    assert codes(v.verify(_policy_snap("c3", ("c2",), v1))) == [F.POLICY_ROLLBACK]


def test_policy_threshold_enforced_for_successor() -> None:
    a, b = Identity.generate(), Identity.generate()
    assert a.signing is not None and b.signing is not None
    v1 = Keyring.create(a, "a", "t")
    v2 = v1.successor()
    v2.members.append(Member("b", b.recipient, "admin", b.signing_key, "t"))
    v2.threshold = 2
    v2.sign(a.signing)
    v2.sign(b.signing)
    v3 = v2.successor()
    v3.sign(a.signing)  # only one of the two required admins
    v = E.HistoryVerifier()
    v.verify(_policy_snap("c1", (), v1))
    assert v.verify(_policy_snap("c2", ("c1",), v2)) == []
    # v3 carries threshold 2 itself, so it does not even parse as trusted at c3 ...
    import pytest as _pytest

    from dvc_secure.errors import KeyringError
    with _pytest.raises(KeyringError):
        Keyring.from_json(v3.to_json()).verify_signatures()
    # ... and as a transition it lacks the previous admins' quorum
    assert "requires 2" in v2.transition_problems(v3)[0]


def test_expired_member_still_holding_the_current_key_is_reported() -> None:
    found = E.expired_member_findings("r9", 3, [("bob", "writer", "2026-05-31")])
    assert [(f.rev, f.dataset, f.code) for f in found] == [
        ("r9", ".dvc/secure/keyring.json", F.EXPIRED_MEMBER)]
    assert "2026-05-31" in found[0].message and "epoch 3" in found[0].message
    assert "dvc-secure rotate" in found[0].fix
    assert E.expired_member_findings("r9", 3, []) == []


def test_forged_policy_signed_by_a_new_admin_is_unauthorized() -> None:
    """A keyring that adds its own signer as admin: the engine asks the previous policy."""
    from dvc_secure.core.keys import keyring as kr
    from dvc_secure.core.keys import policy_changes as changes
    from dvc_secure.core.keys.identity import Identity

    alice, mallory = Identity.generate(), Identity.generate()
    assert mallory.signing is not None
    v1 = kr.Keyring.create(alice, "alice", "t")
    forged = changes.grant(v1, v1.unwrap(alice), name="mallory", recipient=mallory.recipient,
                      role="admin", signing_key=mallory.signing_key, expires=None, now="t")
    forged.sign(mallory.signing)
    verifier = E.HistoryVerifier()
    assert verifier.verify(E.Snapshot("r1", (), {}, v1)) == []
    found = verifier.verify(E.Snapshot("r2", ("r1",), {}, forged))
    assert [f.code for f in found] == [F.POLICY_UNAUTHORIZED]
    assert "previous admins" in found[0].message


# --- adoption on existing history ------------------------------------------------------------


def _plain(rev: str, parents: tuple[str, ...], oid: str) -> E.Snapshot:
    """A revision with a DVC metafile and no dvc-secure file at all."""
    return E.Snapshot(rev, parents, {"data.dvc": E.MetafileState("data.dvc", {"data": oid})},
                      None)


def test_history_before_adoption_is_informational_not_failed() -> None:
    v = E.HistoryVerifier()
    found = v.verify(_plain("c1", (), "1" * 32)) + v.verify(_plain("c2", ("c1",), "2" * 32))
    assert codes(found) == [F.BEFORE_ADOPTION] * 2 and F.failing(found) == []
    assert v.verify(snap("c3", ("c2",), seal("3" * 32, 1))) == []  # adopted: sealed v1


def test_removing_the_keyring_after_adoption_is_a_failure() -> None:
    v = E.HistoryVerifier()
    v.verify(_plain("c1", (), "1" * 32))
    assert v.verify(snap("c2", ("c1",), seal("1" * 32, 1))) == []
    # keyring and sidecar gone: the revision looks like pre-adoption history, but is not
    found = v.verify(_plain("c3", ("c2",), "1" * 32))
    assert F.KEYRING_REMOVED in codes(found) and F.BEFORE_ADOPTION not in codes(found)
    # and everything built on it stays adopted
    assert F.KEYRING_REMOVED in codes(v.verify(_plain("c4", ("c3",), "1" * 32)))


# --- grant expiry, judged by the verifier's date ------------------------------------------


def _expiring(last_day: str) -> Trust:
    trust = Trust([WRITER], [READER])
    trust.expiries = {key_fingerprint(WRITER.public): last_day}
    return trust


def test_expired_signer_with_clock_set_back_is_rejected_where_the_seal_arrives() -> None:
    import datetime as dt

    trust = _expiring("2026-11-21")  # the seal claims 2026-11-22 ... and one day earlier:
    back = replace(seal("1" * 32, 1), sealed_at="2026-11-20T00:00:00Z").sign(WRITER)
    late = E.HistoryVerifier(today=dt.date(2026, 12, 1))
    assert codes(late.verify(snap("c1", (), back, trust=trust))) == [F.SIGNED_AFTER_EXPIRY]
    # before the expiry, or in a walk of all history (arrival unknown), it is accepted
    early = E.HistoryVerifier(today=dt.date(2026, 11, 21))
    assert early.verify(snap("c1", (), back, trust=trust)) == []
    walk = E.HistoryVerifier(today=dt.date(2026, 12, 1), arrivals=False)
    assert walk.verify(snap("c1", (), back, trust=trust)) == []
    # once accepted where it arrived, the unchanged sidecar is not judged again later
    early.today = dt.date(2026, 12, 1)
    assert early.verify(snap("c2", ("c1",), back, trust=trust)) == []
    # a seal that itself claims a day after the expiry fails everywhere
    assert codes(walk.verify(snap("d1", (), seal("2" * 32, 1), trust=trust))) == \
        [F.SIGNED_AFTER_EXPIRY]
