"""fixtures/identity/protected.json: passphrase-protected identities and OS keyring pointers
(docs/spec/identity.md §7, §8). Freshness of the file is checked by test_spec_vectors.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.adapters.local.identity_store import (
    ENV_IDENTITY,
    ENV_PASSPHRASE,
    KeyringPointer,
    load_identity,
    text_kind,
)
from dvc_secure.core.format import passphrase as pp
from dvc_secure.errors import IdentityError

DOC = json.loads(
    (Path(__file__).parents[2] / "fixtures" / "identity" / "protected.json").read_text(
        encoding="utf-8"
    )
)


@pytest.mark.parametrize("vector", DOC["protected"], ids=lambda v: v["name"])
def test_protected_identity_vector(vector: dict[str, Any], tmp_path: Path) -> None:
    assert text_kind(vector["text"]) == "protected"
    env = {ENV_IDENTITY: vector["text"], ENV_PASSPHRASE: vector["passphrase"], "HOME": str(tmp_path)}
    expected = vector["expected"]
    if expected["outcome"] == "ok":
        ident = load_identity(env)
        assert ident.recipient == expected["recipient"]
        assert ident.signing_key == expected["signing_key"]
        return
    with pytest.raises(IdentityError) as info:
        load_identity(env)
    assert type(info.value).__name__ == expected["outcome"]
    assert expected["message"] in info.value.message
    # no secret in the message: neither the passphrase nor any body line
    text = str(info.value)
    assert vector["passphrase"] not in text
    for line in vector["text"].splitlines():
        if len(line) > 20 and not line.startswith(("#", "-----", "Salt")):
            assert line.strip() not in text


def test_a_work_factor_above_the_bound_is_refused_before_scrypt_runs() -> None:
    """log2 N = 23 would take 8 GiB; the parser must refuse it without deriving a key."""
    vector = next(v for v in DOC["protected"] if v["name"] == "log2n-23")
    with pytest.raises(IdentityError, match=r"outside \[10, 22\]"):
        pp.parse(vector["text"], "vector")


def test_every_required_protected_vector_exists() -> None:
    names = {v["name"] for v in DOC["protected"]}
    assert {
        "valid", "wrong-passphrase", "body-bit-flipped", "tag-changed", "salt-changed",
        "version-2", "log2n-23", "r-9", "p-2", "salt-15-bytes", "salt-bad-base64",
        "body-bad-base64", "no-end",
    } <= names
    vector = next(v for v in DOC["protected"] if v["name"] == "valid")
    assert "Scrypt-Log2-N: 10\n" in vector["text"]


@pytest.mark.parametrize("vector", DOC["pointers"], ids=lambda v: v["name"])
def test_keyring_pointer_vector(vector: dict[str, Any]) -> None:
    assert text_kind(vector["text"]) == "pointer"
    expected = vector["expected"]
    if expected["outcome"] == "ok":
        pointer = KeyringPointer.from_text(vector["text"], "pointer.txt")
        assert (pointer.service, pointer.user) == (expected["service"], expected["user"])
        assert KeyringPointer.from_text(pointer.to_text(), "again") == pointer
        return
    with pytest.raises(IdentityError) as info:
        KeyringPointer.from_text(vector["text"], "pointer.txt")
    assert type(info.value).__name__ == expected["outcome"]
    assert expected["message"] in info.value.message
