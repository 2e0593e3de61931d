"""Verified audit events as OCSF 1.1 events (pure): one JSON object per event, for a SIEM.

Mapping (docs/governance.md, "audit export"):

| action | OCSF class | activity |
|---|---|---|
| push | File System Activity (1001) | Create (1) |
| pull | File System Activity (1001) | Read (2) |
| seal | File System Activity (1001) | Set Attributes (6) |
| verify | File System Activity (1001) | Get Attributes (8) |
| reencrypt | File System Activity (1001) | Encrypt (10) |
| grant | Account Change (3001) | Attach Policy (7) |
| revoke | Account Change (3001) | Detach Policy (8) |
| rotate, approve, threshold, incident | Account Change (3001) | Other (99) |
| anything else | File System Activity (1001) | Other (99) |

Only what the signed event says goes out: who (name, key fingerprint), what, which
datasets, when, from which client, the outcome, and where the event sits in its chain
(chain id, seq, digest) -- never dataset content, keys or the event's ciphertext.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dvc_secure.core.audit.model import AuditEvent, Signer, parse_time

OCSF_VERSION = "1.1.0"
FILE_ACTIVITY, ACCOUNT_CHANGE = 1001, 3001
CATEGORY = {FILE_ACTIVITY: 1, ACCOUNT_CHANGE: 3}  # System Activity, Identity & Access Mgmt
CLASS_NAME = {FILE_ACTIVITY: "File System Activity", ACCOUNT_CHANGE: "Account Change"}
CATEGORY_NAME = {1: "System Activity", 3: "Identity & Access Management"}
MAPPING: dict[str, tuple[int, int, str]] = {
    "push": (FILE_ACTIVITY, 1, "Create"),
    "pull": (FILE_ACTIVITY, 2, "Read"),
    "seal": (FILE_ACTIVITY, 6, "Set Attributes"),
    "verify": (FILE_ACTIVITY, 8, "Get Attributes"),
    "reencrypt": (FILE_ACTIVITY, 10, "Encrypt"),
    "grant": (ACCOUNT_CHANGE, 7, "Attach Policy"),
    "revoke": (ACCOUNT_CHANGE, 8, "Detach Policy"),
    "rotate": (ACCOUNT_CHANGE, 99, "Other"),
    "approve": (ACCOUNT_CHANGE, 99, "Other"),
    "threshold": (ACCOUNT_CHANGE, 99, "Other"),
    "incident": (ACCOUNT_CHANGE, 99, "Other"),  # `dvc-secure incident --contain`
}
_QUOTED = re.compile(r"'([^']+)'")


def time_ms(event: AuditEvent) -> int:
    return int(parse_time(event.time).timestamp()) * 1000


def failed(event: AuditEvent) -> bool:
    """The event records a failure (a push/pull with failed objects, a verify not ok)."""
    d = event.details
    f = d.get("failed")
    return (isinstance(f, int) and not isinstance(f, bool) and f > 0) or d.get("ok") is False


def changed_member(event: AuditEvent) -> str | None:
    """The member an access change was about: ``details.member`` when recorded, else the
    first quoted name of its summary ("revoked 'bob' ...")."""
    member = event.details.get("member")
    if isinstance(member, str) and member:
        return member
    summary = event.details.get("summary")
    if isinstance(summary, list):
        for line in summary:
            m = _QUOTED.search(str(line)) if isinstance(line, str) else None
            if m:
                return m.group(1)
    return None


def to_ocsf(event: AuditEvent, signer: Signer | None, product_version: str,
            remote: str | None = None) -> dict[str, Any]:
    class_uid, activity_id, activity = MAPPING.get(event.action, (FILE_ACTIVITY, 99, "Other"))
    bad = failed(event)
    actor: dict[str, Any] = {"user": {"name": event.actor_name, "uid": event.actor_keyid,
                                      "type": "User", "type_id": 1}}
    if signer is not None:
        actor["user"]["groups"] = [{"name": signer.role}]
        actor["user"]["account"] = {"type": "Other", "type_id": 99,
                                    "name": "current member" if signer.current
                                    else "former member"}
    out: dict[str, Any] = {
        "class_uid": class_uid,
        "class_name": CLASS_NAME[class_uid],
        "category_uid": CATEGORY[class_uid],
        "category_name": CATEGORY_NAME[CATEGORY[class_uid]],
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": class_uid * 100 + activity_id,
        "type_name": f"{CLASS_NAME[class_uid]}: {activity}",
        "time": time_ms(event),
        "severity_id": 1,
        "severity": "Informational",
        "status_id": 2 if bad else 1,
        "status": "Failure" if bad else "Success",
        "message": f"{event.actor_name} {event.action} {', '.join(event.datasets) or '-'}",
        "actor": actor,
        "device": {"hostname": event.host, "uid": event.clone, "type_id": 0, "type": "Unknown"},
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "dvc-secure", "vendor_name": "dvc-secure",
                        "version": product_version},
            "uid": event.digest,
            "correlation_uid": event.chain,
            "sequence": event.seq,
            "log_name": event.name,
            "original_time": event.time,
            "labels": ["dvc-secure-audit", f"action:{event.action}"],
        },
        "unmapped": {"dvc_secure": {"action": event.action, "datasets": list(event.datasets),
                                    "revision": event.revision,
                                    "details": _safe_details(event.details),
                                    "prev": event.prev}},
    }
    if remote:
        out["metadata"]["log_provider"] = remote
    if class_uid == FILE_ACTIVITY:
        out["file"] = {"name": event.datasets[0] if event.datasets else "-",
                       "type_id": 99, "type": "Other"}
        out["resources"] = [{"name": d, "type": "dataset"} for d in event.datasets]
    else:
        out["user"] = {"name": changed_member(event) or "unknown"}
        out["resources"] = [{"name": ".dvc/secure/keyring.json", "type": "keyring"}]
    return out


def _safe_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """Event details minus the free-text command line (it may name local paths)."""
    return {k: v for k, v in details.items() if k != "command"}
