"""A person's identity: an X25519 decryption key (age-compatible) and an Ed25519 signing key.

Text form (one secret per line, comments start with '#')::

    # dvc-secure identity: keep secret, never commit
    # recipient: age1...
    # signing-key: dvcsign1...
    AGE-SECRET-KEY-1...
    DVC-SECURE-SIGNING-KEY-1...

A plain ``age-keygen`` file (no signing line) is a valid identity that can decrypt but
not sign: a reader.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvc_secure.core.format.primitives import SigningKeyPair, X25519KeyPair
from dvc_secure.core.keys import bech32
from dvc_secure.errors import IdentityError

RECIPIENT_HRP = "age"
AGE_SECRET_HRP = "age-secret-key-"
SIGNING_PUBLIC_HRP = "dvcsign"
SIGNING_SECRET_HRP = "dvc-secure-signing-key-"


def encode_recipient(public: bytes) -> str:
    return bech32.encode(RECIPIENT_HRP, public)


def decode_recipient(text: str) -> bytes:
    try:
        raw = bech32.decode(text.strip(), RECIPIENT_HRP)
    except ValueError as exc:
        raise IdentityError(f"not an age X25519 recipient ('age1…'): {exc}") from None
    if len(raw) != 32:
        raise IdentityError("an age X25519 recipient holds exactly 32 bytes")
    return raw


def encode_signing_key(public: bytes) -> str:
    return bech32.encode(SIGNING_PUBLIC_HRP, public)


def decode_signing_key(text: str) -> bytes:
    try:
        raw = bech32.decode(text.strip(), SIGNING_PUBLIC_HRP)
    except ValueError as exc:
        raise IdentityError(f"not a dvc-secure signing key ('dvcsign1…'): {exc}") from None
    if len(raw) != 32:
        raise IdentityError("a signing key holds exactly 32 bytes")
    return raw


def key_fingerprint(public: bytes) -> str:
    """Short, stable id for display: first 16 hex digits of the key."""
    return public.hex()[:16]


@dataclass(frozen=True)
class Identity:
    encryption: X25519KeyPair
    signing: SigningKeyPair | None

    @classmethod
    def generate(cls) -> Identity:
        return cls(X25519KeyPair.generate(), SigningKeyPair.generate())

    @property
    def recipient(self) -> str:
        return encode_recipient(self.encryption.public)

    @property
    def signing_key(self) -> str | None:
        return encode_signing_key(self.signing.public) if self.signing else None

    def to_text(self, created: str) -> str:
        lines = [
            "# dvc-secure identity: keep secret, never commit, never paste into a ticket",
            f"# created: {created}",
            f"# recipient: {self.recipient}",
        ]
        if self.signing:
            lines.append(f"# signing-key: {self.signing_key}")
        lines.append(bech32.encode(AGE_SECRET_HRP, self.encryption.private).upper())
        if self.signing:
            lines.append(bech32.encode(SIGNING_SECRET_HRP, self.signing.private).upper())
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str) -> Identity:
        """Parse an identity; ``source`` names where it came from (never its contents)."""
        enc: X25519KeyPair | None = None
        sig: SigningKeyPair | None = None
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            upper = line.upper()
            try:
                if upper.startswith("AGE-SECRET-KEY-1"):
                    if enc is not None:
                        raise IdentityError(f"{source}: more than one AGE-SECRET-KEY line")
                    enc = X25519KeyPair.from_private(bech32.decode(upper, AGE_SECRET_HRP))
                elif upper.startswith("DVC-SECURE-SIGNING-KEY-1"):
                    if sig is not None:
                        raise IdentityError(f"{source}: more than one signing key line")
                    sig = SigningKeyPair.from_private(bech32.decode(upper, SIGNING_SECRET_HRP))
                else:
                    raise IdentityError(f"{source}: line {number} is not an identity key")
            except ValueError as exc:
                # never echo the line: it is secret
                raise IdentityError(f"{source}: line {number} is malformed ({exc})") from None
        if enc is None:
            raise IdentityError(
                f"{source} holds no AGE-SECRET-KEY line",
                hint="create an identity with 'dvc-secure keygen'",
            )
        return cls(enc, sig)

    def __repr__(self) -> str:
        return f"Identity(recipient={self.recipient!r})"
