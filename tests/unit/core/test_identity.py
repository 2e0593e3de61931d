"""Identity text form (docs/spec/identity.md)."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dvc_secure.core.format.primitives import SigningKeyPair, X25519KeyPair
from dvc_secure.core.keys import bech32
from dvc_secure.core.keys.identity import (
    Identity,
    decode_recipient,
    decode_signing_key,
    encode_recipient,
    encode_signing_key,
    key_fingerprint,
)
from dvc_secure.errors import IdentityError

CHARSET = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def fixed_identity(label: str, signing: bool = True) -> Identity:
    enc = X25519KeyPair.from_private(hashlib.sha256(label.encode() + b" x").digest())
    sig = SigningKeyPair.from_private(hashlib.sha256(label.encode() + b" s").digest())
    return Identity(enc, sig if signing else None)


ALICE = fixed_identity("alice")
TEXT = ALICE.to_text("2026-01-01T00:00:00Z")
SECRET_LINES = [line for line in TEXT.splitlines() if not line.startswith("#")]


def test_text_round_trip() -> None:
    parsed = Identity.from_text(TEXT, "id.txt")
    assert parsed == ALICE
    assert parsed.recipient.startswith("age1")
    assert parsed.signing_key is not None and parsed.signing_key.startswith("dvcsign1")
    assert f"# recipient: {ALICE.recipient}" in TEXT
    assert f"# signing-key: {ALICE.signing_key}" in TEXT
    assert [line.split("1", 1)[0] for line in SECRET_LINES] == [
        "AGE-SECRET-KEY-",
        "DVC-SECURE-SIGNING-KEY-",
    ]


def test_generated_identities_round_trip() -> None:
    ident = Identity.generate()
    assert Identity.from_text(ident.to_text("now"), "x") == ident


def test_reader_only_identity() -> None:
    """An age-keygen file (no signing line) is an identity that decrypts but cannot sign."""
    reader = Identity.from_text(f"# public key: {ALICE.recipient}\n{SECRET_LINES[0]}\n", "r")
    assert reader.recipient == ALICE.recipient
    assert reader.signing is None and reader.signing_key is None
    text = reader.to_text("now")
    assert "DVC-SECURE-SIGNING-KEY" not in text and "signing-key" not in text
    assert Identity.from_text(text, "r") == reader


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no AGE-SECRET-KEY"),
        ("# only comments\n", "no AGE-SECRET-KEY"),
        (SECRET_LINES[1] + "\n", "no AGE-SECRET-KEY"),
        (f"{SECRET_LINES[0]}\n{SECRET_LINES[0]}\n", "more than one AGE-SECRET-KEY"),
        (f"{SECRET_LINES[0]}\n{SECRET_LINES[1]}\n{SECRET_LINES[1]}\n", "more than one signing"),
        (f"{SECRET_LINES[0]}\nnot a key\n", "line 2 is not an identity key"),
    ],
)
def test_structural_errors(text: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        Identity.from_text(text, "id.txt")


def _assert_no_secret(message: str, line: str) -> None:
    data = line.rsplit("1", 1)[-1]
    for i in range(0, len(data) - 8):  # no 8-character piece of the secret shows
        assert data[i : i + 8].lower() not in message.lower()


@settings(max_examples=200, deadline=None)
@given(which=st.integers(0, 1), position=st.integers(0, 80), char=st.sampled_from(CHARSET))
def test_malformed_key_line_error_never_echoes_the_secret(
    which: int, position: int, char: str
) -> None:
    line = SECRET_LINES[which]
    sep = line.rindex("1")
    position = sep + 1 + position % (len(line) - sep - 1)
    assume(line[position] != char)
    bad = line[:position] + char + line[position + 1 :]
    text = TEXT.replace(line, bad)
    with pytest.raises(IdentityError) as info:
        Identity.from_text(text, "id.txt")
    shown = str(info.value)
    assert "id.txt" in shown and "malformed" in shown
    _assert_no_secret(shown, bad)
    _assert_no_secret(shown, line)
    for other in SECRET_LINES:
        _assert_no_secret(shown, other)


@settings(max_examples=100, deadline=None)
@given(junk=st.text(min_size=12, max_size=80).filter(lambda s: "\n" not in s and "\r" not in s))
def test_unknown_line_error_never_echoes_it(junk: str) -> None:
    line = junk.strip()
    assume(len(line) >= 12 and not line.startswith("#"))
    assume(not line.upper().startswith(("AGE-SECRET-KEY-1", "DVC-SECURE-SIGNING-KEY-1")))
    with pytest.raises(IdentityError) as info:
        Identity.from_text(f"{SECRET_LINES[0]}\n{line}\n", "id.txt")
    assert line not in str(info.value)


def test_wrong_length_secret_key_rejected() -> None:
    short = bech32.encode("age-secret-key-", bytes(31)).upper()
    with pytest.raises(IdentityError, match="line 1 is malformed"):
        Identity.from_text(short + "\n", "id.txt")


def test_repr_never_shows_private_keys() -> None:
    assert ALICE.signing is not None
    for obj in (ALICE, ALICE.encryption, ALICE.signing):
        shown = repr(obj)
        assert ALICE.encryption.private.hex() not in shown
        assert ALICE.signing.private.hex() not in shown
        assert "SECRET" not in shown.upper()


def test_public_key_strings() -> None:
    assert ALICE.signing is not None
    assert decode_recipient(encode_recipient(ALICE.encryption.public)) == ALICE.encryption.public
    assert decode_signing_key(encode_signing_key(ALICE.signing.public)) == ALICE.signing.public
    with pytest.raises(IdentityError, match="age1"):
        decode_recipient(encode_signing_key(ALICE.signing.public))
    with pytest.raises(IdentityError, match="dvcsign1"):
        decode_signing_key(ALICE.recipient)
    with pytest.raises(IdentityError, match="32 bytes"):
        decode_recipient(encode_recipient(bytes(33)))
    assert key_fingerprint(ALICE.signing.public) == ALICE.signing.public.hex()[:16]
