"""Upload record vectors (fixtures/upload_records/vectors.json) against the implementation
of docs/spec/repair.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.records.upload import Attestations, UploadRecord, UploadTrust, check_record
from dvc_secure.errors import UploadRecordError
from fixtures.upload_records import generate

VECTORS_FILE = Path(generate.__file__).parent / "vectors.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
KR = DOC["keyring"]
TRUST = UploadTrust(
    KR["keyring_id"], KR["epochs"],
    {k: bytes.fromhex(v) for k, v in KR["writers"].items()},
    {k: (bytes.fromhex(v["public"]), v["last_epoch"]) for k, v in KR["former_writers"].items()})


def test_vectors_are_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_record_vector(vector: dict[str, Any]) -> None:
    data = vector["record"].encode()
    if vector["expected"] == "reject":
        with pytest.raises(UploadRecordError):
            UploadRecord.from_bytes(data, vector["name"])
        return
    record = UploadRecord.from_bytes(data, vector["name"])
    problems = check_record(record, TRUST, vector["name"])
    if vector["expected"] == "valid":
        assert problems == []
        assert record.file_digest == vector["file_digest"]
        assert record.to_bytes() == data  # deterministic bytes round trip
    else:
        assert problems, "an unusable record must be refused"


@pytest.mark.parametrize("case", DOC["accepts"], ids=lambda c: c["name"])
def test_acceptance_vector(case: dict[str, Any]) -> None:
    valid = [UploadRecord.from_bytes(v["record"].encode(), v["name"])
             for v in DOC["vectors"] if v["expected"] == "valid"]
    accepted = Attestations(valid)
    assert accepted.accepts(case["path"], case["stored_sha256"],
                            case["stored_size"]) is case["accepted"]


def test_every_rule_has_a_vector() -> None:
    """The spec lists a MUST rule per field and per use condition; each has a vector."""
    names = {v["name"] for v in DOC["vectors"] if v["expected"] in ("reject", "unusable")}
    for needed in ("wrong-format", "unsupported-version", "keyring-id-uppercase", "epoch-zero",
                   "created-not-string", "objects-not-list", "sha256-not-hex", "size-negative",
                   "path-dotdot", "path-absolute", "entry-unknown-field", "duplicate-path",
                   "signatures-missing", "signature-keyid-malformed", "unsigned",
                   "signed-by-outsider", "edited-after-signing", "replayed-for-another-path",
                   "other-keyring", "epoch-not-in-keyring", "former-writer-after-last-epoch"):
        assert needed in names
