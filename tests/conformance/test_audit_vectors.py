"""Audit-log vectors (fixtures/audit/vectors.json) against the implementation and the spec.

Envelopes are opened twice: by ``audit_box.open_event`` and by ``spec_open`` below, written
from docs/spec/audit-log.md §4 with pyca/cryptography alone.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dvc_secure.core.audit.model import AuditEvent, Entry, Signer, verify_log
from dvc_secure.core.format.audit_box import open_event
from dvc_secure.errors import AuditBoxError
from fixtures.audit import generate_vectors

FIXTURES = Path(generate_vectors.__file__).parent
DOC: dict[str, Any] = json.loads((FIXTURES / "vectors.json").read_text(encoding="utf-8"))


def spec_open(envelope: bytes, name: str, data_key: bytes) -> bytes:
    """docs/spec/audit-log.md §4, independently of dvc_secure.core.format.audit_box."""
    assert envelope[:7] == b"DSAUDIT" and envelope[7] == 1
    epoch = envelope[8:12]
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"",
               info=b"dvc-secure/v1/audit-event\x00" + epoch).derive(data_key)
    return AESGCM(key).decrypt(envelope[12:24], envelope[24:], envelope[:24] + name.encode())


def test_generated_vectors_are_up_to_date(tmp_path: Path) -> None:
    generate_vectors.write(tmp_path)
    assert (tmp_path / "vectors.json").read_bytes() == (FIXTURES / "vectors.json").read_bytes()


def test_envelope_vectors_open_by_spec_and_by_implementation() -> None:
    key = bytes.fromhex(DOC["data_key"])
    for v in DOC["envelopes"]:
        blob = bytes.fromhex(v["envelope"])
        assert spec_open(blob, v["name"], key) == v["plaintext"].encode()
        assert open_event(blob, v["name"], lambda e: key) == v["plaintext"].encode()
        event = AuditEvent.from_bytes(v["plaintext"].encode())
        assert event.digest == v["digest"]
        canonical = json.dumps(json.loads(v["plaintext"])["signed"], sort_keys=True,
                               separators=(",", ":")).encode()
        assert hashlib.sha256(canonical).hexdigest() == v["digest"]


def test_envelope_under_another_name_is_rejected() -> None:
    key = bytes.fromhex(DOC["data_key"])
    v = DOC["envelopes"][0]
    with pytest.raises(AuditBoxError):
        open_event(bytes.fromhex(v["envelope"]), v["name"].replace("0001.evt", "0002.evt"),
                   lambda e: key)


@pytest.mark.parametrize("case", DOC["cases"], ids=[c["name"] for c in DOC["cases"]])
def test_audit_case(case: dict[str, Any]) -> None:
    key = bytes.fromhex(DOC["data_key"])
    signers = {k: Signer(v["name"], v["role"]) for k, v in DOC["signers"].items()}
    entries = []
    for stored in case["stored"]:
        chain, seq = stored["name"].split("/")[-2], int(stored["name"].split("/")[-1][:10])
        blob = base64.b64decode(stored["envelope"])
        try:
            entries.append(Entry(chain, seq, open_event(blob, stored["name"], lambda e: key)))
        except AuditBoxError as exc:
            entries.append(Entry(chain, seq, None, exc.message))
    checkpoints = {c: (v[0], v[1]) for c, v in case["checkpoints"].items()}
    view = verify_log(entries, signers, checkpoints)
    def order(x: list[Any]) -> tuple[str, str, int]:
        return x[0], x[1], x[2] or 0

    got = sorted(([f.kind, f.chain, f.seq] for f in view.findings), key=order)
    assert got == sorted(case["expect"], key=order), [f.message for f in view.findings]
    assert view.ok == (not case["expect"])
