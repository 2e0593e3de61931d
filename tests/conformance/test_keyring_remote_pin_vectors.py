"""Remote-pin vectors of fixtures/keyring/vectors.json (docs/spec/keyring.md §4b)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.keys.remote_policy import ConfiguredRemote, pin_problems
from dvc_secure.errors import KeyringError
from fixtures import generate_vectors

DOC = json.loads((Path(generate_vectors.__file__).parent / "keyring" / "vectors.json")
                 .read_text(encoding="utf-8"))
CONFIG_DIR = "/repo/.dvc"


def _with(key: str) -> list[dict[str, Any]]:
    return [v for v in DOC["vectors"] if key in v["expected"]]


def test_every_remote_pin_rule_has_vectors() -> None:
    names = {v["name"] for v in DOC["vectors"]}
    assert {"remote-pin", "remotes-null", "remotes-no-default", "remotes-secure-empty",
            "remotes-name-repeats", "remotes-flag-not-boolean", "remotes-subpath-slash",
            "remotes-default-not-pinned", "remotes-wraps-secure", "remotes-url-empty",
            "remotes-not-object"} <= names
    assert _with("remote_checks")


@pytest.mark.parametrize("vector", _with("remote_checks"), ids=lambda v: v["name"])
def test_remote_pin_vector(vector: dict[str, Any]) -> None:
    ring = Keyring.from_json(vector["keyring"])
    assert ring.remotes is not None
    assert ring.to_json() == vector["keyring"]  # unknown members survive
    for configured, default, expected in vector["expected"]["remote_checks"]:
        problems = pin_problems(ring.remotes, ConfiguredRemote(**configured), default, CONFIG_DIR)
        assert len(problems) == expected, (configured, default, problems)


@pytest.mark.parametrize("vector", [v for v in DOC["vectors"] if v["name"].startswith("remotes-")],
                         ids=lambda v: v["name"])
def test_remote_pin_rejection_vector(vector: dict[str, Any]) -> None:
    assert vector["expected"]["parse"] == "KeyringError"
    with pytest.raises(KeyringError):
        Keyring.from_json(vector["keyring"])


def test_keyrings_without_a_pin_keep_their_canonical_bytes() -> None:
    """The field is optional and omitted when absent: every older vector still round-trips."""
    valid = next(v for v in DOC["vectors"] if v["name"] == "valid")
    ring = Keyring.from_json(valid["keyring"])
    assert ring.remotes is None and "remotes" not in ring.signed_part()
    assert ring.digest == valid["expected"]["digest"]
