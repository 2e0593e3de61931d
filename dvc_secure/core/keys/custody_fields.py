"""The keyring's key-custody fields (docs/spec/keyring.md §5a): parsing rules only, on the
raw signed members, so that ``keyring.py`` stays small and has no custody logic.

- top level ``kms``: ``{"provider", "key"}`` — the KMS key every new epoch's data key must
  additionally be wrapped by (the requirement);
- epoch ``kms``: ``{"provider", "key", "ciphertext"}`` — this epoch's KMS-wrapped secret.

A keyring using either is format version 2, so clients that do not know the fields refuse
it ("upgrade dvc-secure") instead of deriving a data key without the KMS.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from typing import Any

from dvc_secure.errors import KeyringError

KMS_FIELD = "kms"
KMS_KEYRING_VERSION = 2
PROVIDER = re.compile(r"[a-z][a-z0-9-]{0,31}")
# key ids, aliases, ARNs, GCP resource names, Key Vault URLs: printable ASCII, no space
KEY_REF = re.compile(r"[\x21-\x7e]{1,2048}")
MAX_CIPHERTEXT = 6144


def uses_kms(top: Mapping[str, Any], epochs: Iterable[Mapping[str, Any]]) -> bool:
    return KMS_FIELD in top or any(KMS_FIELD in e for e in epochs)


def format_version(top: Mapping[str, Any], epochs: Iterable[Mapping[str, Any]], base: int) -> int:
    """The ``version`` writers emit: 2 when custody fields are used, else ``base`` (1)."""
    return KMS_KEYRING_VERSION if uses_kms(top, epochs) else base


def parse_requirement(value: Any, where: str) -> tuple[str, str]:
    """(provider, key) of a ``kms`` object; MUST-reject rules of §5a."""
    if not isinstance(value, dict):
        raise KeyringError(f"keyring: {where}.kms must be an object")
    provider, key = value.get("provider"), value.get("key")
    if not isinstance(provider, str) or not PROVIDER.fullmatch(provider):
        raise KeyringError(f"keyring: {where}.kms.provider must be a provider name like "
                           "'aws-kms'")
    if not isinstance(key, str) or not KEY_REF.fullmatch(key):
        raise KeyringError(f"keyring: {where}.kms.key must be 1-2048 printable ASCII "
                           "characters without spaces")
    return provider, key


def parse_epoch_kms(value: Any, epoch: int) -> tuple[str, str, bytes]:
    """(provider, key, ciphertext) of an epoch's ``kms`` object."""
    provider, key = parse_requirement(value, f"epoch {epoch}")
    text = value.get("ciphertext")
    try:
        if not isinstance(text, str):
            raise ValueError
        blob = base64.b64decode(text, validate=True)
    except ValueError:
        raise KeyringError(f"keyring: epoch {epoch}.kms.ciphertext must be base64") from None
    if not 1 <= len(blob) <= MAX_CIPHERTEXT or base64.b64encode(blob).decode() != text:
        raise KeyringError(f"keyring: epoch {epoch}.kms.ciphertext must be canonical base64 of "
                           f"1 to {MAX_CIPHERTEXT} bytes")
    return provider, key, blob


def check_custody_fields(version: int, top: Mapping[str, Any],
                         epochs: Mapping[int, Mapping[str, Any]], current_epoch: int) -> None:
    """Reject a keyring whose custody fields break §5a (called by ``Keyring.from_json``)."""
    for number, unknown in epochs.items():
        if KMS_FIELD in unknown:
            parse_epoch_kms(unknown[KMS_FIELD], number)
    if (version == KMS_KEYRING_VERSION) != uses_kms(top, epochs.values()):
        raise KeyringError("keyring: version 2 is used exactly when a 'kms' field is present")
    if KMS_FIELD not in top:
        return
    required = parse_requirement(top[KMS_FIELD], "keyring")
    current = epochs.get(current_epoch, {}).get(KMS_FIELD)
    if current is None or parse_epoch_kms(current, current_epoch)[:2] != required:
        raise KeyringError(
            f"keyring: the keyring requires KMS key {required[0]}://{required[1]} but the "
            f"current epoch {current_epoch} is not wrapped by it")
