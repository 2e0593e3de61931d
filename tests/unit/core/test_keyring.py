"""The repository keyring (docs/spec/keyring.md)."""

from __future__ import annotations

import contextlib
import copy
import datetime
import hashlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvc_secure.core.format.primitives import (
    AeadFailure,
    SigningKeyPair,
    X25519KeyPair,
    x25519_unwrap,
)
from dvc_secure.core.keys import policy_changes as changes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Epoch, Keyring, KeySet, Member
from dvc_secure.errors import AccessDeniedError, KeyringError, NoKeyForEpochError

NOW = "2026-01-01T00:00:00Z"


def fixed_identity(label: str, signing: bool = True) -> Identity:
    enc = X25519KeyPair.from_private(hashlib.sha256(label.encode() + b" x").digest())
    sig = SigningKeyPair.from_private(hashlib.sha256(label.encode() + b" s").digest())
    return Identity(enc, sig if signing else None)


ALICE = fixed_identity("alice")
BOB = fixed_identity("bob")
CAROL = fixed_identity("carol", signing=False)
MALLORY = fixed_identity("mallory")


def sign(ring: Keyring, *who: Identity) -> Keyring:
    ring.signatures = []
    for ident in who or (ALICE,):
        assert ident.signing is not None
        ring.sign(ident.signing)
    return ring


def two_epoch_ring() -> tuple[Keyring, bytes, bytes]:
    """alice admin, bob writer, carol reader (epoch 1 only); secrets of epochs 1 and 2."""
    ring = Keyring.create(ALICE, "alice", NOW)
    secret1 = ring.unwrap(ALICE)
    s1 = secret1.data_keys[1] + secret1.name_secret
    s2 = hashlib.sha256(b"epoch 2 data key").digest() + secret1.name_secret
    ring.members += [
        Member("bob", BOB.recipient, "writer", BOB.signing_key, NOW),
        Member("carol", CAROL.recipient, "reader", None, NOW),
    ]
    ring.epochs[0].stanzas += [ring.wrap_to(BOB.recipient, 1, s1), ring.wrap_to(CAROL.recipient, 1, s1)]
    ring.epochs.append(
        Epoch(2, NOW, [ring.wrap_to(ALICE.recipient, 2, s2), ring.wrap_to(BOB.recipient, 2, s2)])
    )
    ring.current_epoch = 2
    return sign(ring), s1, s2


RING, S1, S2 = two_epoch_ring()
TEXT = RING.to_json()


def reparse(text: str) -> Keyring:
    return Keyring.from_json(text)


def test_create_serialise_parse_verify_unwrap() -> None:
    ring = Keyring.create(ALICE, "alice", NOW)
    parsed = reparse(ring.to_json())
    assert parsed.verify_signatures() == [ALICE.signing.public.hex()[:16]]  # type: ignore[union-attr]
    keys = parsed.unwrap(ALICE)
    assert keys.current_epoch == 1 and set(keys.data_keys) == {1}
    assert len(keys.data_keys[1]) == 32 and len(keys.name_secret) == 32
    assert len(parsed.keyring_id) == 32
    assert parsed.to_json() == ring.to_json()
    assert parsed.writer_keys() == frozenset({ALICE.signing.public})  # type: ignore[union-attr]


def test_members_get_the_epochs_they_were_given() -> None:
    ring = reparse(TEXT)
    ring.verify_signatures()
    alice, bob, carol = ring.unwrap(ALICE), ring.unwrap(BOB), ring.unwrap(CAROL)
    assert alice.data_keys == bob.data_keys == {1: S1[:32], 2: S2[:32]}
    assert carol.data_keys == {1: S1[:32]}  # revoked at epoch 2
    assert alice.name_secret == carol.name_secret == S1[32:]
    with pytest.raises(NoKeyForEpochError, match="epoch 2"):
        carol.key_for_epoch(2)
    with pytest.raises(NoKeyForEpochError, match="not a member"):
        ring.unwrap(MALLORY)
    assert ring.writer_keys() == frozenset({ALICE.signing.public, BOB.signing.public})  # type: ignore[union-attr]


def test_key_for_epoch_error_names_the_epoch() -> None:
    keys = KeySet(data_keys={1: bytes(32)}, name_secret=bytes(32), current_epoch=1)
    assert keys.key_for_epoch(1) == bytes(32)
    with pytest.raises(NoKeyForEpochError, match="key epoch 7 "):
        keys.key_for_epoch(7)
    assert "00" * 8 not in repr(keys)


def test_canonical_bytes() -> None:
    signed = json.loads(TEXT)["signed"]
    assert (
        RING.canonical_bytes()
        == json.dumps(signed, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    )
    assert RING.digest == hashlib.sha256(RING.canonical_bytes()).hexdigest()


EDITS: dict[str, Any] = {
    "role": lambda s: s["members"][1].__setitem__("role", "admin"),
    "member name": lambda s: s["members"][2].__setitem__("name", "carola"),
    "member added": lambda s: s["members"].append(
        {
            "name": "mallory",
            "recipient": MALLORY.recipient,
            "role": "admin",
            "signing_key": MALLORY.signing_key,
            "added": NOW,
        }
    ),
    "member removed": lambda s: s["members"].pop(1),
    "signing key": lambda s: s["members"][1].__setitem__("signing_key", MALLORY.signing_key),
    "epoch created": lambda s: s["epochs"][0].__setitem__("created", "yesterday"),
    "stanza removed": lambda s: s["epochs"][1]["stanzas"].pop(),
    "unknown field added": lambda s: s.__setitem__("x-note", "hi"),
    "added date": lambda s: s["members"][0].__setitem__("added", "2020-01-01"),
}


@pytest.mark.parametrize("edit", EDITS.values(), ids=EDITS.keys())
def test_tampered_keyring_rejected(edit: Any) -> None:
    doc = json.loads(TEXT)
    edit(doc["signed"])
    ring = reparse(json.dumps(doc))
    with pytest.raises(KeyringError, match="not signed by an admin"):
        ring.verify_signatures()


def test_only_admin_signatures_count() -> None:
    for signer in (BOB, MALLORY):
        ring = sign(reparse(TEXT), signer)
        with pytest.raises(KeyringError):
            reparse(ring.to_json()).verify_signatures()


def test_threshold_counts_distinct_admins() -> None:
    ring = reparse(TEXT)
    ring.members[1].role = "admin"
    ring.threshold = 2
    sign(ring, ALICE)
    ring.signatures.append(dict(ring.signatures[0]))  # the same signature twice
    with pytest.raises(KeyringError):
        reparse(ring.to_json()).verify_signatures()
    sign(ring, ALICE, BOB)
    assert len(reparse(ring.to_json()).verify_signatures()) == 2


def test_stanza_copied_to_another_epoch_fails() -> None:
    ring = reparse(TEXT)
    carol_epoch1 = next(s for s in ring.epochs[0].stanzas if s.recipient == CAROL.recipient)
    ring.epochs[1].stanzas.append(copy.deepcopy(carol_epoch1))
    sign(ring)  # even an admin-signed keyring cannot make the copy open
    ring = reparse(ring.to_json())
    ring.verify_signatures()
    with pytest.raises(KeyringError, match="epoch 2"):
        ring.unwrap(CAROL)


def test_stanza_copied_from_another_keyring_fails() -> None:
    other = Keyring.create(ALICE, "alice", NOW)
    ring = reparse(TEXT)
    ring.epochs[0].stanzas = [s for s in ring.epochs[0].stanzas if s.recipient != ALICE.recipient]
    ring.epochs[0].stanzas.append(other.epochs[0].stanzas[0])
    sign(ring)
    with pytest.raises(KeyringError, match="does not open"):
        reparse(ring.to_json()).unwrap(ALICE)


def test_low_order_ephemeral_share_is_a_keyring_error() -> None:
    ring = reparse(TEXT)
    ring.epochs[1].stanzas[0].ephemeral = bytes(32)
    with pytest.raises(KeyringError):
        ring.unwrap(ALICE)
    with pytest.raises(AeadFailure):
        x25519_unwrap(ALICE.encryption, bytes(32), bytes(80), b"label")


def test_unknown_fields_preserved_on_round_trip() -> None:
    doc = json.loads(TEXT)
    doc["x-top"] = "outside signed: not kept"
    doc["signed"]["x-future"] = {"a": [1, 2]}
    doc["signed"]["members"][0]["x-member"] = 1
    doc["signed"]["epochs"][0]["x-epoch"] = True
    doc["signed"]["epochs"][0]["stanzas"][0]["x-stanza"] = None
    ring = reparse(json.dumps(doc))
    sign(ring)
    again = reparse(ring.to_json())
    again.verify_signatures()
    signed = json.loads(again.to_json())["signed"]
    assert signed["x-future"] == {"a": [1, 2]}
    assert signed["members"][0]["x-member"] == 1
    assert signed["epochs"][0]["x-epoch"] is True
    assert signed["epochs"][0]["stanzas"][0]["x-stanza"] is None
    assert "x-top" not in json.loads(again.to_json())
    assert again.unwrap(ALICE).data_keys[1] == S1[:32]


def test_unknown_fields_are_covered_by_the_signature() -> None:
    doc = json.loads(TEXT)
    doc["signed"]["epochs"][0]["stanzas"][0]["x-stanza"] = "added after signing"
    with pytest.raises(KeyringError):
        reparse(json.dumps(doc)).verify_signatures()


def _broken(edit: Any) -> str:
    doc = json.loads(TEXT)
    edit(doc["signed"])
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s.__setitem__("format", "x"), "format"),
        (lambda s: s.__setitem__("version", 2), "version 2"),
        (lambda s: s.__setitem__("keyring_id", "not-hex"), "keyring_id"),
        (lambda s: s.__setitem__("keyring_id", "\ud800" * 32), "keyring_id"),
        (lambda s: s.__setitem__("current_epoch", True), "current_epoch"),
        (lambda s: s["epochs"][0].__setitem__("epoch", 1 << 32), "out of range"),
        (lambda s: s["members"][0].__setitem__("recipient", "age1qqqq"), "recipient is invalid"),
        (lambda s: s["members"][1].__setitem__("signing_key", ""), "signing_key is invalid"),
        (lambda s: s["members"][1].__setitem__("signing_key", 5), "must be a string"),
        (lambda s: s["members"][2].__setitem__("role", "writer"), "no signing key"),
        (lambda s: s["epochs"][0]["stanzas"][0].__setitem__("ephemeral", "AAAA"), "wrong length"),
        (lambda s: s["epochs"][0]["stanzas"][0].pop("body"), "lacks 'body'"),
        (lambda s: s.__setitem__("members", {}), "members must be list"),
        (lambda s: s.__setitem__("threshold", 0), "threshold"),
        (lambda s: s.__setitem__("previous", "ab"), "previous"),
    ],
)
def test_malformed_keyring_rejected(edit: Any, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        reparse(_broken(edit))


@settings(max_examples=150, deadline=None)
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_any_json_is_parsed_or_rejected_with_a_keyring_error(data: Any) -> None:
    for doc in (
        data,
        {"signed": data, "signatures": []},
        {"signed": {**json.loads(TEXT)["signed"], "members": data}},
    ):
        with contextlib.suppress(KeyringError):
            reparse(json.dumps(doc))


def test_reader_identity_cannot_create_a_keyring() -> None:
    with pytest.raises(KeyringError, match="signing key"):
        Keyring.create(CAROL, "carol", NOW)


# --- access control: grant / revoke / rotate / threshold / expiry / former signers ----------

DAY = datetime.date(2026, 6, 1)


def admin_ring() -> tuple[Keyring, KeySet]:
    ring = Keyring.create(ALICE, "alice", NOW)
    return ring, ring.unwrap(ALICE)


def applied(prev: Keyring, nxt: Keyring, *who: Identity) -> Keyring:
    """Sign ``nxt`` and check it is a valid successor, then re-parse it."""
    sign(nxt, *who)
    assert prev.transition_problems(nxt) == []
    again = Keyring.from_json(nxt.to_json())
    again.verify_signatures()
    return again


def test_grant_writer_is_a_signed_successor_with_every_epoch() -> None:
    ring, keys = admin_ring()
    nxt = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                 signing_key=BOB.signing_key, expires=None, now=NOW))
    assert nxt.policy_version == 2 and nxt.previous == ring.digest
    assert nxt.unwrap(BOB).data_keys == keys.data_keys
    assert BOB.signing is not None and BOB.signing.public in nxt.writer_keys()


def test_grant_current_only_withholds_older_epochs() -> None:
    ring, keys = admin_ring()
    two, _ = changes.rotate(ring, keys, now=NOW, today=DAY)
    two = applied(ring, two)
    keys2 = two.unwrap(ALICE)
    three = applied(two, changes.grant(two, keys2, name="carol", recipient=CAROL.recipient,
                                  role="reader", signing_key=None, expires=None, now=NOW,
                                  history=False))
    carol = three.unwrap(CAROL)
    assert sorted(carol.data_keys) == [2]
    with pytest.raises(NoKeyForEpochError, match="epoch 1"):
        carol.key_for_epoch(1)


def test_reader_signing_key_is_never_a_sealer_key() -> None:
    ring, keys = admin_ring()
    nxt = applied(ring, changes.grant(ring, keys, name="mallory", recipient=MALLORY.recipient,
                                 role="reader", signing_key=MALLORY.signing_key, expires=None,
                                 now=NOW))
    assert MALLORY.signing is not None
    assert MALLORY.signing.public not in nxt.writer_keys()
    assert not nxt.trusts_object_signer(MALLORY.signing.public, 1)
    with pytest.raises(AccessDeniedError, match="role: reader"):
        changes.check_may_seal(nxt.member_for(MALLORY), DAY)


def test_writer_and_admin_grants_need_a_signing_key() -> None:
    ring, keys = admin_ring()
    with pytest.raises(KeyringError, match="signing key"):
        changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                 signing_key=None, expires=None, now=NOW)


def test_revoke_starts_an_epoch_the_revoked_member_cannot_open() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                  signing_key=BOB.signing_key, expires=None, now=NOW))
    after = applied(ring, changes.revoke(ring, keys, member="bob", now=NOW))
    assert after.current_epoch == 2 and after.member_for(BOB) is None
    alice = after.unwrap(ALICE)
    assert alice.name_secret == keys.name_secret  # hidden names do not change
    assert alice.data_keys[2] != alice.data_keys[1]
    with pytest.raises(NoKeyForEpochError):
        after.unwrap(BOB)
    # even with the old keyring bob has no key for what is pushed after revocation
    with pytest.raises(NoKeyForEpochError, match="epoch 2"):
        ring.unwrap(BOB).key_for_epoch(2)


def test_revoked_writer_stays_trusted_only_for_epochs_it_could_write() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                  signing_key=BOB.signing_key, expires=None, now=NOW))
    after = applied(ring, changes.revoke(ring, keys, member="bob", now=NOW))
    assert BOB.signing is not None
    assert after.trusts_object_signer(BOB.signing.public, 1)
    assert not after.trusts_object_signer(BOB.signing.public, 2)
    assert BOB.signing.public not in after.writer_keys()
    assert [(f.name, f.last_epoch) for f in after.former_signers] == [("bob", 1)]


def test_demoting_a_writer_rotates_and_retires_its_signing_key() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                  signing_key=BOB.signing_key, expires=None, now=NOW))
    demoted = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient,
                                     role="reader", signing_key=None, expires=None, now=NOW))
    assert demoted.current_epoch == 2 and demoted.member_for(BOB).role == "reader"  # type: ignore[union-attr]
    assert BOB.signing is not None
    assert not demoted.trusts_object_signer(BOB.signing.public, 2)
    assert demoted.trusts_object_signer(BOB.signing.public, 1)
    assert sorted(demoted.unwrap(BOB).data_keys) == [1, 2]  # still a reader


def test_rotate_drops_expired_members_only() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                  signing_key=BOB.signing_key, expires="2026-05-31", now=NOW))
    ring = applied(ring, changes.grant(ring, keys, name="carol", recipient=CAROL.recipient,
                                  role="reader", signing_key=None, expires="2026-06-01", now=NOW))
    nxt, dropped = changes.rotate(ring, keys, now=NOW, today=DAY)
    nxt = applied(ring, nxt)
    assert dropped == ["bob"]
    assert sorted(nxt.unwrap(CAROL).data_keys) == [1, 2]
    with pytest.raises(NoKeyForEpochError):
        nxt.unwrap(BOB)


def test_expired_writer_cannot_seal_but_unexpired_can() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="writer",
                                  signing_key=BOB.signing_key, expires="2026-05-31", now=NOW))
    bob = ring.member_for(BOB)
    assert changes.check_may_seal(bob, datetime.date(2026, 5, 31)) is bob  # last valid day
    with pytest.raises(AccessDeniedError, match="expired on 2026-05-31"):
        changes.check_may_seal(bob, DAY)


def test_threshold_change_and_limits() -> None:
    ring, keys = admin_ring()
    ring = applied(ring, changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="admin",
                                  signing_key=BOB.signing_key, expires=None, now=NOW))
    two = changes.set_threshold(ring, 2)
    sign(two, ALICE)
    assert ring.transition_problems(two) == []  # the previous policy needed one admin
    with pytest.raises(KeyringError, match="not signed"):
        Keyring.from_json(two.to_json()).verify_signatures()  # but it needs two itself
    two = applied(ring, two, ALICE, BOB)
    with pytest.raises(KeyringError, match="threshold"):
        changes.set_threshold(two, 3)
    with pytest.raises(KeyringError, match="threshold"):
        changes.revoke(two, keys, member="bob", now=NOW)  # would leave 1 admin for threshold 2
    one_sig = sign(changes.set_threshold(two, 1), ALICE)
    assert any("requires 2" in p for p in two.transition_problems(one_sig))


def test_forged_grant_is_rejected() -> None:
    """A self-signed keyring adding an admin is self-consistent but not a valid successor."""
    ring, keys = admin_ring()
    forged = changes.grant(ring, keys, name="mallory", recipient=MALLORY.recipient, role="admin",
                      signing_key=MALLORY.signing_key, expires=None, now=NOW)
    sign(forged, MALLORY)
    assert Keyring.from_json(forged.to_json()).verify_signatures()  # passes on its own
    assert any("previous admins" in p for p in ring.transition_problems(forged))


@pytest.mark.parametrize("value", ["2026-13-01", "tomorrow", "2026-1-1", None, 20260101])
def test_malformed_expiry_rejected(value: Any) -> None:
    ring, _ = admin_ring()
    doc = json.loads(ring.to_json())
    doc["signed"]["members"][0]["expires"] = value
    with pytest.raises(KeyringError, match="expires"):
        Keyring.from_json(json.dumps(doc))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["grant-bob", "grant-carol", "revoke-bob", "revoke-carol",
                                 "rotate"]), max_size=6))
def test_any_sequence_of_changes_is_a_valid_chain(ops: list[str]) -> None:
    ring, keys = admin_ring()
    who = {"bob": BOB, "carol": CAROL}
    for op in ops:
        action, _, name = op.partition("-")
        present = name and ring.member_for(who[name]) is not None
        if action == "grant" and not present:
            ident = who[name]
            nxt = changes.grant(ring, keys, name=name, recipient=ident.recipient,
                           role="writer" if ident.signing else "reader",
                           signing_key=ident.signing_key, expires=None, now=NOW)
        elif action == "revoke" and present:
            nxt = changes.revoke(ring, keys, member=name, now=NOW)
        elif action == "rotate":
            nxt, _ = changes.rotate(ring, keys, now=NOW, today=DAY)
        else:
            continue
        ring = applied(ring, nxt)
        name_secret = keys.name_secret
        keys = ring.unwrap(ALICE)
        assert keys.name_secret == name_secret  # shared across epochs
        for ident in who.values():
            member = ring.member_for(ident)
            if member is None:
                with pytest.raises(NoKeyForEpochError):
                    ring.unwrap(ident).key_for_epoch(ring.current_epoch)
            else:
                assert ring.current_epoch in ring.unwrap(ident).data_keys
