"""Key custody, pure part: the extension point for KMS providers and the KMS wrapping of
epoch data keys (docs/spec/keyring.md §5a/§6a, docs/custody.md).

A provider is anything with ``wrap``/``unwrap`` (:class:`KeyWrapper`); the adapters
(``adapters/custody``) implement it for AWS KMS and look providers up by name. The core
never talks to a KMS: it asks the wrapper it is given, and combines the result with the
member's stanza secret in ``core/format/custody.py``.

Two key sets exist for a member: the *member* key set (``Keyring.unwrap``: what the
stanzas hold, re-wrapped by admins to new members, needs no KMS) and the *data* key set
(:func:`data_keyset`: what objects are encrypted with; a KMS epoch's key needs the KMS).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from dvc_secure.core.format.custody import KMS_SECRET_LEN, combine_kms_secret
from dvc_secure.core.format.primitives import random_bytes
from dvc_secure.core.keys.custody_fields import (
    KEY_REF,
    KMS_FIELD,
    PROVIDER,
    parse_epoch_kms,
    parse_requirement,
)
from dvc_secure.core.keys.keyring import Keyring, KeySet
from dvc_secure.errors import ConfigurationError, CustodyError, DvcSecureError

KNOWN_PROVIDERS = ("aws-kms",)  # planned beside it: "gcp-kms", "azure-kv" (docs/custody.md)


class KeyWrapper(Protocol):
    """One KMS provider. ``key`` is the key reference as written in the keyring; ``context``
    is bound to the ciphertext (AWS: EncryptionContext; providers without one rely on the
    HKDF binding of §6a). Errors are :class:`CustodyError` (``KmsDeniedError`` for refusals)."""

    provider: str

    def wrap(self, key: str, secret: bytes, context: Mapping[str, str]) -> bytes: ...

    def unwrap(self, key: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes: ...


WrapperFor = Callable[[str], KeyWrapper]


@dataclass(frozen=True)
class KmsRef:
    provider: str
    key: str

    @property
    def uri(self) -> str:
        return f"{self.provider}://{self.key}"


def parse_kms_uri(text: str) -> KmsRef:
    """``aws-kms://<key id | alias/name | ARN>`` -> KmsRef."""
    provider, sep, key = text.partition("://")
    if not sep or not PROVIDER.fullmatch(provider) or not KEY_REF.fullmatch(key):
        raise ConfigurationError(f"not a KMS key URI: {text!r}",
                                 hint="write it as aws-kms://<key id, alias/NAME or ARN>")
    if provider not in KNOWN_PROVIDERS:
        raise ConfigurationError(f"unknown KMS provider '{provider}'",
                                 hint=f"supported: {', '.join(KNOWN_PROVIDERS)}")
    return KmsRef(provider, key)


def kms_context(keyring_id: str, epoch: int) -> dict[str, str]:
    """What a KMS binds to the wrapped secret (and logs with every unwrap)."""
    return {"dvc-secure:keyring": keyring_id, "dvc-secure:epoch": str(epoch)}


def required_kms(ring: Keyring) -> KmsRef | None:
    if KMS_FIELD not in ring.unknown:
        return None
    return KmsRef(*parse_requirement(ring.unknown[KMS_FIELD], "keyring"))


def wrap_epoch(ring: Keyring, epoch: int, ref: KmsRef, wrapper: KeyWrapper) -> None:
    """Give ``epoch`` a fresh KMS-wrapped secret (before any object uses the epoch)."""
    target = next(e for e in ring.epochs if e.number == epoch)
    blob = wrapper.wrap(ref.key, random_bytes(KMS_SECRET_LEN), kms_context(ring.keyring_id, epoch))
    target.unknown[KMS_FIELD] = {"provider": ref.provider, "key": ref.key,
                                 "ciphertext": base64.b64encode(blob).decode()}


def require_kms(ring: Keyring, ref: KmsRef | None) -> None:
    """Set (or with None drop) the keyring's KMS requirement; the current epoch must already
    satisfy it (start a new epoch first, ``wrap_epoch`` it)."""
    if ref is None:
        ring.unknown.pop(KMS_FIELD, None)
    else:
        ring.unknown[KMS_FIELD] = {"provider": ref.provider, "key": ref.key}


def complete_new_epoch(ring: Keyring, wrapper_for: WrapperFor) -> bool:
    """After a policy change that started a new epoch: wrap it by the required KMS key.
    Returns whether a KMS call was made."""
    ref = required_kms(ring)
    current = next(e for e in ring.epochs if e.number == ring.current_epoch)
    if ref is None or KMS_FIELD in current.unknown:
        return False
    wrap_epoch(ring, ring.current_epoch, ref, wrapper_for(ref.provider))
    return True


@dataclass(frozen=True)
class CustodyKeySet(KeySet):
    """A data key set whose KMS epochs are unwrapped on first use (one KMS call per epoch
    per process), cached in this object only; a refusal is remembered too, so a pull of
    many objects asks (and is logged by) the KMS once."""

    pending: Mapping[int, Callable[[], bytes]] = field(default_factory=dict)
    _cache: dict[int, bytes | DvcSecureError] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def key_for_epoch(self, epoch: int) -> bytes:
        if epoch in self.data_keys or epoch not in self.pending:
            return super().key_for_epoch(epoch)
        with self._lock:
            if epoch not in self._cache:
                try:
                    self._cache[epoch] = self.pending[epoch]()
                except DvcSecureError as exc:
                    self._cache[epoch] = exc
            got = self._cache[epoch]
        if isinstance(got, DvcSecureError):
            raise got
        return got

    def __repr__(self) -> str:
        return f"CustodyKeySet(epochs={sorted(self.data_keys)}, kms_epochs={sorted(self.pending)})"


def data_keyset(member: KeySet, rings: Sequence[Keyring], wrapper_for: WrapperFor) -> KeySet:
    """The data key set from the member key set: KMS epochs (by the first ring in ``rings``
    that has the epoch) need their KMS unwrap, combined with the member key (§6a)."""
    plain: dict[int, bytes] = {}
    pending: dict[int, Callable[[], bytes]] = {}
    for number, member_key in member.data_keys.items():
        ring, epoch = next(((r, e) for r in rings for e in r.epochs if e.number == number),
                           (rings[0], None))
        if epoch is None or KMS_FIELD not in epoch.unknown:
            plain[number] = member_key
            continue
        pending[number] = _unwrapper(ring.keyring_id, number, member_key,
                                     epoch.unknown[KMS_FIELD], wrapper_for)
    if not pending:
        return member
    return CustodyKeySet(data_keys=plain, name_secret=member.name_secret,
                         current_epoch=member.current_epoch, pending=pending)


def _unwrapper(keyring_id: str, epoch: int, member_key: bytes, field_value: object,
               wrapper_for: WrapperFor) -> Callable[[], bytes]:
    provider, key, blob = parse_epoch_kms(field_value, epoch)

    def unwrap() -> bytes:
        secret = wrapper_for(provider).unwrap(key, blob, kms_context(keyring_id, epoch))
        if len(secret) != KMS_SECRET_LEN:
            raise CustodyError(f"the KMS returned a {len(secret)}-byte secret for epoch {epoch}; "
                               f"{KMS_SECRET_LEN} expected (wrong key or tampered keyring)")
        return combine_kms_secret(member_key, secret, keyring_id=keyring_id, epoch=epoch,
                                  provider=provider, key=key)

    return unwrap
