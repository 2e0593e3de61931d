"""Key-domain file and erasure/hold record vectors (fixtures/erasure/vectors.json) against
docs/spec/domain-key.md and docs/spec/erasure.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.format.domain_keys import (
    derive_domain_data_key,
    domain_tag,
    open_key_file,
    seal_key_file,
)
from dvc_secure.core.records.erasure import ErasureRecord
from dvc_secure.core.records.hold import HoldRecord
from dvc_secure.errors import DomainKeyMissingError, ErasureError
from fixtures.erasure import generate

VECTORS_FILE = Path(generate.__file__).parent / "vectors.json"
DOC = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))
DATA_KEY = bytes.fromhex(DOC["data_key"])
ADMINS = {k: bytes.fromhex(v) for k, v in DOC["admin_keys"].items()}


def test_vectors_are_up_to_date() -> None:
    assert VECTORS_FILE.read_text(encoding="utf-8") == generate.render()


@pytest.mark.parametrize("vector", DOC["key_files"], ids=lambda v: v["name"])
def test_key_file_vector(vector: dict[str, Any]) -> None:
    blob = bytes.fromhex(vector["file"])
    if vector["expected"] == "reject":
        with pytest.raises(DomainKeyMissingError) as err:
            open_key_file(blob, DATA_KEY, vector["name"])
        assert err.value.hint or err.value.default_hint
        return
    domain, epoch, secret = open_key_file(blob, DATA_KEY, vector["name"])
    assert (domain, epoch, secret.hex()) == (vector["domain"], vector["epoch"], vector["secret"])
    key = derive_domain_data_key(DATA_KEY, secret, domain, epoch)
    assert key.hex() == vector["domain_data_key"]
    assert domain_tag(bytes.fromhex(DOC["name_key"]), domain) == vector["domain_tag"]


def test_writer_output_is_read_by_the_reader_and_by_nothing_else() -> None:
    blob = seal_key_file(DATA_KEY, 3, "cohort-2024", b"\x07" * 32)
    assert open_key_file(blob, DATA_KEY, "w") == ("cohort-2024", 3, b"\x07" * 32)
    with pytest.raises(DomainKeyMissingError):
        open_key_file(blob, bytes(32), "w")


@pytest.mark.parametrize("vector", DOC["records"], ids=lambda v: v["name"])
def test_record_vector(vector: dict[str, Any]) -> None:
    cls = ErasureRecord if vector["name"].startswith("erasure") else HoldRecord
    data = vector["record"].encode()
    if vector["expected"] == "reject":
        with pytest.raises(ErasureError) as err:
            cls.from_bytes(data, vector["name"])
        assert err.value.hint
        return
    record = cls.from_bytes(data, vector["name"])
    assert record.to_bytes() == data  # the writers' form round-trips byte for byte
    problems = record.problems(vector.get("keyring_id", DOC["keyring_id"]), ADMINS,
                               vector.get("threshold", 1), vector["file_domain"], "v")
    assert (problems == []) == (vector["expected"] == "valid"), problems
    if "record_id" in vector:
        assert record.record_id == vector["record_id"]
