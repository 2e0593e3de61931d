"""Bech32 (BIP 173) as used for age recipients and identities (docs/spec/identity.md §2)."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from dvc_secure.core.keys import bech32

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
HRPS = ["age", "age-secret-key-", "dvcsign", "dvc-secure-signing-key-", "a"]


@settings(max_examples=200, deadline=None)
@given(hrp=st.sampled_from(HRPS), data=st.binary(max_size=64))
def test_round_trip(hrp: str, data: bytes) -> None:
    text = bech32.encode(hrp, data)
    assert text.startswith(hrp + "1")
    assert bech32.decode(text, hrp) == data
    assert bech32.decode(text.upper(), hrp) == data


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=32, max_size=32),
    position=st.integers(0, 200),
    char=st.sampled_from(CHARSET),
)
def test_any_single_substitution_detected(data: bytes, position: int, char: str) -> None:
    """BCH checksum: every 1-character error in strings this short is detected."""
    text = bech32.encode("age-secret-key-", data)
    sep = text.rindex("1")
    position = sep + 1 + position % (len(text) - sep - 1)
    assume(text[position] != char)
    with pytest.raises(ValueError, match="checksum"):
        bech32.decode(text[:position] + char + text[position + 1 :], "age-secret-key-")


@pytest.mark.parametrize(
    "text",
    [
        # valid strings from BIP 173's test vectors
        "A12UEL5L",
        "a12uel5l",
        "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
        "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
        "?1ezyfcl",
    ],
)
def test_bip173_valid_checksums(text: str) -> None:
    hrp = text[: text.lower().rindex("1")]
    bech32.decode(text, hrp)  # raises on a bad checksum


def test_rejections() -> None:
    good = bech32.encode("age", bytes(32))
    with pytest.raises(ValueError, match="mixed-case"):
        bech32.decode(good[:5] + good[5:].upper(), "age")
    with pytest.raises(ValueError, match="expected"):
        bech32.decode(good, "dvcsign")
    with pytest.raises(ValueError, match="malformed"):
        bech32.decode("age1qqqq", "age")  # shorter than a checksum
    with pytest.raises(ValueError, match="malformed"):
        bech32.decode("qqqqqqqqqq", "age")  # no separator
    with pytest.raises(ValueError, match="character"):
        bech32.decode(good[:-1] + "b", "age")  # 'b' is not in the alphabet
    with pytest.raises(ValueError):
        bech32.decode(good[:-7] + good[-6:], "age")  # one data character missing
