"""``dvc-secure audit export`` and ``audit alerts``: the verified audit trail as OCSF
events for a SIEM, and alert rules over it. Reads the trail only (recording is
``services/audit_recorder.py``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.core.audit.model import AuditEvent, Finding
from dvc_secure.core.governance.alerts import (
    ALERTS_RELPATH,
    Alert,
    AlertConfig,
    MemberStatus,
    evaluate,
    parse_config,
)
from dvc_secure.core.governance.ocsf import to_ocsf
from dvc_secure.core.verification.findings import Finding as VerifyFinding
from dvc_secure.services.audit_recorder import read_log
from dvc_secure.services.governance.verified import verified_revision


@dataclass
class ExportBatch:
    lines: list[dict[str, Any]]
    findings: list[Finding]


def export(root: Path, product_version: str, remote: str | None = None,
           since: str | None = None,
           seen: set[tuple[str, int, str]] | None = None) -> ExportBatch:
    """OCSF objects for every verified event at or after ``since`` that is not in ``seen``
    (which is updated: the ``--follow`` loop passes the same set every poll)."""
    log = read_log(root, remote=remote)
    lines = []
    for ev in log.view.events:
        key = (ev.chain, ev.seq, ev.digest)
        if (since is not None and ev.time < since) or (seen is not None and key in seen):
            continue
        if seen is not None:
            seen.add(key)
        lines.append(to_ocsf(ev, log.signers.get(ev.actor_key), product_version, remote))
    return ExportBatch(lines, list(log.view.findings))


def follow(root: Path, product_version: str, remote: str | None, since: str | None,
           interval: float, polls: int, sleep: Callable[[float], None]) -> Iterator[ExportBatch]:
    """Poll the trail ``polls`` times (0: until interrupted), ``interval`` seconds apart,
    yielding only events not yielded before. Memory: one key per event seen."""
    seen: set[tuple[str, int, str]] = set()
    n = 0
    while True:
        yield export(root, product_version, remote, since, seen)
        n += 1
        if polls and n >= polls:
            return
        sleep(interval)


@dataclass
class AlertReport:
    alerts: list[Alert] = field(default_factory=list)
    log_findings: list[Finding] = field(default_factory=list)
    revision_findings: list[VerifyFinding] = field(default_factory=list)
    events: int = 0


def load_alert_config(root: Path, path: Path | None = None) -> AlertConfig:
    target = path or root / ".dvc" / ALERTS_RELPATH
    try:
        data = target.read_bytes()
    except FileNotFoundError:
        if path is not None:
            raise
        return AlertConfig()
    return parse_config(data, str(target))


def alerts(root: Path, remote: str | None = None, since: str | None = None,
           config_path: Path | None = None) -> AlertReport:
    """Evaluate the rules of core/governance/alerts.py over the verified trail, with the
    classifications of the verified sidecars at HEAD and the trusted keyring."""
    from dvc_secure.adapters.local.repo_keyring import load_keyring

    config = load_alert_config(root, config_path)
    checked = verified_revision(root, None)
    report = AlertReport(revision_findings=checked.findings)
    if not checked.ok:
        return report
    classification = {mf: sc.access.classification for mf, sc in checked.sidecars.items()}
    ring = load_keyring(root / ".dvc")
    members = {m.signing_key: MemberStatus(m.name, m.expires)
               for m in ring.members if m.signing_key}
    log = read_log(root, remote=remote)
    events: list[AuditEvent] = list(log.view.events)
    report.events = len(events)
    report.log_findings = list(log.view.findings)
    report.alerts = evaluate(events, classification, members, config, since)
    return report
