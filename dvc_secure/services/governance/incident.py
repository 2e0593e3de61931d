"""``dvc-secure incident MEMBER [--contain]``: for a breach notification, what a member
could read (key epochs wrapped to them in any trusted keyring version, and every sealed
dataset version under those epochs) and what they did read (their verified audit events);
``--contain`` revokes them, rotates the data key, re-encrypts current data and writes a
signed incident record (docs/spec/incident.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.adapters.git.history import SnapshotReader, open_repository
from dvc_secure.core.audit.model import AuditEvent
from dvc_secure.core.format.primitives import random_bytes
from dvc_secure.core.keys.keyring import Keyring, Member
from dvc_secure.core.records.incident import (
    EventRef,
    Exposure,
    IncidentRecord,
    record_relpath,
)
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.findings import Finding
from dvc_secure.errors import AccessDeniedError, DvcSecureError, KeyringError
from dvc_secure.services.governance.verified import blocking


@dataclass
class IncidentReport:
    member: str
    role: str  # role in the current keyring, or "removed"
    recipient_fpr: str
    signing_keyid: str | None
    epochs: list[int]
    exposures: list[Exposure] = field(default_factory=list)
    events: list[AuditEvent] = field(default_factory=list)
    events_error: str | None = None
    findings: list[Finding] = field(default_factory=list)
    record_path: Path | None = None
    record: IncidentRecord | None = None
    summary: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": {"name": self.member, "role": self.role,
                       "recipient_fpr": self.recipient_fpr, "signing_keyid": self.signing_keyid},
            "key_epochs": self.epochs,
            "could_read": [e.to_dict() for e in self.exposures],
            "did_read": [{"time": e.time, "action": e.action, "datasets": e.datasets,
                          "revision": e.revision, "objects": e.details.get("objects"),
                          "bytes": e.details.get("bytes"), "host": e.host,
                          "event": {"chain": e.chain, "seq": e.seq, "digest": e.digest}}
                         for e in self.events],
            "audit_error": self.events_error,
            "contained": self.record is not None,
            "record": str(self.record_path) if self.record_path else None,
            "summary": self.summary,
        }


def _rings(dvc_dir: Path) -> list[Keyring]:
    """The trusted workspace keyring first, then earlier trusted versions."""
    from dvc_secure.adapters.local.repo_keyring import load_keyring, trusted_history_keyrings

    current = load_keyring(dvc_dir)
    older = sorted((r for r in trusted_history_keyrings(dvc_dir)
                    if r.keyring_id == current.keyring_id and r.digest != current.digest),
                   key=lambda r: -r.policy_version)
    return [current, *older]


def _find(rings: list[Keyring], who: str) -> tuple[Member, bool]:
    for i, ring in enumerate(rings):
        for m in ring.members:
            if who in (m.name, m.recipient, m.signing_key, m.fingerprint, m.signing_keyid):
                return m, i == 0
    raise KeyringError(f"no member '{who}' in the keyring or its trusted history",
                       hint="list them with 'dvc-secure members' (name, recipient or key "
                       "fingerprint)")


def _held_epochs(rings: list[Keyring], recipient: str) -> list[int]:
    return sorted({e.number for ring in rings for e in ring.epochs
                   if any(s.recipient == recipient for s in e.stanzas)})


def exposures(root: Path, epochs: list[int]) -> tuple[list[Exposure], list[Finding]]:
    """Every sealed dataset version reachable from HEAD or a local branch whose outputs
    are encrypted under an epoch in ``epochs`` (HEAD must verify)."""
    from dvc_secure.services.current_revisions import current_tips
    from dvc_secure.services.history_check import verify_history

    report = verify_history(root, rev="HEAD", use_cache=False)
    problems = blocking(report.findings)
    if problems:
        return [], problems
    repo = open_repository(root)
    reader = report.reader if report.reader is not None else SnapshotReader(repo)
    held = set(epochs)
    found: dict[str, tuple[Sidecar, str]] = {}  # digest -> (sidecar, first commit)
    tips = current_tips(repo)
    for commit in reader.ancestry(tips) if tips else []:  # parents first
        for path, blob in reader.files_at(commit).items():
            if path.endswith(SIDECAR_SUFFIX):
                parsed = reader.parse_blob("sidecar", blob, path)
                if isinstance(parsed.value, Sidecar):
                    found.setdefault(parsed.value.digest, (parsed.value, str(commit.id)))
    out = []
    for sc, first in found.values():
        sealed = sorted({o.key_epoch for o in sc.outputs} & held)
        if sealed:
            out.append(Exposure(sc.metafile, sc.version, sc.access.classification,
                                tuple(sealed), sc.digest, first))
    return sorted(out, key=lambda e: (e.metafile, e.version)), []


def investigate(root: Path, who: str, remote: str | None = None) -> IncidentReport:
    from dvc_secure.services.audit_recorder import read_log

    rings = _rings(root / ".dvc")
    member, current = _find(rings, who)
    epochs = _held_epochs(rings, member.recipient)
    report = IncidentReport(member.name, member.role if current else "removed",
                            member.fingerprint, member.signing_keyid, epochs)
    report.exposures, report.findings = exposures(root, epochs)
    try:
        log = read_log(root, remote=remote)
    except DvcSecureError as exc:
        report.events_error = exc.message
        return report
    report.events = [ev for ev in log.view.events
                     if (member.signing_key and ev.actor_key == member.signing_key)
                     or (not member.signing_key and ev.actor_name == member.name)]
    return report


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def contain(root: Path, report: IncidentReport,
            progress: Callable[[int, int], None] | None = None,
            env: Mapping[str, str] | None = None, now: dt.datetime | None = None) -> IncidentReport:
    """Revoke the member with re-encryption (``services.access.revoke``), then write the
    incident record signed by the admin. Needs an admin identity."""
    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.adapters.local.repo_keyring import load_keyring
    from dvc_secure.services.access import revoke

    if report.role == "removed":
        raise AccessDeniedError(f"'{report.member}' is no longer a member: nothing to revoke",
                                hint="rotate with 'dvc-secure rotate --reencrypt' if keys of "
                                "their epochs may have leaked")
    dvc_dir = root / ".dvc"
    result = revoke(dvc_dir, member=report.member, reencrypt=True, progress=progress, env=env)
    ring = load_keyring(dvc_dir, env)
    identity = load_identity(env)
    admin = ring.member_for(identity)
    if identity.signing is None or admin is None:
        raise AccessDeniedError("the incident record must be signed by an admin",
                                hint="run with the admin identity that revoked the member")
    when = now or _now()
    reencrypted = getattr(result.reencrypted, "reencrypted", 0)
    record = IncidentRecord(
        incident_id=f"{when:%Y%m%dT%H%M%SZ}-{random_bytes(4).hex()}",
        keyring_id=ring.keyring_id, created=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
        member=report.member, member_recipient_fpr=report.recipient_fpr,
        member_signing_keyid=report.signing_keyid, epochs=tuple(report.epochs),
        exposures=tuple(report.exposures),
        events=tuple(EventRef(e.chain, e.seq, e.digest, e.action, e.time) for e in report.events),
        policy_version=result.policy_version, new_epoch=ring.current_epoch,
        reencrypted=int(reencrypted) if isinstance(reencrypted, int) else 0,
        admin=admin.name).sign(identity.signing)
    path = dvc_dir / record_relpath(record.incident_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(record.to_bytes())
    report.record, report.record_path = record, path
    report.summary = list(result.summary)
    return report


@dataclass(frozen=True)
class RecordCheck:
    path: Path
    record: IncidentRecord | None
    signers: tuple[str, ...]  # admin names with a valid signature
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_records(root: Path) -> list[RecordCheck]:
    """Every incident record of the working tree, parsed and checked: at least one valid
    signature by an admin of the trusted keyring or of an earlier trusted version, the
    right keyring id, and a file name matching its id."""
    from dvc_secure.core.keys.identity import decode_signing_key, key_fingerprint
    from dvc_secure.core.records.incident import INCIDENT_DIR, IncidentRecord
    from dvc_secure.errors import IncidentRecordError

    rings = _rings(root / ".dvc")
    admins: dict[str, tuple[bytes, str]] = {}
    for ring in rings:
        for m in ring.members:
            if m.role == "admin" and m.signing_key:
                public = decode_signing_key(m.signing_key)
                admins.setdefault(key_fingerprint(public), (public, m.name))
    out = []
    for path in sorted((root / ".dvc" / INCIDENT_DIR).glob("*.json")):
        try:
            record = IncidentRecord.from_bytes(path.read_bytes(), path.name)
        except IncidentRecordError as exc:
            out.append(RecordCheck(path, None, (), exc.message))
            continue
        good = record.valid_signers({k: v[0] for k, v in admins.items()})
        names = tuple(admins[k][1] for k in good)
        problem = None
        if not good:
            problem = "not validly signed by an admin of the trusted keyring"
        elif record.keyring_id != rings[0].keyring_id:
            problem = "written for another keyring"
        elif path.stem != record.incident_id:
            problem = f"file name does not match its id {record.incident_id}"
        out.append(RecordCheck(path, record, names, problem))
    return out
