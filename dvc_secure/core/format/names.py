"""Hidden object names: deterministic AES-SIV encryption of DVC's object paths.

The storage provider never sees DVC's MD5 object ids (confirm-a-file attack), yet the
mapping is a reversible permutation, so listing, ``status -c`` and ``gc -c`` still work.
Scheme 2 (docs/spec/hidden-names.md §1) binds the secure remote's signed, random name id
into the key, so two secure remotes of one repository store one object under unrelated
names; scheme 1 (one key per repository) is still read where the policy says so.
"""

from __future__ import annotations

import base64
import re

from dvc_secure.core.format.primitives import AeadFailure, hkdf_sha256, name_decrypt, name_encrypt

NAME_KEY_LABEL = b"dvc-secure/v1/names"
NAME_CONTEXT = b"dvc-secure/v1/object-name"
NAME_KEY_LABEL_V2 = b"dvc-secure/v2/names"
NAME_CONTEXT_V2 = b"dvc-secure/v2/object-name"
NAMES_V1 = 1  # one name key per repository (no remote bound in)
NAMES_V2 = 2  # one name key per secure remote: the pinned name id is bound in
SUPPORTED_NAME_SCHEMES = (NAMES_V1, NAMES_V2)
NAME_ID_LEN = 16
_BLOCK = 32
_HIDDEN = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})([a-z2-7]+)")
# every DVC object path ("files/md5/xx/<30 hex>[.dir]") and every manifest path
# ("secure/manifests/<64 hex>") pads to the same size, so the two look alike
_MIN_PADDED = 96


def derive_name_key(name_secret: bytes) -> bytes:
    """64-byte AES-SIV key from the keyring's name secret (scheme 1)."""
    return hkdf_sha256(name_secret, b"", NAME_KEY_LABEL, 64)


def derive_remote_name_key(name_secret: bytes, name_id: bytes) -> bytes:
    """Scheme 2: the 64-byte AES-SIV key of the secure remote whose pinned name id is
    ``name_id`` (16 bytes): HKDF info = label || 0x00 || name_id."""
    if len(name_id) != NAME_ID_LEN:
        raise ValueError("a remote's name id is 16 bytes")
    return hkdf_sha256(name_secret, b"", NAME_KEY_LABEL_V2 + b"\x00" + name_id, 64)


def name_context(scheme: int) -> bytes:
    """The AES-SIV associated data of a name scheme; an unknown scheme is refused."""
    if scheme == NAMES_V1:
        return NAME_CONTEXT
    if scheme == NAMES_V2:
        return NAME_CONTEXT_V2
    raise ValueError(f"unsupported hidden-name scheme {scheme}")


def _padded_len(n: int) -> int:
    return max(_MIN_PADDED, -(-n // _BLOCK) * _BLOCK)


def _pad(name: bytes) -> bytes:
    if b"\x00" in name:
        raise ValueError("object names cannot contain NUL")
    return name + b"\x00" * (_padded_len(len(name)) - len(name))


def hide_name(name_key: bytes, name: str, scheme: int = NAMES_V1) -> str:
    """``name`` (posix path relative to the remote root) -> ``xx/yy<token>``.

    ``xx`` and ``yy`` are the first two bytes of the AES-SIV output in hex: hidden names
    fall uniformly into the same 256 two-hex-digit shards (and 16 sub-prefixes) that DVC
    lists its object store by, so DVC's per-shard listing and size estimate stay exact.
    """
    raw = name_encrypt(name_key, _pad(name.encode()), name_context(scheme))
    token = base64.b32encode(raw).decode().rstrip("=").lower()
    return f"{raw[0]:02x}/{raw[1]:02x}{token}"


def reveal_name(name_key: bytes, hidden: str, scheme: int = NAMES_V1) -> str | None:
    """Inverse of :func:`hide_name`; None for anything that is not one of our names.

    Only the exact form :func:`hide_name` produces is accepted (hex shard prefix derived
    from the ciphertext, lowercase canonical base32, canonical NUL padding), so each object
    has exactly one storage name that reveals to it.
    """
    context = name_context(scheme)
    match = _HIDDEN.fullmatch(hidden)
    if match is None:
        return None
    text = match.group(3)
    if len(text) < 40 or len(text) > 8192:
        return None
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
    except ValueError:
        return None
    if base64.b32encode(raw).decode().rstrip("=").lower() != text:
        return None  # stray padding bits: not the encoding hide_name writes
    if f"{raw[0]:02x}" != match.group(1) or f"{raw[1]:02x}" != match.group(2):
        return None  # the shard prefix must be the one hide_name derives
    try:
        plain = name_decrypt(name_key, raw, context)
    except AeadFailure:
        return None
    name = plain.rstrip(b"\x00")
    if b"\x00" in name or len(plain) != _padded_len(len(name)):
        return None
    try:
        return name.decode()
    except UnicodeDecodeError:
        return None
