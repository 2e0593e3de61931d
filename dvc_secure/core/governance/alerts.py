"""Alert rules over the verified audit trail (pure; docs/governance.md, "audit alerts").

Rules, each over events in time order with the history before them as baseline:

- ``first-sensitive-pull``: a member pulls a dataset classified ``confidential`` or
  ``restricted`` (configurable) that they never pulled before;
- ``volume-spike``: a pull moves more than ``factor`` times the median of the member's
  own earlier pulls (needs ``min_history`` earlier pulls and at least ``min_bytes``);
- ``revoked-or-expired-key``: a pull or push by a member after a ``revoke`` event named
  them, or a ``rotate`` event dropped them (and no later ``grant`` did), or after the last
  day of their grant;
- ``outside-window``: a push, pull or seal outside the configured days and hours.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dvc_secure.core.audit.model import AuditEvent, parse_time
from dvc_secure.core.governance.ocsf import changed_member
from dvc_secure.errors import ConfigurationError

ALERTS_RELPATH = "secure/alerts.json"  # below .dvc/
ALERTS_FORMAT = "dvc-secure-alerts"
FIRST_PULL, VOLUME, REVOKED_KEY, WINDOW = (
    "first-sensitive-pull", "volume-spike", "revoked-or-expired-key", "outside-window")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
_OFFSET = re.compile(r"([+-])([01]\d|2[0-3]):([0-5]\d)")
_DROPPED = re.compile(r"dropped '([^']+)'")


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: dt.time
    end: dt.time  # exclusive; end <= start means the window spans midnight
    offset: dt.timezone

    def contains(self, when: dt.datetime) -> bool:
        local = when.astimezone(self.offset)
        t = local.time().replace(tzinfo=None)
        if self.start < self.end:
            inside_hours = self.start <= t < self.end
        else:
            inside_hours = t >= self.start or t < self.end
        return local.weekday() in self.days and inside_hours


@dataclass(frozen=True)
class AlertConfig:
    sensitive: frozenset[str] = frozenset({"confidential", "restricted"})
    factor: float = 5.0
    min_history: int = 3
    min_bytes: int = 1 << 20
    window: Window | None = None


@dataclass(frozen=True)
class MemberStatus:
    """A member of the trusted keyring: the last day of their grant, if any."""

    name: str
    expires: str | None = None


@dataclass(frozen=True)
class Alert:
    rule: str
    time: str
    actor: str
    keyid: str
    action: str
    datasets: tuple[str, ...]
    message: str
    chain: str
    seq: int
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "time": self.time, "actor": self.actor, "keyid": self.keyid,
                "action": self.action, "datasets": list(self.datasets),
                "message": self.message,
                "event": {"chain": self.chain, "seq": self.seq, "digest": self.digest}}


def _strip(target: str) -> str:
    t = target.strip().rstrip("/")
    if t.startswith("./"):
        t = t[2:]
    return t[:-4] if t.endswith(".dvc") else t


def covered(targets: Sequence[str], metafiles: Iterable[str]) -> list[str]:
    """The metafiles a command's targets named ("all": every one)."""
    mfs = list(metafiles)
    if not targets or "all" in targets:
        return sorted(mfs)
    out = set()
    for mf in mfs:
        m = _strip(mf)
        for t in map(_strip, targets):
            if t == m or t.startswith(m + "/") or m.startswith(t + "/"):
                out.add(mf)
    return sorted(out)


def dropped_members(event: AuditEvent) -> list[str]:
    """Members a ``rotate`` event says it dropped (their grant had expired)."""
    summary = event.details.get("summary")
    lines = summary if isinstance(summary, list) else []
    return [m.group(1) for line in lines if isinstance(line, str)
            for m in [_DROPPED.match(line)] if m]


def _bytes(event: AuditEvent) -> int | None:
    b = event.details.get("bytes")
    return b if isinstance(b, int) and not isinstance(b, bool) else None


@dataclass
class _State:
    pulled: set[tuple[str, str]] = field(default_factory=set)
    volumes: dict[str, list[int]] = field(default_factory=dict)
    last_change: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (action, time)


def evaluate(events: Sequence[AuditEvent], classification: Mapping[str, str],
             members: Mapping[str, MemberStatus], config: AlertConfig,
             since: str | None = None) -> list[Alert]:
    """Alerts for ``events`` (verified, any order) at or after ``since``; earlier events
    only build each member's baseline. ``members``: signing key -> status in the keyring."""
    st = _State()
    alerts: list[Alert] = []
    for ev in sorted(events, key=lambda e: (e.time, e.chain, e.seq)):
        report = since is None or ev.time >= since
        found: list[tuple[str, str]] = []
        when = parse_time(ev.time)
        if ev.action in ("grant", "revoke"):
            name = changed_member(ev)
            if name:
                st.last_change[name] = (ev.action, ev.time)
        elif ev.action == "rotate":  # "dropped 'bob' (grant expired)": as good as a revoke
            for name in dropped_members(ev):
                st.last_change[name] = ("revoke", ev.time)
        if ev.action in ("push", "pull"):
            change = st.last_change.get(ev.actor_name)
            if change is not None and change[0] == "revoke":
                found.append((REVOKED_KEY, f"{ev.actor_name} used a key revoked at {change[1]}"))
            status = members.get(ev.actor_key)
            if status is not None and status.expires and when.date().isoformat() > status.expires:
                found.append((REVOKED_KEY, f"{ev.actor_name}'s grant ended on {status.expires}"))
        if ev.action == "pull":
            sensitive = [mf for mf in covered(ev.datasets, classification)
                         if classification[mf] in config.sensitive]
            new = [mf for mf in sensitive if (ev.actor_key, mf) not in st.pulled]
            if new:
                found.append((FIRST_PULL, f"first pull of {', '.join(f'{m} ({classification[m]})' for m in new)} "
                                          f"by {ev.actor_name}"))
            st.pulled.update((ev.actor_key, mf) for mf in sensitive)
            size = _bytes(ev)
            if size is not None:
                history = st.volumes.setdefault(ev.actor_key, [])
                if len(history) >= config.min_history and size >= config.min_bytes:
                    median = statistics.median(history)
                    if size > config.factor * median:
                        found.append((VOLUME, f"{ev.actor_name} pulled {size} bytes, "
                                              f"{size / max(median, 1):.0f}x their median of "
                                              f"{int(median)} over {len(history)} pull(s)"))
                history.append(size)
        if ev.action in ("push", "pull", "seal") and config.window is not None \
                and not config.window.contains(when):
            found.append((WINDOW, f"{ev.action} at {ev.time} is outside the allowed window"))
        if report:
            alerts += [Alert(rule, ev.time, ev.actor_name, ev.actor_keyid, ev.action,
                             tuple(ev.datasets), msg, ev.chain, ev.seq, ev.digest)
                       for rule, msg in found]
    return alerts


def _fail(where: str, what: str) -> ConfigurationError:
    return ConfigurationError(f"{where}: {what}", hint="see docs/governance.md (alerts.json)")


def parse_config(data: bytes, where: str) -> AlertConfig:
    """``{"format": "dvc-secure-alerts", "version": 1, "sensitive": [...], "volume":
    {"factor", "min_history", "min_bytes"}, "window": {"days", "start", "end",
    "utc_offset"}}``; every member but format and version optional."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise _fail(where, "not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != ALERTS_FORMAT or doc.get("version") != 1:
        raise _fail(where, f"expected format '{ALERTS_FORMAT}', version 1")
    base = AlertConfig()
    sensitive = doc.get("sensitive", sorted(base.sensitive))
    if not isinstance(sensitive, list) or not all(isinstance(s, str) for s in sensitive):
        raise _fail(where, "'sensitive' must be a list of classifications")
    volume = doc.get("volume", {})
    if not isinstance(volume, dict):
        raise _fail(where, "'volume' must be an object")
    nums = {}
    for key, low in (("factor", 1), ("min_history", 1), ("min_bytes", 0)):
        value = volume.get(key, getattr(base, key))
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < low:
            raise _fail(where, f"volume.{key} must be a number >= {low}")
        nums[key] = value
    window = None
    if doc.get("window") is not None:
        window = _window(doc["window"], where)
    return AlertConfig(frozenset(sensitive), float(nums["factor"]), int(nums["min_history"]),
                       int(nums["min_bytes"]), window)


def _window(w: Any, where: str) -> Window:
    if not isinstance(w, dict):
        raise _fail(where, "'window' must be an object")
    days = w.get("days", list(DAYS[:5]))
    if not isinstance(days, list) or not days or not all(d in DAYS for d in days):
        raise _fail(where, f"window.days must list some of {', '.join(DAYS)}")
    times = []
    for key in ("start", "end"):
        m = _HHMM.fullmatch(str(w.get(key, "")))
        if m is None:
            raise _fail(where, f"window.{key} must be HH:MM")
        times.append(dt.time(int(m.group(1)), int(m.group(2))))
    off = _OFFSET.fullmatch(str(w.get("utc_offset", "+00:00")))
    if off is None:
        raise _fail(where, "window.utc_offset must be +HH:MM or -HH:MM")
    sign = -1 if off.group(1) == "-" else 1
    delta = dt.timedelta(hours=int(off.group(2)), minutes=int(off.group(3))) * sign
    return Window(frozenset(DAYS.index(d) for d in days), times[0], times[1],
                  dt.timezone(delta))
