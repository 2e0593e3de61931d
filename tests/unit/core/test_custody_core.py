"""The pure custody core with an in-memory KMS: init with a KMS requirement, rotation wraps
the new epoch, a granted member gets the same data keys (admins need no KMS to grant),
and the requirement cannot be dropped without the admins."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pytest

from dvc_secure.core.keys import custody
from dvc_secure.core.keys import policy_changes as changes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import KeyringError, KmsDeniedError

NOW = "2026-12-01T00:00:00Z"


class MemoryKms:
    provider = "aws-kms"

    def __init__(self) -> None:
        self.store: dict[bytes, tuple[str, bytes, dict[str, str]]] = {}
        self.disabled = False

    def wrap(self, key: str, secret: bytes, context: Mapping[str, str]) -> bytes:
        blob = f"ct{len(self.store)}".encode()
        self.store[blob] = (key, secret, dict(context))
        return blob

    def unwrap(self, key: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        held = self.store.get(ciphertext)
        if self.disabled or held is None or held[0] != key or held[2] != dict(context):
            raise KmsDeniedError("refused")
        return held[1]


def _kms_ring(kms: MemoryKms) -> tuple[Keyring, Identity]:
    admin = Identity.generate()
    ring = Keyring.create(admin, "alice", NOW)
    ref = custody.parse_kms_uri("aws-kms://alias/data")
    custody.wrap_epoch(ring, 1, ref, kms)
    custody.require_kms(ring, ref)
    assert admin.signing is not None
    ring.sign(admin.signing)
    return Keyring.from_json(ring.to_json()), admin


def test_both_secrets_are_needed_and_grant_needs_no_kms() -> None:
    kms = MemoryKms()
    ring, admin = _kms_ring(kms)
    assert ring.signed_part()["version"] == 2 and ring.verify_signatures()
    member = ring.unwrap(admin)
    data = custody.data_keyset(member, [ring], lambda _p: kms)
    key1 = data.key_for_epoch(1)
    assert key1 != member.key_for_epoch(1)

    bob = Identity.generate()
    nxt = changes.grant(ring, member, name="bob", recipient=bob.recipient, role="reader",
                        signing_key=None, expires=None, now=NOW)
    bob_data = custody.data_keyset(nxt.unwrap(bob), [nxt], lambda _p: kms)
    assert bob_data.key_for_epoch(1) == key1

    kms.disabled = True  # cut centrally: the member key alone opens nothing
    with pytest.raises(KmsDeniedError):
        custody.data_keyset(nxt.unwrap(bob), [nxt], lambda _p: kms).key_for_epoch(1)


def test_rotation_wraps_the_new_epoch() -> None:
    kms = MemoryKms()
    ring, admin = _kms_ring(kms)
    nxt, _ = changes.rotate(ring, ring.unwrap(admin), now=NOW, today=dt.date(2026, 12, 1))
    with pytest.raises(KeyringError, match="not wrapped by it"):
        Keyring.from_json(nxt.to_json())  # a new epoch without the KMS wrap is refused
    assert custody.complete_new_epoch(nxt, lambda _p: kms)
    assert admin.signing is not None
    nxt.sign(admin.signing)
    again = Keyring.from_json(nxt.to_json())
    assert not ring.transition_problems(again)
    data = custody.data_keyset(again.unwrap(admin), [again], lambda _p: kms)
    assert data.key_for_epoch(2) != data.key_for_epoch(1)
    assert not custody.complete_new_epoch(again, lambda _p: kms)  # nothing left to wrap


def test_dropping_the_requirement_needs_the_admins() -> None:
    kms = MemoryKms()
    ring, admin = _kms_ring(kms)
    nxt = ring.successor()
    custody.require_kms(nxt, None)
    outsider = Identity.generate()
    assert outsider.signing is not None
    nxt.sign(outsider.signing)
    assert ring.transition_problems(Keyring.from_json(nxt.to_json()))
    assert admin.signing is not None
    nxt.sign(admin.signing)
    assert not ring.transition_problems(Keyring.from_json(nxt.to_json()))


def test_plain_keyrings_stay_version_1() -> None:
    admin = Identity.generate()
    ring = Keyring.create(admin, "alice", NOW)
    assert ring.signed_part()["version"] == 1
    member = ring.unwrap(admin)
    assert custody.data_keyset(member, [ring], lambda _p: MemoryKms()) is member
