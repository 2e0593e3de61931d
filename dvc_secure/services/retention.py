"""``dvc-secure retention`` and the retention part of ``verify`` (docs/erasure.md).

Erasure records and holds are read from the workspace (``.dvc/secure/erasures``,
``.dvc/secure/holds``) and used only when enough admins of the keyring signed them; a
forged or edited one is reported and ignored, so it can neither excuse an overdue dataset
nor stand in for erased objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.local.repo_keyring import load_keyring
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.records.erasure import RECORD_DIR, ErasureRecord
from dvc_secure.core.records.hold import HOLD_DIR, HoldRecord
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.verification.findings import Finding
from dvc_secure.core.verification.retention import (
    ERASED,
    RetentionItem,
    retention_findings,
    retention_items,
)
from dvc_secure.errors import DvcSecureError

INVALID_RECORD = "invalid-erasure-or-hold-record"
# remote/deep findings (services/remote_check.py) a valid erasure record stands in for: the
# objects are gone or unreadable on purpose. Signature and chain findings stay.
STOOD_IN = frozenset({"remote-object-missing", "remote-object-size-mismatch",
                      "remote-object-corrupted", "deep-object-failed", "deep-content-mismatch"})


@dataclass
class Records:
    erasures: dict[str, ErasureRecord] = field(default_factory=dict)
    holds: dict[str, HoldRecord] = field(default_factory=dict)
    invalid: list[str] = field(default_factory=list)  # why a file was ignored


def load_records(root: Path, ring: Keyring | None = None) -> Records:
    out = Records()
    if ring is None:
        try:
            ring = load_keyring(root / ".dvc")
        except DvcSecureError:
            return out
    for folder, cls, into, threshold in (
            (RECORD_DIR, ErasureRecord, out.erasures, ring.threshold),
            (HOLD_DIR, HoldRecord, out.holds, 1)):
        base = root / folder
        for path in sorted(base.glob("*.json")) if base.is_dir() else []:
            where = f"{folder}/{path.name}"
            try:
                record = cls.from_bytes(path.read_bytes(), where)  # type: ignore[attr-defined]
            except (OSError, DvcSecureError) as exc:
                out.invalid.append(str(getattr(exc, "message", exc)))
                continue
            problems = record.problems(ring.keyring_id, ring.admin_keys(), threshold,
                                       path.stem, where)
            if problems:
                out.invalid.extend(problems)
            else:
                into[record.domain] = record  # type: ignore[assignment]
    return out


def active_holds(root: Path, ring: Keyring) -> dict[str, str]:
    """Key domain -> a line about its valid, active legal hold (the inventory's column)."""
    return {d: f"legal hold since {h.created[:10]} by {h.by}: {h.reason}"
            for d, h in load_records(root, ring).holds.items() if h.active}


def newest_per_dataset(sealed: Iterable[tuple[str, Sidecar]]) -> list[tuple[str, Sidecar]]:
    best: dict[str, tuple[str, Sidecar]] = {}
    for rev, sc in sealed:
        if sc.metafile not in best or sc.version > best[sc.metafile][1].version:
            best[sc.metafile] = (rev, sc)
    return list(best.values())


def verify_retention(root: Path, sealed: list[tuple[str, Sidecar]], today: dt.date,
                     findings: list[Finding], notices: list[Finding], remote: bool = False) -> None:
    """Add retention failures and erasure notices to a verify report, and turn the remote
    findings about erased datasets into notices (a valid erasure record stands in for them)."""
    if not (root / RECORD_DIR).is_dir() and not (root / HOLD_DIR).is_dir() and not any(
            sc.access.delete_after or sc.access.domain for _r, sc in sealed):
        return
    records = load_records(root)
    fail, info = retention_findings(newest_per_dataset(sealed), sealed, today,
                                    records.erasures, records.holds)
    erased = {sc.metafile for _r, sc in sealed
              if sc.access.domain is not None and sc.access.domain in records.erasures}
    kept = [f for f in findings if f.code not in STOOD_IN or not any(
        f.dataset == m or f.dataset.startswith(m + ":") for m in erased)]
    del findings[:]
    findings.extend(kept + fail)
    notices.extend(info)
    if remote:
        from dvc_secure.services.erasure import domain_key_findings

        missing, unchecked = domain_key_findings(root, sealed, set(records.erasures))
        findings.extend(missing)
        notices.extend(unchecked)
    for why in records.invalid:
        findings.append(Finding("workspace", ".dvc/secure", INVALID_RECORD, why,
                                "restore the record from git history; an admin re-issues it"))


def retention_status(root: Path, as_of: dt.date, due_within: int = 30) -> tuple[list[RetentionItem], Records]:
    from dvc_secure.services.current_revisions import current_sidecars

    records = load_records(root)
    sealed = [("HEAD", sc) for sc in current_sidecars(root)]
    items = retention_items(newest_per_dataset(sealed), as_of, records.erasures, records.holds,
                            due_within)
    return items, records


@dataclass(frozen=True)
class ApplyResult:
    shredded: list[str]  # domains
    skipped: list[tuple[str, str]]  # (metafile, why)
    record_paths: list[str]


def apply_retention(root: Path, as_of: dt.date, progress: object = None) -> ApplyResult:
    """Shred the key domain of every overdue dataset that is not on hold."""
    from dvc_secure.services.erasure import shred

    items, _records = retention_status(root, as_of)
    shredded: list[str] = []
    skipped: list[tuple[str, str]] = []
    paths: list[str] = []
    for item in items:
        if item.state == "held":
            skipped.append((item.metafile, item.detail))
        if item.state != "overdue":
            continue
        if item.domain is None:
            skipped.append((item.metafile, "in the repository's default key domain: seal it "
                            "into its own domain first (dvc-secure seal --domain)"))
            continue
        if item.domain in shredded:
            continue
        result = shred(root, item.domain, f"retention: delete_after {item.delete_after} passed "
                       f"(as of {as_of})", progress=progress)  # type: ignore[arg-type]
        shredded.append(item.domain)
        paths.append(result.record_path)
    return ApplyResult(shredded, skipped, paths)


__all__ = ["ERASED", "apply_retention", "load_records", "retention_status", "verify_retention"]
