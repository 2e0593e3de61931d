"""Encryption envelope of one audit event on the remote (docs/spec/audit-log.md §4).

    magic "DSAUDIT" (7) | version 0x01 (1) | epoch u32 BE (4) | nonce (12) | AES-256-GCM(ct||tag)

key = HKDF-SHA256(ikm = epoch data key, salt = "", info = LABEL || 0x00 || epoch u32 BE);
associated data = the 24 header bytes || the event's storage name (UTF-8), so an event
moved to another name or epoch does not open. The only audit code that imports
``cryptography``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from dvc_secure.core.format.primitives import hkdf_sha256
from dvc_secure.errors import AuditBoxError, AuditLogError

MAGIC = b"DSAUDIT"
VERSION = 1
LABEL = b"dvc-secure/v1/audit-event"
HEADER_LEN = len(MAGIC) + 1 + 4 + 12
TAG_LEN = 16
MAX_EVENT_LEN = 64 * 1024  # plaintext; an event is a small JSON document
_HEADER = struct.Struct(">7sBI12s")


def audit_key(data_key: bytes, epoch: int) -> bytes:
    """The audit-log key of one epoch: independent of the object keys of that epoch."""
    if len(data_key) != 32:
        raise ValueError("data key must be 32 bytes")
    return hkdf_sha256(data_key, b"", LABEL + b"\x00" + epoch.to_bytes(4, "big"), 32)


def seal_event(data_key: bytes, epoch: int, name: str, plaintext: bytes,
               nonce: bytes | None = None) -> bytes:
    """Encrypt one event for storage name ``name`` (``nonce`` only for test vectors)."""
    if not 1 <= epoch < 1 << 32:
        raise ValueError("epoch out of range")
    if len(plaintext) > MAX_EVENT_LEN:
        raise AuditLogError(f"audit event too large ({len(plaintext)} bytes)",
                            hint="keep 'details' small")
    nonce = os.urandom(12) if nonce is None else nonce
    if len(nonce) != 12:
        raise ValueError("nonce must be 12 bytes")
    header = _HEADER.pack(MAGIC, VERSION, epoch, nonce)
    return header + AESGCM(audit_key(data_key, epoch)).encrypt(nonce, plaintext,
                                                              header + name.encode())


def envelope_epoch(blob: bytes) -> int:
    """The key epoch an envelope names; raises AuditBoxError when the header is malformed."""
    if len(blob) < HEADER_LEN + TAG_LEN:
        raise AuditBoxError("audit event envelope is shorter than header + tag")
    magic, version, epoch, _nonce = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise AuditBoxError("audit event envelope has a bad magic")
    if version != VERSION:
        raise AuditBoxError(f"audit event envelope version {version} is not supported",
                            hint="upgrade dvc-secure")
    if epoch == 0:
        raise AuditBoxError("audit event envelope names epoch 0")
    if len(blob) > HEADER_LEN + TAG_LEN + MAX_EVENT_LEN:
        raise AuditBoxError("audit event envelope is larger than the limit")
    return int(epoch)


def open_event(blob: bytes, name: str, key_for_epoch: Callable[[int], bytes]) -> bytes:
    """Decrypt an envelope stored as ``name``; AuditBoxError if it does not authenticate.

    ``key_for_epoch`` may raise (e.g. NoKeyForEpochError); that error passes through."""
    epoch = envelope_epoch(blob)
    data_key = key_for_epoch(epoch)
    header = blob[:HEADER_LEN]
    nonce = blob[HEADER_LEN - 12:HEADER_LEN]
    try:
        return AESGCM(audit_key(data_key, epoch)).decrypt(nonce, blob[HEADER_LEN:],
                                                          header + name.encode())
    except InvalidTag:
        raise AuditBoxError(f"audit event {name} does not authenticate (edited, corrupted or "
                            "moved from another name)") from None
