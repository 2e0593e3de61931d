"""Incident records: what a member could read and did read, and how access was contained.

A signed, git-tracked JSON file ``.dvc/secure/incidents/<id>.json`` written by
``dvc-secure incident MEMBER --contain`` and signed by the admin who contained it.
Format: docs/spec/incident.md; vectors: fixtures/incident/vectors.json.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dvc_secure.core.format.primitives import SigningKeyPair, valid_signers
from dvc_secure.core.records.envelope import (
    add_signature,
    canonical,
    file_bytes,
    open_envelope,
    signatures_of,
)
from dvc_secure.errors import IncidentRecordError

INCIDENT_FORMAT = "dvc-secure-incident"
INCIDENT_VERSION = 1
SIGN_LABEL = b"dvc-secure/v1/incident-signature\x00"
INCIDENT_DIR = "secure/incidents"  # below .dvc/
_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_KEYID = re.compile(r"[0-9a-f]{16}")
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_CLASSES = ("public", "internal", "confidential", "restricted")


def record_relpath(incident_id: str) -> str:
    return f"{INCIDENT_DIR}/{incident_id}.json"


def _bad(where: str, what: str) -> IncidentRecordError:
    return IncidentRecordError(f"incident record {where}: {what}",
                               hint="restore it from git history; records are written only "
                               "by 'dvc-secure incident --contain'")


def _get(d: Any, key: str, typ: type, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _bad(where, f"missing '{key}'")
    v = d[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise _bad(where, f"'{key}' must be {typ.__name__}")
    return v


def _match(pattern: re.Pattern[str], value: str, where: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise _bad(where, f"{what} is malformed")
    return value


@dataclass(frozen=True)
class Exposure:
    """One sealed dataset version the member held a key epoch for."""

    metafile: str
    version: int
    classification: str
    key_epochs: tuple[int, ...]
    sidecar_digest: str
    revision: str  # the first commit (git history order) holding this sidecar version

    def to_dict(self) -> dict[str, Any]:
        return {"metafile": self.metafile, "version": self.version,
                "classification": self.classification, "key_epochs": list(self.key_epochs),
                "sidecar_digest": self.sidecar_digest, "revision": self.revision}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> Exposure:
        epochs = _get(d, "key_epochs", list, where)
        if not epochs or not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1
                                 for e in epochs):
            raise _bad(where, "key_epochs must be a non-empty list of epochs >= 1")
        cls_ = _get(d, "classification", str, where)
        if cls_ not in _CLASSES:
            raise _bad(where, f"classification {cls_!r} is unknown")
        version = _get(d, "version", int, where)
        if version < 1:
            raise _bad(where, "version must be >= 1")
        return cls(_get(d, "metafile", str, where), version, cls_, tuple(epochs),
                   _match(_HEX64, _get(d, "sidecar_digest", str, where), where, "sidecar_digest"),
                   _match(_COMMIT, _get(d, "revision", str, where), where, "revision"))


@dataclass(frozen=True)
class EventRef:
    """An audit event of the member, by its place in the signed, hash-chained trail."""

    chain: str
    seq: int
    digest: str
    action: str
    time: str

    def to_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "seq": self.seq, "digest": self.digest,
                "action": self.action, "time": self.time}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> EventRef:
        seq = _get(d, "seq", int, where)
        if seq < 1:
            raise _bad(where, "seq must be >= 1")
        return cls(_match(_HEX32, _get(d, "chain", str, where), where, "chain"), seq,
                   _match(_HEX64, _get(d, "digest", str, where), where, "digest"),
                   _get(d, "action", str, where),
                   _match(_TIME, _get(d, "time", str, where), where, "time"))


@dataclass(frozen=True)
class IncidentRecord:
    incident_id: str
    keyring_id: str
    created: str
    member: str
    member_recipient_fpr: str
    member_signing_keyid: str | None
    epochs: tuple[int, ...]  # key epochs wrapped to the member, in any keyring version
    exposures: tuple[Exposure, ...]
    events: tuple[EventRef, ...]
    policy_version: int  # the keyring version that revoked the member
    new_epoch: int
    reencrypted: int  # objects moved to the new epoch
    admin: str
    signatures: tuple[tuple[str, str], ...] = ()

    def signed_dict(self) -> dict[str, Any]:
        return {
            "format": INCIDENT_FORMAT, "version": INCIDENT_VERSION, "id": self.incident_id,
            "keyring_id": self.keyring_id, "created": self.created,
            "member": {"name": self.member, "recipient_fpr": self.member_recipient_fpr,
                       "signing_keyid": self.member_signing_keyid},
            "epochs": list(self.epochs),
            "exposures": [e.to_dict() for e in self.exposures],
            "events": [e.to_dict() for e in self.events],
            "containment": {"policy_version": self.policy_version,
                            "new_epoch": self.new_epoch, "reencrypted": self.reencrypted},
            "admin": self.admin,
        }

    def canonical_bytes(self) -> bytes:
        return canonical(self.signed_dict())

    def to_bytes(self) -> bytes:
        return file_bytes(self.signed_dict(), self.signatures)

    def sign(self, key: SigningKeyPair) -> IncidentRecord:
        from dataclasses import replace

        return replace(self, signatures=add_signature(
            self.signatures, key, SIGN_LABEL + self.canonical_bytes()))

    def valid_signers(self, keys: Mapping[str, bytes]) -> list[str]:
        return valid_signers(self.signatures, keys, SIGN_LABEL + self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> IncidentRecord:
        doc, s = open_envelope(data, where, INCIDENT_FORMAT, _bad)
        if s.get("version") != INCIDENT_VERSION:
            raise _bad(where, f"version {s.get('version')!r} is not supported")
        extra = set(s) - {"format", "version", "id", "keyring_id", "created", "member",
                          "epochs", "exposures", "events", "containment", "admin"}
        if extra:
            raise _bad(where, f"unknown field(s) {', '.join(sorted(extra))}")
        member = _get(s, "member", dict, where)
        keyid = member.get("signing_keyid")
        if keyid is not None and not (isinstance(keyid, str) and _KEYID.fullmatch(keyid)):
            raise _bad(where, "member.signing_keyid must be null or 16 hex digits")
        epochs = _get(s, "epochs", list, where)
        if not all(isinstance(e, int) and not isinstance(e, bool) and e >= 1 for e in epochs):
            raise _bad(where, "epochs must be integers >= 1")
        cont = _get(s, "containment", dict, where)
        numbers = [_get(cont, k, int, where) for k in ("policy_version", "new_epoch", "reencrypted")]
        if numbers[0] < 1 or numbers[1] < 1 or numbers[2] < 0:
            raise _bad(where, "containment numbers out of range")
        signatures = signatures_of(doc, where, _bad)
        return cls(
            incident_id=_match(_ID, _get(s, "id", str, where), where, "id"),
            keyring_id=_match(_HEX32, _get(s, "keyring_id", str, where), where, "keyring_id"),
            created=_match(_TIME, _get(s, "created", str, where), where, "created"),
            member=_get(member, "name", str, where),
            member_recipient_fpr=_match(_KEYID, _get(member, "recipient_fpr", str, where),
                                        where, "member.recipient_fpr"),
            member_signing_keyid=keyid,
            epochs=tuple(epochs),
            exposures=tuple(Exposure.from_dict(e, f"{where} exposure")
                            for e in _get(s, "exposures", list, where)),
            events=tuple(EventRef.from_dict(e, f"{where} event")
                         for e in _get(s, "events", list, where)),
            policy_version=numbers[0], new_epoch=numbers[1], reencrypted=numbers[2],
            admin=_get(s, "admin", str, where),
            signatures=signatures,
        )
