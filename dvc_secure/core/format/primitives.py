"""Safe recipes over pyca/cryptography: the only module family that imports it.

Everything here is a standard construction with fixed parameters:
HKDF-SHA256, HMAC-SHA256, AES-256-GCM, AES-SIV (RFC 5297), X25519 key wrapping in
the style of age's X25519 recipient stanza, Ed25519 signatures, scrypt.
"""

from __future__ import annotations

import base64
import hmac
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# ``cryptography`` is imported on first use, not with this module: the git hooks load the
# format layer on every commit but need a primitive only when they sign or verify
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "AeadFailure",
    "SegmentCipher",
    "SigningKeyPair",
    "X25519KeyPair",
    "constant_time_equal",
    "ed25519_verify",
    "hkdf_sha256",
    "hmac_sha256",
    "name_decrypt",
    "name_encrypt",
    "random_bytes",
    "scrypt_kdf",
    "x25519_unwrap",
    "x25519_wrap",
]


def _raw_private(key: Any) -> bytes:
    if hasattr(key, "private_bytes_raw"):  # cryptography >= 40: skips importing serialization
        return bytes(key.private_bytes_raw())
    from cryptography.hazmat.primitives import serialization as s

    return bytes(key.private_bytes(s.Encoding.Raw, s.PrivateFormat.Raw, s.NoEncryption()))


def _raw_public(key: Any) -> bytes:
    if hasattr(key, "public_bytes_raw"):
        return bytes(key.public_bytes_raw())
    from cryptography.hazmat.primitives import serialization as s

    return bytes(key.public_bytes(s.Encoding.Raw, s.PublicFormat.Raw))


class AeadFailure(Exception):
    """An AEAD open failed. Internal: callers turn it into a user-facing error."""


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


def hkdf_sha256(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(ikm)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return hmac.new(key, data, "sha256").digest()


def constant_time_equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


class SegmentCipher:
    """AES-256-GCM for one object's STREAM segments (nonce = 11-byte counter || last flag)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("segment key must be 32 bytes")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead: AESGCM = AESGCM(key)

    @staticmethod
    def nonce(counter: int, last: bool) -> bytes:
        if counter >= 1 << 88:
            raise OverflowError("STREAM counter exhausted")
        return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")

    def seal(self, counter: int, last: bool, plaintext: bytes) -> bytes:
        return self._aead.encrypt(self.nonce(counter, last), plaintext, None)

    def open(self, counter: int, last: bool, ciphertext: bytes) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(self.nonce(counter, last), ciphertext, None)
        except InvalidTag as exc:
            raise AeadFailure from exc


# --- deterministic name encryption ----------------------------------------------


_SIV_CACHE: dict[bytes, Any] = {}  # name key -> AESSIV (its key schedule, once per process)


def _siv(key: bytes) -> Any:
    siv = _SIV_CACHE.get(key)
    if siv is None:
        from cryptography.hazmat.primitives.ciphers.aead import AESSIV

        if len(_SIV_CACHE) >= 16:
            _SIV_CACHE.clear()
        siv = _SIV_CACHE[key] = AESSIV(key)
    return siv


def name_encrypt(key: bytes, plaintext: bytes, context: bytes) -> bytes:
    """AES-SIV (RFC 5297) with a 64-byte key: deterministic, misuse resistant."""
    return bytes(_siv(key).encrypt(plaintext, [context]))


def name_decrypt(key: bytes, ciphertext: bytes, context: bytes) -> bytes:
    from cryptography.exceptions import InvalidTag

    try:
        return bytes(_siv(key).decrypt(ciphertext, [context]))
    except (InvalidTag, ValueError) as exc:
        raise AeadFailure from exc


# --- X25519 key wrapping (age-style recipient stanza) ----------------------------


@dataclass(frozen=True)
class X25519KeyPair:
    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> X25519KeyPair:
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return cls.from_private(_raw_private(X25519PrivateKey.generate()))

    @classmethod
    def from_private(cls, private: bytes) -> X25519KeyPair:
        if len(private) != 32:
            raise ValueError("X25519 private key must be 32 bytes")
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        pub = _raw_public(X25519PrivateKey.from_private_bytes(private).public_key())
        return cls(private=private, public=pub)

    def exchange(self, peer_public: bytes) -> bytes:
        """X25519(private, peer); ValueError for a low-order peer. A key kept elsewhere (a
        PKCS#11 token: adapters/custody) overrides this and has no ``private`` bytes."""
        from cryptography.hazmat.primitives.asymmetric.x25519 import (
            X25519PrivateKey,
            X25519PublicKey,
        )

        priv = X25519PrivateKey.from_private_bytes(self.private)
        return priv.exchange(X25519PublicKey.from_public_bytes(peer_public))

    def __repr__(self) -> str:  # never print private keys
        return f"X25519KeyPair(public={self.public.hex()})"


def _wrap_key(shared: bytes, ephemeral_pub: bytes, recipient_pub: bytes, label: bytes) -> bytes:
    return hkdf_sha256(shared, ephemeral_pub + recipient_pub, label, 32)


def x25519_wrap(recipient_public: bytes, secret: bytes, label: bytes) -> tuple[bytes, bytes]:
    """Wrap ``secret`` to a recipient. Returns (ephemeral public key, wrapped body)."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    eph = X25519PrivateKey.generate()
    eph_pub = _raw_public(eph.public_key())
    shared = eph.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    if shared == bytes(32):
        raise ValueError("low-order recipient key")
    key = _wrap_key(shared, eph_pub, recipient_public, label)
    return eph_pub, ChaCha20Poly1305(key).encrypt(bytes(12), secret, None)


def x25519_unwrap(identity: X25519KeyPair, ephemeral_public: bytes, body: bytes, label: bytes) -> bytes:
    """Unwrap a stanza body; raises AeadFailure when it is not for this identity."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    if len(ephemeral_public) != 32:
        raise AeadFailure("ephemeral share must be 32 bytes")
    try:
        shared = identity.exchange(ephemeral_public)
    except ValueError:  # OpenSSL refuses low-order points (an all-zero shared secret)
        raise AeadFailure("low-order ephemeral share") from None
    if shared == bytes(32):
        raise AeadFailure("low-order ephemeral share")
    key = _wrap_key(shared, ephemeral_public, identity.public, label)
    try:
        return ChaCha20Poly1305(key).decrypt(bytes(12), body, None)
    except InvalidTag as exc:
        raise AeadFailure from exc


# --- Ed25519 -------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKeyPair:
    private: bytes
    public: bytes

    @classmethod
    def generate(cls) -> SigningKeyPair:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return cls.from_private(_raw_private(Ed25519PrivateKey.generate()))

    @classmethod
    def from_private(cls, private: bytes) -> SigningKeyPair:
        if len(private) != 32:
            raise ValueError("Ed25519 private key must be 32 bytes")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pub = _raw_public(Ed25519PrivateKey.from_private_bytes(private).public_key())
        return cls(private=private, public=pub)

    def sign(self, message: bytes) -> bytes:
        key = self.__dict__.get("_key")
        if key is None:  # parse once: signing every pushed object re-used to dominate
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

            key = Ed25519PrivateKey.from_private_bytes(self.private)
            object.__setattr__(self, "_key", key)
        return key.sign(message)

    def __repr__(self) -> str:
        return f"SigningKeyPair(public={self.public.hex()})"


def ed25519_verify(public: bytes, signature: bytes, message: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


def valid_signers(signatures: Iterable[tuple[str, object]], keys: Mapping[str, bytes],
                  message: bytes) -> list[str]:
    """Key ids among ``keys`` (key id -> Ed25519 public key) whose base64 signature in
    ``signatures`` ((key id, signature) pairs) verifies over ``message``; malformed
    entries and unknown key ids are skipped, never trusted."""
    good = []
    for keyid, sig in signatures:
        public = keys.get(keyid)
        if public is None or not isinstance(sig, str):
            continue
        try:
            raw = base64.b64decode(sig, validate=True)
        except ValueError:
            continue
        if ed25519_verify(public, raw, message) and keyid not in good:
            good.append(keyid)
    return good


# --- passphrases -----------------------------------------------------------------------

SCRYPT_N_LOG2 = 18
SCRYPT_R = 8
SCRYPT_P = 1


def scrypt_kdf(passphrase: bytes, salt: bytes, n_log2: int = SCRYPT_N_LOG2) -> bytes:
    if not 10 <= n_log2 <= 22:
        raise ValueError("scrypt work factor out of range")
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, n=1 << n_log2, r=SCRYPT_R, p=SCRYPT_P).derive(passphrase)


def aead_seal_secret(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """ChaCha20-Poly1305 with a random nonce prepended; for small secrets at rest."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    nonce = os.urandom(12)
    return nonce + ChaCha20Poly1305(key).encrypt(nonce, plaintext, aad)


def aead_open_secret(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < 28:
        raise AeadFailure("sealed secret too short")
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        return ChaCha20Poly1305(key).decrypt(blob[:12], blob[12:], aad)
    except InvalidTag as exc:
        raise AeadFailure from exc
