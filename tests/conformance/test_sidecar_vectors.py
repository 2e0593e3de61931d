"""Sidecar spec vectors (fixtures/sidecar/vectors.json) against the implementation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dvc_secure.core.keys.identity import key_fingerprint
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.errors import SidecarError
from fixtures.sidecar import generate

VECTORS_FILE = Path(generate.__file__).parent / "vectors.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
WRITER = bytes.fromhex(DOC["writer_public_key"])
KEYS = {key_fingerprint(WRITER): WRITER}


def test_vectors_are_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_vector(vector: dict[str, str]) -> None:
    data = vector["sidecar"].encode()
    if vector["expected"] == "reject":
        with pytest.raises(SidecarError):
            Sidecar.from_bytes(data, vector["name"])
        return
    sc = Sidecar.from_bytes(data, vector["name"])
    valid = sc.valid_signers(KEYS)
    if vector["expected"] == "valid":
        assert valid == [sc.signer_keyid]
        assert sc.digest == vector["digest"]
        assert sc.to_bytes() == data  # deterministic bytes round trip
    else:
        assert valid == []


def test_chain_vector_points_at_its_predecessor() -> None:
    by_name = {v["name"]: v for v in DOC["vectors"]}
    v2 = Sidecar.from_bytes(by_name["valid-v2-chained"]["sidecar"].encode(), "v2")
    assert v2.previous == (by_name["valid-v1"]["digest"],)
