"""Hidden object names: deterministic AES-SIV encryption of DVC's object paths.

The storage provider never sees DVC's MD5 object ids (confirm-a-file attack), yet the
mapping is a reversible permutation, so listing, ``status -c`` and ``gc -c`` still work.
"""

from __future__ import annotations

import base64
import re

from dvc_secure.core.format.primitives import AeadFailure, hkdf_sha256, name_decrypt, name_encrypt

NAME_KEY_LABEL = b"dvc-secure/v1/names"
NAME_CONTEXT = b"dvc-secure/v1/object-name"
_BLOCK = 32
_HIDDEN = re.compile(r"([0-9a-f]{2})/([0-9a-f]{2})([a-z2-7]+)")
# every DVC object path ("files/md5/xx/<30 hex>[.dir]") and every manifest path
# ("secure/manifests/<64 hex>") pads to the same size, so the two look alike
_MIN_PADDED = 96


def derive_name_key(name_secret: bytes) -> bytes:
    """64-byte AES-SIV key from the keyring's name secret."""
    return hkdf_sha256(name_secret, b"", NAME_KEY_LABEL, 64)


def _padded_len(n: int) -> int:
    return max(_MIN_PADDED, -(-n // _BLOCK) * _BLOCK)


def _pad(name: bytes) -> bytes:
    if b"\x00" in name:
        raise ValueError("object names cannot contain NUL")
    return name + b"\x00" * (_padded_len(len(name)) - len(name))


def hide_name(name_key: bytes, name: str) -> str:
    """``name`` (posix path relative to the remote root) -> ``xx/yy<token>``.

    ``xx`` and ``yy`` are the first two bytes of the AES-SIV output in hex: hidden names
    fall uniformly into the same 256 two-hex-digit shards (and 16 sub-prefixes) that DVC
    lists its object store by, so DVC's per-shard listing and size estimate stay exact.
    """
    raw = name_encrypt(name_key, _pad(name.encode()), NAME_CONTEXT)
    token = base64.b32encode(raw).decode().rstrip("=").lower()
    return f"{raw[0]:02x}/{raw[1]:02x}{token}"


def reveal_name(name_key: bytes, hidden: str) -> str | None:
    """Inverse of :func:`hide_name`; None for anything that is not one of our names.

    Only the exact form :func:`hide_name` produces is accepted (hex shard prefix derived
    from the ciphertext, lowercase canonical base32, canonical NUL padding), so each object
    has exactly one storage name that reveals to it.
    """
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
        plain = name_decrypt(name_key, raw, NAME_CONTEXT)
    except AeadFailure:
        return None
    name = plain.rstrip(b"\x00")
    if b"\x00" in name or len(plain) != _padded_len(len(name)):
        return None
    try:
        return name.decode()
    except UnicodeDecodeError:
        return None
