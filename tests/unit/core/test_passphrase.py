"""Passphrase-protected identity envelope (docs/spec/identity.md §7): pure format tests."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvc_secure.adapters.local.identity_store import PROTECTED_BEGIN, text_kind
from dvc_secure.core.format import passphrase as pp
from dvc_secure.core.keys.identity import Identity
from dvc_secure.errors import IdentityError, PassphraseError

FAST = pp.ScryptParams(log2_n=10)
PASSPHRASE = "correct horse battery staple"


@pytest.fixture(scope="module")
def ident() -> Identity:
    return Identity.generate()


@pytest.fixture(scope="module")
def sealed(ident: Identity) -> str:
    return pp.seal(ident.to_text("now"), PASSPHRASE, FAST)


def _replace_line(text: str, prefix: str, new: str) -> str:
    lines = text.splitlines()
    i = next(n for n, line in enumerate(lines) if line.startswith(prefix))
    lines[i] = new
    return "\n".join(lines) + "\n"


def test_round_trip_gives_back_the_identity(ident: Identity, sealed: str) -> None:
    opened = pp.open_envelope(sealed, PASSPHRASE, "test")
    assert Identity.from_text(opened, "test") == ident
    assert text_kind(sealed) == "protected"
    assert pp.is_protected(sealed)


def test_envelope_holds_no_secret_in_the_clear(ident: Identity, sealed: str) -> None:
    for line in ident.to_text("now").splitlines():
        if not line.startswith("#"):
            assert line not in sealed
    assert "AGE-SECRET-KEY" not in sealed.upper()


def test_defaults_are_the_documented_work_factor() -> None:
    assert pp.ScryptParams() == pp.ScryptParams(log2_n=18, r=8, p=1)
    assert PROTECTED_BEGIN == pp.BEGIN  # identity_store tells kinds apart without crypto


def test_every_seal_draws_a_fresh_salt(ident: Identity) -> None:
    text = ident.to_text("now")
    a, b = pp.parse(pp.seal(text, PASSPHRASE, FAST), "a"), pp.parse(pp.seal(text, PASSPHRASE, FAST), "b")
    assert a.salt != b.salt  # the fixed nonce is only safe with one message per key
    assert a.ciphertext != b.ciphertext


def test_wrong_passphrase_is_rejected(sealed: str) -> None:
    with pytest.raises(PassphraseError, match=pp.WRONG_PASSPHRASE) as info:
        pp.open_envelope(sealed, PASSPHRASE + " ", "test")
    assert PASSPHRASE not in str(info.value)


@pytest.mark.parametrize(
    ("prefix", "new", "message"),
    [
        ("Version:", "Version: 2", "unsupported protected identity version"),
        ("Scrypt-Log2-N:", "Scrypt-Log2-N: 11", pp.WRONG_PASSPHRASE),
        ("Scrypt-R:", "Scrypt-R: 7", pp.WRONG_PASSPHRASE),
        ("Scrypt-P:", "Scrypt-P: 2", r"outside \[1, 1\]"),
        ("Salt:", "Salt: " + base64.b64encode(bytes(16)).decode(), pp.WRONG_PASSPHRASE),
        (pp.BEGIN, pp.BEGIN.replace("IDENTITY", "IDENTITIES"), "not a protected identity"),
        (pp.END, pp.END.replace("END", "FIN", 1), "no '-----END"),
    ],
)
def test_tampered_header_field_is_rejected(sealed: str, prefix: str, new: str, message: str) -> None:
    with pytest.raises(PassphraseError, match=message):
        pp.open_envelope(_replace_line(sealed, prefix, new), PASSPHRASE, "test")


def test_tampered_byte_anywhere_in_the_body_is_rejected(sealed: str) -> None:
    env = pp.parse(sealed, "test")
    lines = sealed.splitlines()
    body_at = lines.index("") + 1
    body = env.ciphertext
    # every 5th byte, plus the whole tag: one flipped bit each time
    positions = sorted({*range(0, len(body), 5), *range(len(body) - pp.TAG_LEN, len(body))})
    for pos in positions:
        bad = bytearray(body)
        bad[pos] ^= 0x01
        b64 = base64.b64encode(bytes(bad)).decode()
        body_lines = [b64[i : i + pp.BODY_LINE] for i in range(0, len(b64), pp.BODY_LINE)]
        text = "\n".join([*lines[:body_at], *body_lines, pp.END]) + "\n"
        with pytest.raises(PassphraseError, match=pp.WRONG_PASSPHRASE):
            pp.open_envelope(text, PASSPHRASE, "test")


def test_truncated_body_is_rejected(sealed: str) -> None:
    lines = sealed.splitlines()
    body_at = lines.index("") + 1
    text = "\n".join([*lines[: body_at + 1], pp.END]) + "\n"  # first body line only
    with pytest.raises(PassphraseError, match=pp.WRONG_PASSPHRASE):
        pp.open_envelope(text, PASSPHRASE, "test")


@pytest.mark.parametrize(
    ("field", "value", "accepted"),
    [
        ("Scrypt-Log2-N", "9", False),
        ("Scrypt-Log2-N", "10", True),
        ("Scrypt-Log2-N", "22", True),
        ("Scrypt-Log2-N", "23", False),
        ("Scrypt-Log2-N", "64", False),
        ("Scrypt-Log2-N", "-1", False),
        ("Scrypt-Log2-N", "1e1", False),
        ("Scrypt-R", "0", False),
        ("Scrypt-R", "1", True),
        ("Scrypt-R", "8", True),
        ("Scrypt-R", "9", False),
        ("Scrypt-P", "0", False),
        ("Scrypt-P", "1", True),
        ("Scrypt-P", "2", False),
    ],
)
def test_parameter_bounds(sealed: str, field: str, value: str, accepted: bool) -> None:
    text = _replace_line(sealed, f"{field}:", f"{field}: {value}")
    if accepted:
        pp.parse(text, "test")  # structurally fine (the tag would then fail)
        return
    with pytest.raises(PassphraseError):
        pp.parse(text, "test")


def test_forged_envelope_with_a_huge_work_factor_costs_nothing(sealed: str) -> None:
    """A file asking for log2 N = 40 (128 TiB) is refused before scrypt or the prompt."""
    text = _replace_line(sealed, "Scrypt-Log2-N:", "Scrypt-Log2-N: 40")
    start = time.monotonic()
    with pytest.raises(PassphraseError, match=r"outside \[10, 22\]"):
        pp.open_envelope(text, PASSPHRASE, "test")
    assert time.monotonic() - start < 1.0


@pytest.mark.parametrize("salt_len", [0, 8, 15, 17, 32])
def test_salt_of_the_wrong_length_is_rejected(sealed: str, salt_len: int) -> None:
    text = _replace_line(sealed, "Salt:", "Salt: " + base64.b64encode(bytes(salt_len)).decode())
    with pytest.raises(PassphraseError, match="Salt"):
        pp.parse(text, "test")


@pytest.mark.parametrize("bad", ["!!!!", "AAAAAAAAAAAAAAAAAAAAAA", "AAAAAAAAAAAAAAAAAAAAAB==", "AAAA AAAA"])
def test_bad_base64_salt_is_rejected(sealed: str, bad: str) -> None:
    with pytest.raises(PassphraseError, match=r"base64|Salt"):
        pp.parse(_replace_line(sealed, "Salt:", "Salt: " + bad), "test")


def test_text_after_the_end_line_is_rejected(sealed: str) -> None:
    with pytest.raises(PassphraseError, match="text after"):
        pp.parse(sealed + "extra\n", "test")


def test_sealing_refuses_weak_or_empty_input(ident: Identity) -> None:
    with pytest.raises(PassphraseError, match="empty passphrase"):
        pp.seal(ident.to_text("now"), "", FAST)
    with pytest.raises(PassphraseError, match="outside"):
        pp.seal(ident.to_text("now"), PASSPHRASE, pp.ScryptParams(log2_n=9))


def test_non_identity_plaintext_is_an_identity_error_after_opening() -> None:
    text = pp.seal("hello\n", PASSPHRASE, FAST)
    opened = pp.open_envelope(text, PASSPHRASE, "test")  # authentic, but not an identity
    with pytest.raises(IdentityError, match="line 1 is not an identity key"):
        Identity.from_text(opened, "test")


_texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=300)


@settings(max_examples=25, deadline=None)
@given(text=_texts.filter(bool), secret=_texts.filter(bool), other=_texts.filter(bool))
def test_round_trip_property(text: str, secret: str, other: str) -> None:
    sealed = pp.seal(text, secret, FAST)
    assert pp.open_envelope(sealed, secret, "h") == text
    assert pp.open_envelope(sealed.replace("\n", "\r\n"), secret, "h") == text
    if other != secret:
        with pytest.raises(PassphraseError, match=pp.WRONG_PASSPHRASE):
            pp.open_envelope(sealed, other, "h")
