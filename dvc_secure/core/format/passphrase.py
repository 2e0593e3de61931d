"""Passphrase-protected identity envelope v1 (docs/spec/identity.md §7).

scrypt (RFC 7914) turns the passphrase into a 32-byte key that seals the identity text
with ChaCha20-Poly1305 (RFC 8439); the text header is the associated data. Pure: text
and bytes in, text and bytes out.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from dvc_secure.errors import PassphraseError

BEGIN = "-----BEGIN DVC-SECURE PROTECTED IDENTITY-----"
END = "-----END DVC-SECURE PROTECTED IDENTITY-----"
VERSION = 1

DEFAULT_LOG2_N = 18
DEFAULT_R = 8
DEFAULT_P = 1
# The reader runs scrypt with the header's parameters before anything is authenticated,
# so the upper bounds cap what a crafted file can make us spend: memory 128 * r * N
# <= 4 GiB, time N * r * p <= 16 times the default. The lower bounds are for test vectors
# and slow machines; writers use the defaults.
LOG2_N_MIN, LOG2_N_MAX = 10, 22
R_MIN, R_MAX = 1, 8
P_MIN, P_MAX = 1, 1
SALT_LEN = 16
KEY_LEN = 32
TAG_LEN = 16
# An identity text is a few hundred bytes; the cap keeps base64 decoding bounded too.
MAX_CIPHERTEXT_LEN = 64 * 1024
# Domain separation: the scrypt salt is this label followed by the random salt (as age does).
SALT_LABEL = b"dvc-secure.identity.v1/scrypt"
# Every write draws a fresh salt, so every key seals exactly one message: a fixed nonce is
# safe (the same argument as age's scrypt stanza).
NONCE = bytes(12)
BODY_LINE = 64

WRONG_PASSPHRASE = "wrong passphrase, or the protected identity was modified"
_NUMBER = re.compile(r"0|[1-9][0-9]{0,2}")
_HEADER_KEYS = ("Version", "Scrypt-Log2-N", "Scrypt-R", "Scrypt-P", "Salt")


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = DEFAULT_LOG2_N
    r: int = DEFAULT_R
    p: int = DEFAULT_P

    def check(self, source: str) -> None:
        """Raise PassphraseError when a parameter is outside the v1 bounds."""
        if not LOG2_N_MIN <= self.log2_n <= LOG2_N_MAX:
            raise PassphraseError(
                f"{source}: scrypt Log2-N {self.log2_n} is outside [{LOG2_N_MIN}, {LOG2_N_MAX}]",
                hint="larger work factors are refused so that a crafted file cannot make every "
                "dvc command spend gigabytes and minutes; re-protect the identity with "
                "'dvc-secure keygen --passphrase' defaults",
            )
        if not R_MIN <= self.r <= R_MAX:
            raise PassphraseError(f"{source}: scrypt R {self.r} is outside [{R_MIN}, {R_MAX}]")
        if not P_MIN <= self.p <= P_MAX:
            raise PassphraseError(f"{source}: scrypt P {self.p} is outside [{P_MIN}, {P_MAX}]")


def is_protected(text: str) -> bool:
    """True when the first line that is neither blank nor a comment is the BEGIN line."""
    for raw in text.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            return line == BEGIN
    return False


def derive_key(passphrase: str, salt: bytes, params: ScryptParams) -> bytes:
    return Scrypt(
        salt=SALT_LABEL + salt, length=KEY_LEN, n=1 << params.log2_n, r=params.r, p=params.p
    ).derive(passphrase.encode("utf-8"))


def _header_lines(params: ScryptParams, salt: bytes) -> list[str]:
    return [
        BEGIN,
        f"Version: {VERSION}",
        f"Scrypt-Log2-N: {params.log2_n}",
        f"Scrypt-R: {params.r}",
        f"Scrypt-P: {params.p}",
        f"Salt: {base64.b64encode(salt).decode('ascii')}",
    ]


def _aad(header: list[str]) -> bytes:
    return "".join(line + "\n" for line in header).encode("ascii")


def seal(
    text: str,
    passphrase: str,
    params: ScryptParams | None = None,
    salt: bytes | None = None,
    comment: str | None = None,
) -> str:
    """The envelope around ``text``. ``salt`` is for test vectors only (default: random)."""
    params = params or ScryptParams()
    params.check("new protected identity")
    if not passphrase:
        raise PassphraseError("an empty passphrase protects nothing", hint="choose a passphrase")
    if not text:
        raise ValueError("nothing to protect")  # readers reject an empty body
    salt = os.urandom(SALT_LEN) if salt is None else salt
    if len(salt) != SALT_LEN:
        raise ValueError("salt must be 16 bytes")
    header = _header_lines(params, salt)
    key = derive_key(passphrase, salt, params)
    body = base64.b64encode(ChaCha20Poly1305(key).encrypt(NONCE, text.encode("utf-8"), _aad(header)))
    b64 = body.decode("ascii")
    lines = [f"# {comment}"] if comment else []
    lines += header
    lines.append("")
    lines += [b64[i : i + BODY_LINE] for i in range(0, len(b64), BODY_LINE)]
    lines.append(END)
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Envelope:
    params: ScryptParams
    salt: bytes
    aad: bytes
    ciphertext: bytes


def _b64(value: str, what: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise PassphraseError(f"{source}: {what} is not valid base64") from None
    # reject non-canonical encodings (non-zero padding bits): one text per value
    if base64.b64encode(raw).decode("ascii") != value:
        raise PassphraseError(f"{source}: {what} is not canonical base64")
    return raw


def parse(text: str, source: str) -> Envelope:
    """Check the envelope's structure and bounds (no KDF runs here)."""
    lines = [raw.strip() for raw in text.splitlines()]
    i = 0
    while i < len(lines) and (not lines[i] or lines[i].startswith("#")):
        i += 1
    if i == len(lines) or lines[i] != BEGIN:
        raise PassphraseError(f"{source}: not a protected identity (no '{BEGIN}' line)")
    header = [BEGIN]
    values: dict[str, str] = {}
    for key in _HEADER_KEYS:
        i += 1
        line = lines[i] if i < len(lines) else ""
        name, sep, value = line.partition(": ")
        if name != key or not sep:
            raise PassphraseError(f"{source}: line {i + 1} of the header should be '{key}: …'")
        if key == "Version" and value != str(VERSION):
            # checked first: a later version may have other fields
            raise PassphraseError(
                f"{source}: unsupported protected identity version",
                hint="this dvc-secure reads version 1; upgrade dvc-secure",
            )
        values[key] = value
        header.append(line)
    numbers = []
    for key in _HEADER_KEYS[1:4]:
        if not _NUMBER.fullmatch(values[key]):
            raise PassphraseError(f"{source}: {key} is not a decimal number")
        numbers.append(int(values[key]))
    params = ScryptParams(*numbers)
    params.check(source)
    salt = _b64(values["Salt"], "Salt", source)
    if len(salt) != SALT_LEN:
        raise PassphraseError(f"{source}: Salt holds {len(salt)} bytes, not {SALT_LEN}")
    i += 1
    if i >= len(lines) or lines[i]:
        raise PassphraseError(f"{source}: a blank line must follow the header")
    try:
        end = lines.index(END, i + 1)
    except ValueError:
        raise PassphraseError(f"{source}: no '{END}' line (truncated?)") from None
    if any(line for line in lines[end + 1 :]):
        raise PassphraseError(f"{source}: text after the '{END}' line")
    body = "".join(lines[i + 1 : end])
    if len(body) > MAX_CIPHERTEXT_LEN * 4 // 3 + 4:
        raise PassphraseError(f"{source}: protected identity is too large")
    ciphertext = _b64(body, "the body", source)
    if len(ciphertext) > MAX_CIPHERTEXT_LEN:
        raise PassphraseError(f"{source}: protected identity is too large")
    if len(ciphertext) <= TAG_LEN:
        raise PassphraseError(f"{source}: the body is too short to hold an identity")
    return Envelope(params, salt, _aad(header), ciphertext)


def open_envelope(text: str, passphrase: str, source: str) -> str:
    """The identity text inside; PassphraseError on any failure, never partial output."""
    env = parse(text, source)
    key = derive_key(passphrase, env.salt, env.params)
    try:
        plain = ChaCha20Poly1305(key).decrypt(NONCE, env.ciphertext, env.aad)
    except InvalidTag:
        raise PassphraseError(
            f"{source}: {WRONG_PASSPHRASE}",
            hint="check DVC_SECURE_PASSPHRASE / DVC_SECURE_PASSPHRASE_FILE or retype it; "
            "a modified file cannot be repaired, restore it from your backup",
        ) from None
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError:
        raise PassphraseError(f"{source}: the protected content is not UTF-8 text") from None
