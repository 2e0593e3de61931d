"""Access-control vectors of fixtures/keyring/vectors.json (docs/spec/keyring.md §4, §4a,
docs/access.md): expiry dates, former signers, forged grants."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from fixtures import generate_vectors

DOC = json.loads((Path(generate_vectors.__file__).parent / "keyring" / "vectors.json")
                 .read_text(encoding="utf-8"))
PEOPLE = {name: Identity.from_text(v["text"], name) for name, v in DOC["identities"].items()}
VALID = Keyring.from_json(next(v for v in DOC["vectors"] if v["name"] == "valid")["keyring"])


def _with(key: str) -> list[dict[str, Any]]:
    return [v for v in DOC["vectors"] if key in v["expected"]]


def test_every_access_outcome_has_vectors() -> None:
    assert _with("expired_on") and _with("object_signers") and _with("successor_of_valid")
    names = {v["name"] for v in DOC["vectors"]}
    assert {"forged-grant", "expired-member", "former-signer", "expires-not-a-date",
            "former-signers-empty"} <= names


@pytest.mark.parametrize("vector", _with("expired_on"), ids=lambda v: v["name"])
def test_expiry_vector(vector: dict[str, Any]) -> None:
    ring = Keyring.from_json(vector["keyring"])
    for day, names in vector["expected"]["expired_on"].items():
        assert [m.name for m in ring.expired_members(dt.date.fromisoformat(day))] == names


@pytest.mark.parametrize("vector", _with("object_signers"), ids=lambda v: v["name"])
def test_former_signer_vector(vector: dict[str, Any]) -> None:
    ring = Keyring.from_json(vector["keyring"])
    for who, epoch, trusted in vector["expected"]["object_signers"]:
        signing = PEOPLE[who].signing
        assert signing is not None
        assert ring.trusts_object_signer(signing.public, epoch) is trusted, (who, epoch)


@pytest.mark.parametrize("vector", _with("successor_of_valid"), ids=lambda v: v["name"])
def test_successor_vector(vector: dict[str, Any]) -> None:
    ring = Keyring.from_json(vector["keyring"])
    problems = VALID.transition_problems(ring)
    assert (not problems) is (vector["expected"]["successor_of_valid"] == "ok"), problems
