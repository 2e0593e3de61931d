"""Key domains: the destroyable key material of crypto-shredding (docs/spec/domain-key.md).

A domain's *secret* (32 random bytes per key epoch) lives only on the secure remotes, in a
*domain key file* sealed under a key derived from the epoch's data key; git never holds it.
The data key an object of the domain is encrypted with is

    domain_data_key = HKDF-SHA256(ikm = epoch data key, salt = domain secret,
                                  info = "dvc-secure/v1/domain-key" || 0x00 || u32(epoch)
                                         || u16(len(domain)) || domain, L = 32)

and is used exactly like an epoch data key by the object format (object-format.md §5), so
an object of a domain is a v1 object: the header MAC (key commitment) tells a reader which
of its candidate keys is the right one. Destroying every copy of the domain key files makes
the domain's objects unreadable for everyone, while the keyring (in git) stays as it was.
"""

from __future__ import annotations

import re
import struct

from dvc_secure.core.format.object_format import HEADER_LEN, HEADER_UNSIGNED_LEN, derive_object_keys
from dvc_secure.core.format.primitives import (
    AeadFailure,
    aead_open_secret,
    aead_seal_secret,
    constant_time_equal,
    hkdf_sha256,
    hmac_sha256,
    random_bytes,
)
from dvc_secure.errors import DomainKeyMissingError, ErasureError

DEFAULT_DOMAIN = "default"
DOMAIN_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
FILE_MAGIC = b"DVCSDK"
FILE_VERSION = 1
_FILE_HEAD = struct.Struct(">6sBI")  # magic, version, epoch
FILE_HEAD_LEN = _FILE_HEAD.size  # 11
SECRET_LEN = 32
KEY_LABEL = b"dvc-secure/v1/domain-key"
WRAP_LABEL = b"dvc-secure/v1/domain-wrap"
TAG_LABEL = b"dvc-secure/v1/domain-tag"
DOMAIN_DIR = "dvc-secure/domains"  # relative to a secure remote's storage root


def check_domain_name(domain: str) -> str:
    """``domain`` if it is a valid domain name (lowercase, 1-63 chars), else ErasureError."""
    if not isinstance(domain, str) or not DOMAIN_NAME.match(domain):
        raise ErasureError(
            f"invalid key domain name {domain!r}: use 1-63 characters a-z 0-9 . _ -, starting "
            "with a letter or digit", hint="e.g. --domain cohort-2024")
    return domain


def _domain_bytes(domain: str) -> bytes:
    raw = check_domain_name(domain).encode()
    return struct.pack(">H", len(raw)) + raw


def domain_tag(name_key: bytes, domain: str) -> str:
    """The directory name of ``domain``'s key files: keyed, so storage shows no domain name."""
    return hmac_sha256(name_key, TAG_LABEL + b"\x00" + _domain_bytes(domain))[:16].hex()


def key_file_name(epoch: int) -> str:
    return f"epoch-{epoch}.key"


def new_domain_secret() -> bytes:
    return random_bytes(SECRET_LEN)


def derive_domain_data_key(data_key: bytes, secret: bytes, domain: str, epoch: int) -> bytes:
    if len(data_key) != 32 or len(secret) != SECRET_LEN or not 1 <= epoch < 1 << 32:
        raise ValueError("domain key derivation: bad input length or epoch")
    info = KEY_LABEL + b"\x00" + struct.pack(">I", epoch) + _domain_bytes(domain)
    return hkdf_sha256(data_key, secret, info, 32)


def _wrap_key(data_key: bytes, epoch: int) -> bytes:
    return hkdf_sha256(data_key, b"", WRAP_LABEL + b"\x00" + struct.pack(">I", epoch), 32)


def seal_key_file(data_key: bytes, epoch: int, domain: str, secret: bytes) -> bytes:
    """The bytes of a domain key file (§3 of the spec)."""
    head = _FILE_HEAD.pack(FILE_MAGIC, FILE_VERSION, epoch)
    return head + aead_seal_secret(_wrap_key(data_key, epoch), _domain_bytes(domain) + secret,
                                   head)


def key_file_epoch(blob: bytes, where: str) -> int:
    """The epoch a domain key file is sealed to (structural checks only)."""
    if len(blob) < FILE_HEAD_LEN:
        raise DomainKeyMissingError(f"domain key file {where} is truncated")
    magic, version, epoch = _FILE_HEAD.unpack(blob[:FILE_HEAD_LEN])
    if magic != FILE_MAGIC:
        raise DomainKeyMissingError(f"{where} is not a domain key file")
    if version != FILE_VERSION:
        raise DomainKeyMissingError(f"domain key file {where} has unsupported version {version}",
                                    hint="upgrade dvc-secure")
    if epoch == 0:
        raise DomainKeyMissingError(f"domain key file {where}: epoch 0")
    return int(epoch)


def open_key_file(blob: bytes, data_key: bytes, where: str) -> tuple[str, int, bytes]:
    """(domain, epoch, secret) of a domain key file; DomainKeyMissingError if it is not one
    sealed under ``data_key`` (the data key of the epoch its header names)."""
    epoch = key_file_epoch(blob, where)
    head = blob[:FILE_HEAD_LEN]
    try:
        inner = aead_open_secret(_wrap_key(data_key, epoch), blob[FILE_HEAD_LEN:], head)
    except AeadFailure:
        raise DomainKeyMissingError(
            f"domain key file {where} does not authenticate under key epoch {epoch}: it was "
            "corrupted or replaced on the storage") from None
    if len(inner) < 3 + SECRET_LEN:
        raise DomainKeyMissingError(f"domain key file {where} is malformed")
    (n,) = struct.unpack(">H", inner[:2])
    if len(inner) != 2 + n + SECRET_LEN:
        raise DomainKeyMissingError(f"domain key file {where} is malformed")
    try:
        domain = check_domain_name(inner[2:2 + n].decode())
    except (UnicodeDecodeError, ErasureError):
        raise DomainKeyMissingError(f"domain key file {where} names an invalid domain") from None
    return domain, epoch, inner[2 + n:]


def header_authenticates(raw_header: bytes, object_id: bytes, data_key: bytes) -> bool:
    """Does the 78-byte object header's MAC verify under ``data_key``? (key commitment)"""
    if len(raw_header) != HEADER_LEN:
        return False
    unsigned = raw_header[:HEADER_UNSIGNED_LEN]
    _seg, commit = derive_object_keys(data_key, unsigned, object_id)
    return constant_time_equal(hmac_sha256(commit, unsigned), raw_header[HEADER_UNSIGNED_LEN:])
