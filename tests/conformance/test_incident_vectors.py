"""Incident record vectors (fixtures/incident/vectors.json) against docs/spec/incident.md."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.records.incident import IncidentRecord
from dvc_secure.errors import IncidentRecordError
from fixtures.incident import generate

VECTORS_FILE = Path(generate.__file__).parent / "vectors.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
ADMIN = {k: bytes.fromhex(v) for k, v in DOC["admin_key"].items()}


def test_vectors_are_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_incident_vector(vector: dict[str, Any]) -> None:
    data = vector["record"].encode()
    if vector["expected"] == "reject":
        with pytest.raises(IncidentRecordError) as err:
            IncidentRecord.from_bytes(data, vector["name"])
        assert err.value.hint
        return
    record = IncidentRecord.from_bytes(data, vector["name"])
    assert record.to_bytes() == data  # writers' form round-trips byte for byte
    signers = record.valid_signers(ADMIN)
    if vector["expected"] == "valid":
        assert signers == list(ADMIN)
        assert hashlib.sha256(record.canonical_bytes()).hexdigest() == vector["digest_of_canonical"]
    else:
        assert signers == []
