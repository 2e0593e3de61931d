"""Scheme-2 hidden names (docs/spec/hidden-names.md §1, §3a, §9) against
``fixtures/hidden-names/vectors.json`` ``scheme2``: an independent re-implementation of the
derivation with ``cryptography`` beside the code under test."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dvc_secure.core.format.names import (
    NAMES_V1,
    NAMES_V2,
    derive_name_key,
    derive_remote_name_key,
    hide_name,
    reveal_name,
)
from dvc_secure.core.keys.remote_policy import RemotePolicy
from dvc_secure.errors import DvcSecureError

DOC = json.loads((Path(__file__).resolve().parents[2] / "fixtures" / "hidden-names"
                  / "vectors.json").read_text(encoding="utf-8"))
V2 = DOC["scheme2"]
SECRET = bytes.fromhex(DOC["name_secret"])


def _spec_key(name_id: bytes) -> bytes:
    return HKDF(hashes.SHA256(), 64, None, b"dvc-secure/v2/names\x00" + name_id).derive(SECRET)


def _spec_hide(key: bytes, name: str) -> str:
    raw = name.encode()
    padded = raw + b"\x00" * (max(96, -(-len(raw) // 32) * 32) - len(raw))
    sealed = AESSIV(key).encrypt(padded, [b"dvc-secure/v2/object-name"])
    return sealed[:1].hex() + "/" + sealed[1:2].hex() + \
        base64.b32encode(sealed).decode().rstrip("=").lower()


def _spec_opens(key: bytes, hidden: str, context: bytes) -> bool:
    token = hidden[:2] + hidden[3:]
    raw = base64.b32decode(token[4:].upper() + "=" * (-len(token[4:]) % 8))
    try:
        AESSIV(key).decrypt(raw, [context])
    except InvalidTag:
        return False
    return True


@pytest.mark.parametrize("remote", sorted(V2["remotes"]))
def test_remote_name_key(remote: str) -> None:
    entry = V2["remotes"][remote]
    name_id = bytes.fromhex(entry["name_id"])
    assert derive_remote_name_key(SECRET, name_id).hex() == entry["name_key"]
    assert _spec_key(name_id).hex() == entry["name_key"]


@pytest.mark.parametrize("vector", V2["valid"], ids=lambda v: v["description"])
def test_scheme2_name_vector(vector: dict[str, str]) -> None:
    key = bytes.fromhex(V2["remotes"][vector["remote"]]["name_key"])
    assert hide_name(key, vector["name"], NAMES_V2) == vector["hidden"]
    assert _spec_hide(key, vector["name"]) == vector["hidden"]
    assert reveal_name(key, vector["hidden"], NAMES_V2) == vector["name"]


def test_same_object_two_remotes_two_names() -> None:
    by_name: dict[str, set[str]] = {}
    for v in V2["valid"]:
        by_name.setdefault(v["name"], set()).add(v["hidden"])
    assert by_name and all(len(hidden) == 2 for hidden in by_name.values())


def _resolve(remote: str, legacy: bool, hidden: str) -> str | None:
    """§3a: a reader tries the remote's own scheme-2 key, then (legacy only) scheme 1."""
    key = bytes.fromhex(V2["remotes"][remote]["name_key"])
    name = reveal_name(key, hidden, NAMES_V2)
    if name is None and legacy:
        name = reveal_name(derive_name_key(SECRET), hidden, NAMES_V1)
    return name


@pytest.mark.parametrize("vector", V2["resolve"], ids=lambda v: v["description"])
def test_resolve_vector(vector: dict[str, Any]) -> None:
    assert _resolve(vector["remote"], vector["legacy"], vector["hidden"]) == vector["name"]
    key = _spec_key(bytes.fromhex(V2["remotes"][vector["remote"]]["name_id"]))
    if vector["name"] is not None and _spec_opens(key, vector["hidden"],
                                                  b"dvc-secure/v2/object-name"):
        assert _spec_hide(key, vector["name"]) == vector["hidden"]


def test_old_scheme_vectors_still_resolve_under_a_legacy_pin() -> None:
    for v in DOC["valid"]:
        assert _resolve("vault", True, v["hidden"]) == v["name"]
        assert _resolve("vault", False, v["hidden"]) is None


@pytest.mark.parametrize("vector", V2["pins"], ids=lambda v: v["description"])
def test_names_pin_vector(vector: dict[str, Any]) -> None:
    doc = {"default": "vault", "secure": [{
        "name": "vault", "wraps": "storage", "subpath": "", "url": "../storage",
        "hide_names": True, "allow_gc_sealed": False, "names": vector["names"]}]}
    if vector["expected"] == "ok":
        assert RemotePolicy.from_dict(doc).to_dict() == doc
    else:
        with pytest.raises(DvcSecureError) as info:
            RemotePolicy.from_dict(doc)
        assert type(info.value).__name__ == vector["expected"]
