"""Re-encryption record vectors (fixtures/reencryption/vectors.json) against the
implementation of docs/spec/reencryption.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.records.reencryption import (
    KeyringView,
    ReencryptionRecord,
    Replacements,
    check_record,
    epoch_of_filename,
)
from dvc_secure.errors import ReencryptionError
from fixtures.reencryption import generate

VECTORS_FILE = Path(generate.__file__).parent / "vectors.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
KR = DOC["keyring"]
VIEW = KeyringView(KR["keyring_id"], KR["epochs"],
                   {k: bytes.fromhex(v) for k, v in KR["sealer_keys"].items()})


def test_vectors_are_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_record_vector(vector: dict[str, Any]) -> None:
    data = vector["record"].encode()
    if vector["expected"] == "reject":
        with pytest.raises(ReencryptionError):
            ReencryptionRecord.from_bytes(data, vector["name"])
        return
    record = ReencryptionRecord.from_bytes(data, vector["name"])
    problems = check_record(record, VIEW, epoch_of_filename(vector["file"]), vector["file"])
    if vector["expected"] == "valid":
        assert problems == []
        assert record.digest == vector["digest"]
        assert record.to_bytes() == data  # deterministic bytes round trip
    else:
        assert problems, "an unusable record must be refused"


def _valid_records() -> list[ReencryptionRecord]:
    return [ReencryptionRecord.from_bytes(v["record"].encode(), v["name"])
            for v in DOC["vectors"] if v["expected"] == "valid"]


@pytest.mark.parametrize("case", DOC["chains"], ids=lambda c: c["name"])
def test_chain_vector(case: dict[str, Any]) -> None:
    accepted = Replacements(_valid_records())
    assert accepted.accepts(case["remote"], case["path"], case["pinned_sha256"],
                            case["stored_sha256"], case["stored_size"]) is case["accepted"]


def test_every_field_has_a_reject_vector() -> None:
    """The spec lists a MUST-reject rule per field; each has at least one vector."""
    names = {v["name"] for v in DOC["vectors"] if v["expected"] in ("reject", "unusable")}
    for needed in ("wrong-format", "unsupported-version", "keyring-id-uppercase", "epoch-one",
                   "created-not-string", "objects-not-list", "old-sha256-not-hex",
                   "size-negative", "path-dotdot", "remote-empty", "duplicate-entry",
                   "signatures-missing", "unsigned", "edited-after-signing", "other-keyring",
                   "epoch-not-in-keyring", "file-name-names-other-epoch"):
        assert needed in names
