"""Upload records that stand for a sealed remote index under another remote's hidden names
(docs/spec/repair.md §5a): the optional signed ``remote_index`` member."""

from __future__ import annotations

import json

import pytest

from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.records.upload import (
    Attestations,
    UploadedObject,
    UploadRecord,
    UploadTrust,
    check_record,
)
from dvc_secure.errors import UploadRecordError

WRITER = SigningKeyPair.from_private(bytes([7]) * 32)
TRUST = UploadTrust("ab" * 16, [1], {WRITER.public.hex()[:16]: WRITER.public})
DIGEST = "d" * 64
OBJECTS = [UploadedObject(f"0{i}/0{i}" + "a" * 60, f"{i}" * 64, 100 + i) for i in range(3)]


def _record(created: str = "2026-12-06T00:00:00Z", objects: list[UploadedObject] = OBJECTS,
            digest: str | None = DIGEST) -> UploadRecord:
    return UploadRecord.create("ab" * 16, 1, created, objects, digest).sign(WRITER)


def test_remote_index_is_signed_and_round_trips() -> None:
    record = _record()
    parsed = UploadRecord.from_bytes(record.to_bytes(), "r")
    assert parsed.remote_index == DIGEST and parsed.to_bytes() == record.to_bytes()
    assert check_record(parsed, TRUST, "r") == []
    doc = json.loads(record.to_bytes())
    doc["signed"]["remote_index"] = "e" * 64  # moved to another index after signing
    moved = UploadRecord.from_bytes(json.dumps(doc).encode(), "r")
    assert check_record(moved, TRUST, "r")
    assert UploadRecord.from_bytes(_record(digest=None).to_bytes(), "r").remote_index is None


@pytest.mark.parametrize("bad", ["D" * 64, "d" * 63, 5, None])
def test_malformed_remote_index_rejected(bad: object) -> None:
    doc = json.loads(_record().to_bytes())
    doc["signed"]["remote_index"] = bad
    with pytest.raises(UploadRecordError, match="remote_index"):
        UploadRecord.from_bytes(json.dumps(doc).encode(), "r")


def test_index_objects_needs_exactly_the_index_count_and_takes_the_newest() -> None:
    other = UploadedObject("ff/" + "f" * 60, "f" * 64, 9)
    older = _record("2026-01-01T00:00:00Z", [*OBJECTS[:1], other, *OBJECTS[2:]])
    seen = Attestations([_record(), older, _record(objects=OBJECTS[:2])])
    assert seen.index_objects(DIGEST, 3) == tuple(sorted(OBJECTS))
    assert seen.index_objects(DIGEST, 4) is None
    assert seen.index_objects("e" * 64, 3) is None
    assert seen.accepts(OBJECTS[0].path, OBJECTS[0].sha256, OBJECTS[0].size)
