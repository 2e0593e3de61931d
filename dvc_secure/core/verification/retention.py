"""Retention and erasure in verification (docs/erasure.md): pure, the date is an argument.

A dataset's newest sealed revision with ``delete_after`` before ``today`` must be erased
(its key domain shredded under a valid erasure record) unless a valid legal hold covers its
domain. Erased revisions are reported as erased, not as failures.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dvc_secure.core.records.erasure import ErasureRecord
from dvc_secure.core.records.hold import HoldRecord
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.verification.findings import Finding

OVERDUE = "retention-overdue"  # failure
ERASED = "erased"  # informational: the domain was shredded under a valid record
HELD = "retention-held"  # informational: overdue, but under legal hold
DUE_STATES = ("erased", "held", "overdue", "due", "kept")


@dataclass(frozen=True)
class RetentionItem:
    metafile: str
    rev: str
    domain: str | None
    delete_after: str | None
    state: str  # one of DUE_STATES
    detail: str


def _state(sc: Sidecar, today: dt.date, erasures: Mapping[str, ErasureRecord],
           holds: Mapping[str, HoldRecord], due_within: int) -> tuple[str, str]:
    domain = sc.access.domain
    if domain is not None and domain in erasures:
        return "erased", erasures[domain].describe()
    if sc.access.delete_after is None:
        return "kept", "no delete_after"
    limit = dt.date.fromisoformat(sc.access.delete_after)
    hold = holds.get(domain) if domain is not None else None
    if limit < today:
        if hold is not None and hold.active:
            return "held", (f"past its delete_after {limit} but under legal hold since "
                            f"{hold.created[:10]} by {hold.by} ({hold.reason})")
        return "overdue", f"delete_after {limit} has passed ({(today - limit).days} day(s) ago)"
    if (limit - today).days <= due_within:
        return "due", f"delete_after {limit} is in {(limit - today).days} day(s)"
    return "kept", f"delete_after {limit}"


def retention_items(newest: Iterable[tuple[str, Sidecar]], today: dt.date,
                    erasures: Mapping[str, ErasureRecord], holds: Mapping[str, HoldRecord],
                    due_within: int = 30) -> list[RetentionItem]:
    """One item per dataset: ``newest`` holds (revision, newest sealed sidecar)."""
    out = []
    for rev, sc in sorted(newest, key=lambda x: x[1].metafile):
        state, detail = _state(sc, today, erasures, holds, due_within)
        out.append(RetentionItem(sc.metafile, rev, sc.access.domain, sc.access.delete_after,
                                 state, detail))
    return out


def retention_findings(newest: Iterable[tuple[str, Sidecar]], sealed: Iterable[tuple[str, Sidecar]],
                       today: dt.date, erasures: Mapping[str, ErasureRecord],
                       holds: Mapping[str, HoldRecord]) -> tuple[list[Finding], list[Finding]]:
    """(failures, notices) for verify: overdue datasets fail; held ones and every erased
    revision are notices."""
    failures, notices = [], []
    for item in retention_items(newest, today, erasures, holds):
        if item.state == "overdue":
            domain = item.domain
            fix = (f"dvc-secure retention --apply (shreds key domain '{domain}'), or an admin "
                   f"places a legal hold: dvc-secure hold {domain} --reason ..."
                   if domain else "seal it into its own key domain (dvc-secure seal "
                   f"{item.metafile} --domain <name>), then dvc-secure retention --apply")
            failures.append(Finding(item.rev, item.metafile, OVERDUE,
                                    f"{item.metafile} is overdue for erasure: {item.detail}", fix))
        elif item.state == "held":
            notices.append(Finding(item.rev, item.metafile, HELD, item.detail,
                                   "nothing to do until the hold is released"))
    seen: set[tuple[str, str]] = set()
    for rev, sc in sealed:
        domain = sc.access.domain
        if domain is not None and domain in erasures and (rev, sc.metafile) not in seen:
            seen.add((rev, sc.metafile))
            notices.append(Finding(rev, sc.metafile, ERASED,
                                   f"{sc.metafile} (version {sc.version}) in key domain "
                                   f"'{domain}' was {erasures[domain].describe()}",
                                   "nothing to do: its objects are unreadable on purpose"))
    return failures, notices
