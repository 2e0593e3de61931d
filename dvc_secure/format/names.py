"""Hidden object names: deterministic AES-SIV encryption of DVC's object paths.

The storage provider never sees DVC's MD5 object ids (confirm-a-file attack), yet the
mapping is a reversible permutation, so listing, ``status -c`` and ``gc -c`` still work.
"""

from __future__ import annotations

import base64

from dvc_secure.format.primitives import AeadFailure, hkdf_sha256, name_decrypt, name_encrypt

NAME_KEY_LABEL = b"dvc-secure/v1/names"
NAME_CONTEXT = b"dvc-secure/v1/object-name"
_BLOCK = 32
_MIN_PADDED = 64  # every DVC object path ("files/md5/xx/<30 hex>[.dir]") pads to the same size


def derive_name_key(name_secret: bytes) -> bytes:
    """64-byte AES-SIV key from the keyring's name secret."""
    return hkdf_sha256(name_secret, b"", NAME_KEY_LABEL, 64)


def _pad(name: bytes) -> bytes:
    if b"\x00" in name:
        raise ValueError("object names cannot contain NUL")
    size = max(_MIN_PADDED, -(-len(name) // _BLOCK) * _BLOCK)
    return name + b"\x00" * (size - len(name))


def hide_name(name_key: bytes, name: str) -> str:
    """``name`` (posix path relative to the remote root) -> ``xx/<token>``."""
    token = base64.b32encode(name_encrypt(name_key, _pad(name.encode()), NAME_CONTEXT))
    text = token.decode().rstrip("=").lower()
    return f"{text[:2]}/{text[2:]}"


def reveal_name(name_key: bytes, hidden: str) -> str | None:
    """Inverse of :func:`hide_name`; None for anything that is not one of our names."""
    text = hidden.replace("/", "")
    if len(text) < 40 or len(text) > 8192:
        return None
    try:
        raw = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        plain = name_decrypt(name_key, raw, NAME_CONTEXT)
    except (ValueError, AeadFailure):
        return None
    name = plain.rstrip(b"\x00")
    try:
        return name.decode()
    except UnicodeDecodeError:
        return None
