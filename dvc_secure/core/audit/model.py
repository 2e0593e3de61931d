"""Audit events and the pure chain verifier (docs/spec/audit-log.md). No I/O, no clock.

One chain per (identity, clone). Each event names its predecessor by SHA-256 of its
canonical bytes and the heads of the other chains its writer knew (``seen``), and is
signed with the actor's Ed25519 key. The verifier turns a set of stored events, the
signers the keyring allows and this clone's checkpoints into findings.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dvc_secure.core.format.primitives import SigningKeyPair, ed25519_verify
from dvc_secure.core.keys.identity import decode_signing_key, encode_signing_key, key_fingerprint
from dvc_secure.errors import AuditLogError, IdentityError

EVENT_FORMAT = "dvc-secure-audit-event"
EVENT_VERSION = 1
SIGN_LABEL = b"dvc-secure/v1/audit-event-signature\x00"
ACTIONS = ("push", "pull", "seal", "grant", "revoke", "rotate", "verify")
MAX_DATASETS = 1000
MAX_SIGNED_LEN = 32 * 1024
STORAGE_PREFIX = "dvc-secure/audit/v1"  # dvc-secure/ holds the plugin's own files

_HEX32 = re.compile(r"[0-9a-f]{32}")
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ACTION = re.compile(r"[a-z][a-z0-9-]{0,31}")
_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_NAME = re.compile(r"(?:^|/)dvc-secure/audit/v1/([0-9a-f]{32})/(\d{10})\.evt$")
_SIGNED_KEYS = {"format", "version", "chain", "seq", "prev", "time", "actor", "client",
                "action", "datasets", "revision", "details", "seen"}

# finding kinds
EDITED, GAP, REORDERED, TRUNCATED, UNKNOWN_SIGNER, FORKED, UNREADABLE = (
    "edited", "gap", "reordered", "truncated", "unknown-signer", "forked", "unreadable")


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False).encode()


def storage_name(chain: str, seq: int) -> str:
    """Where event ``seq`` of ``chain`` lives, relative to the secure remote's root."""
    return f"{STORAGE_PREFIX}/{chain}/{seq:010d}.evt"


def parse_storage_name(path: str) -> tuple[str, int] | None:
    """(chain, seq) of a stored event path, None for anything else."""
    m = _NAME.search(path)
    if m is None or int(m.group(2)) < 1:
        return None
    return m.group(1), int(m.group(2))


def parse_time(text: str) -> dt.datetime:
    if not _TIME.fullmatch(text):
        raise ValueError(f"time {text!r} is not YYYY-MM-DDTHH:MM:SSZ")
    # the fields by position (what strptime with this format reads after the fullmatch
    # above, minus its import and format compilation); datetime() checks the ranges
    return dt.datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                       int(text[14:16]), int(text[17:19]), tzinfo=dt.timezone.utc)


def _fail(msg: str) -> AuditLogError:
    return AuditLogError(f"audit event: {msg}")


def _need(d: Mapping[str, Any], key: str, typ: type | tuple[type, ...]) -> Any:
    if key not in d:
        raise _fail(f"missing '{key}'")
    value = d[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise _fail(f"'{key}' has the wrong type")
    return value


def _is_small_json(value: Any, depth: int = 0) -> bool:
    if depth > 3:
        return False
    if value is None or isinstance(value, (str, bool, int)):
        return not isinstance(value, int) or isinstance(value, bool) or abs(value) < 1 << 53
    if isinstance(value, list):
        return all(_is_small_json(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_small_json(v, depth + 1) for k, v in value.items())
    return False  # floats are not canonical across implementations


@dataclass
class AuditEvent:
    """One signed event (the ``signed`` part and its signature); unknown fields survive."""

    chain: str
    seq: int
    prev: str | None
    time: str
    actor: dict[str, Any]
    client: dict[str, Any]
    action: str
    datasets: list[str] = field(default_factory=list)
    revision: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    seen: dict[str, tuple[int, str]] = field(default_factory=dict)
    signature: str = ""
    unknown: dict[str, Any] = field(default_factory=dict)

    # --- views ------------------------------------------------------------------------

    @property
    def actor_name(self) -> str:
        return str(self.actor.get("name", ""))

    @property
    def actor_key(self) -> str:
        return str(self.actor.get("key", ""))

    @property
    def actor_keyid(self) -> str:
        return key_fingerprint(decode_signing_key(self.actor_key))

    @property
    def clone(self) -> str:
        return str(self.client.get("clone", ""))

    @property
    def host(self) -> str:
        return str(self.client.get("host", ""))

    @property
    def name(self) -> str:
        return storage_name(self.chain, self.seq)

    # --- bytes --------------------------------------------------------------------------

    def signed_part(self) -> dict[str, Any]:
        return {
            **self.unknown,
            "format": EVENT_FORMAT,
            "version": EVENT_VERSION,
            "chain": self.chain,
            "seq": self.seq,
            "prev": self.prev,
            "time": self.time,
            "actor": dict(self.actor),
            "client": dict(self.client),
            "action": self.action,
            "datasets": list(self.datasets),
            "revision": self.revision,
            "details": dict(self.details),
            "seen": {c: [s, h] for c, (s, h) in sorted(self.seen.items())},
        }

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.signed_part())

    @property
    def digest(self) -> str:
        """SHA-256 of the canonical bytes: what the next event's ``prev`` names."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def sign(self, signer: SigningKeyPair) -> None:
        if encode_signing_key(signer.public) != self.actor_key:
            raise _fail("the signing key is not the actor's key")
        self.signature = base64.b64encode(signer.sign(SIGN_LABEL + self.canonical_bytes())).decode()

    def signature_ok(self, public: bytes) -> bool:
        try:
            sig = base64.b64decode(self.signature, validate=True)
        except ValueError:
            return False
        return ed25519_verify(public, sig, SIGN_LABEL + self.canonical_bytes())

    def to_bytes(self) -> bytes:
        """The stored document: canonical JSON of {signed, signature}."""
        return canonical_json({"signed": self.signed_part(), "signature": self.signature})

    @classmethod
    def from_bytes(cls, data: bytes) -> AuditEvent:
        """Parse and validate every field (MUST-reject rules of the spec, §3)."""
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _fail("not UTF-8 JSON") from None
        if not isinstance(doc, dict) or set(doc) != {"signed", "signature"}:
            raise _fail("top level must be exactly {'signed', 'signature'}")
        s = doc["signed"]
        if not isinstance(s, dict):
            raise _fail("'signed' must be an object")
        sig = doc["signature"]
        try:
            raw_sig = base64.b64decode(sig, validate=True) if isinstance(sig, str) else b""
        except ValueError:
            raw_sig = b""
        if len(raw_sig) != 64 or base64.b64encode(raw_sig).decode() != sig:
            raise _fail("'signature' must be the canonical base64 of 64 bytes")
        if s.get("format") != EVENT_FORMAT:
            raise _fail(f"'format' is not '{EVENT_FORMAT}'")
        if s.get("version") != EVENT_VERSION:
            raise AuditLogError(f"audit event version {s.get('version')!r} is not supported",
                                hint="upgrade dvc-secure")
        chain = _need(s, "chain", str)
        if not _HEX32.fullmatch(chain):
            raise _fail("'chain' must be 32 lowercase hex digits")
        seq = _need(s, "seq", int)
        if not 1 <= seq < 10**10:
            raise _fail("'seq' out of range")
        prev = s.get("prev", "missing")
        if seq == 1 and prev is not None:
            raise _fail("'prev' must be null for seq 1")
        if seq > 1 and not (isinstance(prev, str) and _HEX64.fullmatch(prev)):
            raise _fail("'prev' must be 64 lowercase hex digits after seq 1")
        time = _need(s, "time", str)
        try:
            parse_time(time)
        except ValueError as exc:
            raise _fail(str(exc)) from None
        actor = _need(s, "actor", dict)
        if not isinstance(actor.get("name"), str) or not isinstance(actor.get("key"), str):
            raise _fail("'actor' needs string 'name' and 'key'")
        try:
            decode_signing_key(actor["key"])
        except IdentityError:
            raise _fail("'actor.key' is not a dvc-secure signing key") from None
        client = _need(s, "client", dict)
        if not isinstance(client.get("host"), str) or not (
                isinstance(client.get("clone"), str) and _HEX32.fullmatch(client["clone"])):
            raise _fail("'client' needs a string 'host' and a 32-hex 'clone'")
        action = _need(s, "action", str)
        if not _ACTION.fullmatch(action):
            raise _fail("'action' must match [a-z][a-z0-9-]{0,31}")
        datasets = _need(s, "datasets", list)
        if len(datasets) > MAX_DATASETS or not all(isinstance(d, str) for d in datasets):
            raise _fail("'datasets' must be a list of at most 1000 strings")
        revision = s.get("revision", "missing")
        if revision is not None and not (isinstance(revision, str) and
                                         re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", revision)):
            raise _fail("'revision' must be null or a full git commit id")
        details = _need(s, "details", dict)
        if not _is_small_json(details):
            raise _fail("'details' must be small JSON without floats (depth <= 3)")
        seen_raw = _need(s, "seen", dict)
        seen: dict[str, tuple[int, str]] = {}
        for c, head in seen_raw.items():
            if not (_HEX32.fullmatch(c) and isinstance(head, list) and len(head) == 2
                    and isinstance(head[0], int) and not isinstance(head[0], bool)
                    and head[0] >= 1 and isinstance(head[1], str) and _HEX64.fullmatch(head[1])):
                raise _fail("'seen' must map chain ids to [seq >= 1, 64-hex digest]")
            if c == chain:
                raise _fail("'seen' must not name the event's own chain")
            seen[c] = (head[0], head[1])
        event = cls(chain=chain, seq=seq, prev=prev, time=time, actor=actor, client=client,
                    action=action, datasets=list(datasets), revision=revision, details=details,
                    seen=seen, signature=doc["signature"],
                    unknown={k: v for k, v in s.items() if k not in _SIGNED_KEYS})
        if len(event.canonical_bytes()) > MAX_SIGNED_LEN:
            raise _fail("event larger than 32 KiB")
        # the stored bytes MUST be canonical: one event, one digest
        if event.to_bytes() != data:
            raise _fail("document is not in canonical form")
        return event


# --- verification ---------------------------------------------------------------------


@dataclass(frozen=True)
class Signer:
    """A key the keyring allows to write audit events."""

    name: str
    role: str
    current: bool = True  # False: a former member (from an older keyring version)


@dataclass(frozen=True)
class Entry:
    """One stored event as read back: decrypted bytes, or why they could not be read."""

    chain: str
    seq: int
    payload: bytes | None
    error: str | None = None
    kind: str = "edited"  # finding kind when payload is None ("unreadable": no key)


@dataclass(frozen=True)
class Finding:
    kind: str
    chain: str
    seq: int | None
    message: str
    fix: str

    @property
    def where(self) -> str:
        return storage_name(self.chain, self.seq) if self.seq else f"{STORAGE_PREFIX}/{self.chain}/"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "chain": self.chain, "seq": self.seq, "where": self.where,
                "message": self.message, "fix": self.fix}


@dataclass
class LogView:
    """What the verifier established: valid events (time order), findings, clean heads."""

    events: list[AuditEvent]
    findings: list[Finding]
    heads: dict[str, tuple[int, str]]

    @property
    def ok(self) -> bool:
        return not self.findings


_FIX_TAMPER = ("restore the file from a backup of the remote, or treat the events after it as "
               "untrusted; find out who has write access to the storage")
_FIX_DELETED = ("the storage lost or someone deleted audit events: restore them from a backup "
                "of the remote and check the storage's access logs")


def _ranges(numbers: Sequence[int]) -> str:
    out: list[str] = []
    start = prev = numbers[0]
    for n in [*numbers[1:], None]:
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


def verify_log(entries: Iterable[Entry], signers: Mapping[str, Signer],
               checkpoints: Mapping[str, tuple[int, str]] | None = None) -> LogView:
    """Check every chain: signatures, links, order, gaps, and heads others saw.

    ``signers`` maps a bech32 signing key to the member it belongs to; ``checkpoints``
    are heads this clone saw before (its own uploads, earlier reads)."""
    findings: list[Finding] = []
    stored: dict[str, set[int]] = {}
    valid: dict[str, dict[int, AuditEvent]] = {}
    seen_at: dict[tuple[str, int], int] = {}

    def add(kind: str, chain: str, seq: int | None, msg: str, fix: str) -> None:
        findings.append(Finding(kind, chain, seq, msg, fix))

    for e in entries:
        key = (e.chain, e.seq)
        seen_at[key] = seen_at.get(key, 0) + 1
        stored.setdefault(e.chain, set()).add(e.seq)
        if seen_at[key] == 2:
            add(FORKED, e.chain, e.seq, "two stored events claim the same chain and sequence "
                "number", "keep the one the next event links to; find out who wrote the other")
        if seen_at[key] > 1:
            continue
        if e.payload is None:
            fix = (_FIX_TAMPER if e.kind != UNREADABLE else "ask an admin to grant your "
                   "identity the key epoch this event was written under")
            add(e.kind, e.chain, e.seq, e.error or "the event could not be read", fix)
            continue
        try:
            ev = AuditEvent.from_bytes(e.payload)
        except AuditLogError as exc:
            add(EDITED, e.chain, e.seq, f"the event does not parse: {exc.message}", _FIX_TAMPER)
            continue
        signer = signers.get(ev.actor_key)
        if signer is None:
            add(UNKNOWN_SIGNER, e.chain, e.seq,
                f"signed by key {ev.actor_keyid} ('{ev.actor_name}'), which no keyring version "
                "lists as a member", "if this key was a member, check the keyring history; "
                "otherwise someone who holds a data key forged this event")
            continue
        if not ev.signature_ok(decode_signing_key(ev.actor_key)):
            add(EDITED, e.chain, e.seq, "the signature does not verify (content changed "
                "after signing)", _FIX_TAMPER)
            continue
        if (ev.chain, ev.seq) != (e.chain, e.seq):
            add(REORDERED, e.chain, e.seq, f"the event stored here is {ev.name}: it was moved",
                "move it back; the chain order is fixed by sequence numbers")
            continue
        valid.setdefault(ev.chain, {})[ev.seq] = ev

    heads: dict[str, tuple[int, str]] = {}
    for chain in sorted(stored):
        seqs = sorted(stored[chain])
        missing = sorted(set(range(1, seqs[-1] + 1)) - set(seqs))
        if missing:
            add(GAP, chain, missing[0], f"event(s) {_ranges(missing)} of this chain are missing "
                f"(it goes up to {seqs[-1]})", _FIX_DELETED)
        evs = valid.get(chain, {})
        owners = {(ev.actor_key, ev.clone) for ev in evs.values()}
        if len(owners) > 1:
            add(FORKED, chain, None, "events of this chain were written by more than one "
                "identity or clone", "a chain belongs to one identity in one clone; the "
                "copied clone-id must be removed from one of them")
        digests = {ev.digest: s for s, ev in evs.items()}
        for seq in sorted(evs):
            ev = evs[seq]
            before = evs.get(seq - 1)
            if before is None:
                continue
            if ev.prev != before.digest:
                if ev.prev in digests:
                    add(REORDERED, chain, seq, f"links to event {digests[ev.prev]} instead of "
                        f"{seq - 1}", "restore the original order from a backup")
                else:
                    add(EDITED, chain, seq - 1, f"event {seq} links to a different event "
                        f"{seq - 1} than the one stored", _FIX_TAMPER)
            elif parse_time(ev.time) < parse_time(before.time):
                add(REORDERED, chain, seq, f"its time {ev.time} is before that of event "
                    f"{seq - 1} ({before.time})", "check the clock of the writing client; "
                    "events of one chain are written in time order")
        head = 0
        while head + 1 in evs:
            head += 1
        if head:
            heads[chain] = (head, evs[head].digest)

    # heads that someone saw: the chain must reach at least that far, with that event
    claims: dict[str, list[tuple[int, str, str]]] = {}
    for evs in valid.values():
        for ev in evs.values():
            for other, (s, h) in ev.seen.items():
                claims.setdefault(other, []).append((s, h, f"event {ev.name}"))
    for chain, (s, h) in (checkpoints or {}).items():
        claims.setdefault(chain, []).append((s, h, "this clone's checkpoint"))
    for chain in sorted(claims):
        top = max(stored.get(chain, {0}))
        deepest = max(claims[chain])
        if top < deepest[0]:
            what = "the whole chain is gone" if top == 0 else f"it ends at {top}"
            add(TRUNCATED, chain, top or None, f"{deepest[2]} saw this chain up to event "
                f"{deepest[0]}, but {what}", _FIX_DELETED)
        first_claim: dict[tuple[int, str], str] = {}
        for s, h, who in claims[chain]:
            first_claim.setdefault((s, h), who)
        for (s, h), who in sorted(first_claim.items()):
            claimed = valid.get(chain, {}).get(s)
            if claimed is not None and claimed.digest != h:
                add(FORKED, chain, s, f"{who} saw a different event {s} of this chain than "
                    "the one stored", "the chain was rewritten: compare with a backup")
    events = sorted((ev for evs in valid.values() for ev in evs.values()),
                    key=lambda ev: (ev.time, ev.chain, ev.seq))
    return LogView(events=events, findings=findings, heads=heads)


def merge_heads(old: Mapping[str, tuple[int, str]],
                new: Mapping[str, tuple[int, str]]) -> dict[str, tuple[int, str]]:
    """Checkpoints only move forward."""
    out = dict(old)
    for chain, head in new.items():
        if chain not in out or head[0] > out[chain][0]:
            out[chain] = head
    return out
