"""Retention and erasure in verification (core/verification/retention.py): pure, dated."""

from __future__ import annotations

import datetime as dt

import pytest

from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.records.erasure import ErasureRecord
from dvc_secure.core.records.hold import HoldRecord
from dvc_secure.core.sidecar.model import AccessMetadata, SealedOutput, Sidecar
from dvc_secure.core.verification.retention import (
    ERASED,
    HELD,
    OVERDUE,
    retention_findings,
    retention_items,
)
from dvc_secure.errors import SidecarError

ADMIN = SigningKeyPair.from_private(bytes(range(100, 132)))
DAY = dt.date(2027, 7, 1)


def _sidecar(metafile: str, delete_after: str | None, domain: str | None,
             version: int = 1) -> Sidecar:
    out = SealedOutput(path="x", oid="d" * 32, sha256="f" * 64, size=3, nfiles=1,
                       key_epoch=1, remote="vault")
    return Sidecar(metafile=metafile, version=version, previous=() if version == 1 else ("0" * 64,),
                   sealed_at="2026-03-01T09:00:00Z", signer_keyid="k" * 16, git_author="",
                   outputs=(out,), access=AccessMetadata("restricted", "DPO", "study",
                                                         delete_after, (), domain))


def _erasure(domain: str) -> ErasureRecord:
    return ErasureRecord.create(keyring_id="0" * 32, epoch=1, created="2027-07-02T00:00:00Z",
                                domain=domain, reason="request 17", by="alice",
                                datasets={"a.dvc": ["1" * 40]}, objects=["files/md5/dd/x"],
                                remotes=["vault"]).sign(ADMIN)


def _hold(domain: str, active: bool = True) -> HoldRecord:
    return HoldRecord.create(keyring_id="0" * 32, epoch=1, created="2027-06-01T00:00:00Z",
                             domain=domain, reason="litigation", by="alice", active=active)


def test_states_by_date_erasure_and_hold() -> None:
    newest = [("r", _sidecar("a.dvc", "2027-06-30", "a")),
              ("r", _sidecar("b.dvc", "2027-07-10", "b")),
              ("r", _sidecar("c.dvc", None, None)),
              ("r", _sidecar("d.dvc", "2027-06-30", "d")),
              ("r", _sidecar("e.dvc", "2027-06-30", "e"))]
    items = retention_items(newest, DAY, {"e": _erasure("e")}, {"d": _hold("d")})
    assert [i.state for i in items] == ["overdue", "due", "kept", "held", "erased"]
    # the day itself is not overdue; a released hold holds nothing
    assert retention_items(newest[:1], dt.date(2027, 6, 30), {}, {})[0].state == "due"
    assert retention_items(newest[3:4], DAY, {}, {"d": _hold("d", False)})[0].state == "overdue"


def test_findings_fail_overdue_and_report_held_and_erased_revisions() -> None:
    a1, a2 = _sidecar("a.dvc", "2027-06-30", "a"), _sidecar("a.dvc", "2027-06-30", "a", 2)
    held = _sidecar("h.dvc", "2027-06-30", "h")
    fail, notes = retention_findings([("r2", a2), ("r2", held)], [("r1", a1), ("r2", a2)], DAY,
                                     {}, {"h": _hold("h")})
    assert [(f.dataset, f.code) for f in fail] == [("a.dvc", OVERDUE)]
    assert [n.code for n in notes] == [HELD]
    fail, notes = retention_findings([("r2", a2)], [("r1", a1), ("r2", a2)], DAY,
                                     {"a": _erasure("a")}, {})
    assert fail == [] and [(n.rev, n.code) for n in notes] == [("r1", ERASED), ("r2", ERASED)]
    assert "request 17" in notes[0].message


def test_default_domain_overdue_says_how_to_get_a_domain() -> None:
    fail, _ = retention_findings([("r", _sidecar("c.dvc", "2027-01-01", None))], [], DAY, {}, {})
    assert "--domain" in fail[0].fix


def test_sidecar_domain_round_trips_and_is_absent_by_default() -> None:
    plain = AccessMetadata()
    assert "domain" not in plain.to_dict()  # earlier sidecars stay byte-identical
    d = AccessMetadata(domain="cohort-2024").to_dict()
    assert AccessMetadata.from_dict(d).domain == "cohort-2024"
    with pytest.raises(SidecarError):
        AccessMetadata.from_dict({**d, "domain": "Not A Domain"})
