"""The pure audit model: event parsing (MUST-reject rules) and the chain verifier."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvc_secure.core.audit.model import (
    AuditEvent,
    Entry,
    Signer,
    merge_heads,
    parse_storage_name,
    storage_name,
    verify_log,
)
from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.keys.identity import encode_signing_key
from dvc_secure.errors import AuditLogError

KEYS = {n: SigningKeyPair.from_private(bytes([i + 1]) * 32)
        for i, n in enumerate(("alice", "bob", "carol", "mallory"))}
SIGNERS = {encode_signing_key(k.public): Signer(n, "writer")
           for n, k in KEYS.items() if n != "mallory"}


def chain_id(who: str, clone: int = 0) -> str:
    return (f"{who:x<8}"[:8].encode().hex() + f"{clone:016x}")[:32]


def make(who: str, seq: int, prev: AuditEvent | None, minute: int = 0,
         seen: dict[str, tuple[int, str]] | None = None, action: str = "push",
         chain: str | None = None) -> AuditEvent:
    ev = AuditEvent(chain=chain or chain_id(who), seq=seq, prev=prev.digest if prev else None,
                    time=f"2026-03-01T{10 + minute // 60:02d}:{minute % 60:02d}:00Z",
                    actor={"name": who, "key": encode_signing_key(KEYS[who].public)},
                    client={"host": "h", "clone": "c" * 32}, action=action,
                    datasets=["data"], revision=None, details={"objects": seq},
                    seen=seen or {})
    ev.sign(KEYS[who])
    return ev


def chain_of(who: str, n: int, start_minute: int = 0,
             seen: dict[str, tuple[int, str]] | None = None) -> list[AuditEvent]:
    out: list[AuditEvent] = []
    for i in range(1, n + 1):
        out.append(make(who, i, out[-1] if out else None, start_minute + i, seen))
    return out


def entries(events: list[AuditEvent]) -> list[Entry]:
    return [Entry(e.chain, e.seq, e.to_bytes()) for e in events]


def kinds(events: list[AuditEvent], checkpoints: dict[str, tuple[int, str]] | None = None,
          raw: list[Entry] | None = None) -> list[tuple[str, int | None]]:
    view = verify_log(raw if raw is not None else entries(events), SIGNERS, checkpoints)
    return sorted(((f.kind, f.seq) for f in view.findings), key=lambda x: (x[0], x[1] or 0))


# --- parsing --------------------------------------------------------------------------


def test_event_round_trips_and_keeps_unknown_fields() -> None:
    ev = make("alice", 1, None)
    ev.unknown["future_field"] = {"x": 1}
    ev.sign(KEYS["alice"])
    again = AuditEvent.from_bytes(ev.to_bytes())
    assert again.unknown == {"future_field": {"x": 1}}
    assert again.digest == ev.digest
    assert again.signature_ok(KEYS["alice"].public)


def _mutated(mutate: Any) -> bytes:
    doc = json.loads(make("alice", 2, make("alice", 1, None)).to_bytes())
    mutate(doc["signed"])
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


@pytest.mark.parametrize("mutate", [
    lambda s: s.update(format="other"),
    lambda s: s.update(version=2),
    lambda s: s.update(chain="ABC"),
    lambda s: s.update(seq=0),
    lambda s: s.update(seq=True),
    lambda s: s.update(prev=None),
    lambda s: s.update(prev="xyz"),
    lambda s: s.update(time="2026-03-01 10:00:00"),
    lambda s: s.update(actor={"name": "alice"}),
    lambda s: s.update(actor={"name": "alice", "key": "age1notakey"}),
    lambda s: s.update(client={"host": "h", "clone": "short"}),
    lambda s: s.update(action="Push!"),
    lambda s: s.update(datasets="data"),
    lambda s: s.update(revision="HEAD"),
    lambda s: s.update(details={"ratio": 0.5}),
    lambda s: s.update(seen={"0" * 32: [0, "a" * 64]}),
    lambda s: s.update(seen={s["chain"]: [1, "a" * 64]}),
    lambda s: s.pop("details"),
], ids=lambda f: "")
def test_malformed_event_is_rejected(mutate: Any) -> None:
    with pytest.raises(AuditLogError):
        AuditEvent.from_bytes(_mutated(mutate))


def test_non_canonical_event_bytes_are_rejected() -> None:
    ev = make("alice", 1, None)
    pretty = json.dumps(json.loads(ev.to_bytes()), indent=2).encode()
    with pytest.raises(AuditLogError, match="canonical"):
        AuditEvent.from_bytes(pretty)


def test_storage_names_round_trip() -> None:
    name = storage_name("a" * 32, 7)
    assert name == f"dvc-secure/audit/v1/{'a' * 32}/0000000007.evt"
    assert parse_storage_name("/remote/root/" + name) == ("a" * 32, 7)
    assert parse_storage_name("dvc-secure/audit/v1/xyz/0000000001.evt") is None
    assert parse_storage_name(f"dvc-secure/audit/v1/{'a' * 32}/0000000000.evt") is None


# --- verifier -------------------------------------------------------------------------


def test_valid_chains_have_no_findings() -> None:
    a = chain_of("alice", 3)
    b = chain_of("bob", 2, 10, seen={a[0].chain: (3, a[-1].digest)})
    view = verify_log(entries(a + b), SIGNERS, {})
    assert view.ok
    assert [e.seq for e in view.events] == [1, 2, 3, 1, 2]
    assert view.heads == {a[0].chain: (3, a[-1].digest), b[0].chain: (2, b[-1].digest)}


def test_edited_event_is_detected() -> None:
    a = chain_of("alice", 3)
    doc = json.loads(a[1].to_bytes())
    doc["signed"]["datasets"] = ["other"]
    raw = entries(a)
    raw[1] = Entry(a[1].chain, 2, json.dumps(doc, sort_keys=True, separators=(",", ":")).encode())
    assert kinds(a, raw=raw) == [("edited", 2)]


def test_replaced_event_signed_by_its_writer_is_detected() -> None:
    # the writer re-signs a different event 2: event 3 still names the original
    a = chain_of("alice", 3)
    other = make("alice", 2, a[0], 2, action="pull")
    assert kinds([a[0], other, a[2]]) == [("edited", 2)]


def test_deleted_middle_event_is_detected() -> None:
    a = chain_of("alice", 4)
    assert kinds([a[0], a[1], a[3]]) == [("gap", 3)]


def test_deleted_first_events_are_detected() -> None:
    a = chain_of("alice", 3)
    assert kinds(a[2:]) == [("gap", 1)]


def test_truncated_chain_seen_by_another_chain_is_detected() -> None:
    a = chain_of("alice", 3)
    b = chain_of("bob", 1, 10, seen={a[0].chain: (3, a[-1].digest)})
    assert kinds(a[:2] + b) == [("truncated", 2)]


def test_truncated_chain_below_checkpoint_is_detected() -> None:
    a = chain_of("alice", 3)
    assert kinds(a[:1], {a[0].chain: (3, a[-1].digest)}) == [("truncated", 1)]


def test_deleted_whole_chain_seen_by_another_chain_is_detected() -> None:
    a = chain_of("alice", 2)
    b = chain_of("bob", 1, 10, seen={a[0].chain: (2, a[-1].digest)})
    assert kinds(b) == [("truncated", None)]


def test_unseen_tail_deletion_is_undetectable() -> None:
    # documented limit (spec §7): nobody saw event 3, so its deletion leaves no trace
    a = chain_of("alice", 3)
    assert kinds(a[:2]) == []


def test_reordered_events_are_detected() -> None:
    a = chain_of("alice", 3)
    # a key holder re-stores event 3 as 2 and 2 as 3 (the AEAD would refuse a plain move)
    raw = [Entry(a[0].chain, 1, a[0].to_bytes()), Entry(a[0].chain, 2, a[2].to_bytes()),
           Entry(a[0].chain, 3, a[1].to_bytes())]
    assert kinds(a, raw=raw) == [("reordered", 2), ("reordered", 3)]


def test_time_going_backwards_is_reordering() -> None:
    first = make("alice", 1, None, 30)
    second = make("alice", 2, first, 5)
    assert kinds([first, second]) == [("reordered", 2)]


def test_forged_event_by_non_member_is_rejected() -> None:
    m = chain_of("mallory", 1)
    assert kinds(m) == [("unknown-signer", 1)]


def test_event_signed_by_other_member_in_someones_chain_is_forked() -> None:
    a = chain_of("alice", 1)
    intruder = make("bob", 2, a[0], 2, chain=a[0].chain)
    assert kinds([a[0], intruder]) == [("forked", None)]


def test_checkpoint_naming_another_event_is_a_fork() -> None:
    a = chain_of("alice", 2)
    assert kinds(a, {a[0].chain: (2, "f" * 64)}) == [("forked", 2)]


def test_duplicate_stored_event_is_a_fork() -> None:
    a = chain_of("alice", 1)
    assert kinds(a, raw=entries(a) * 2) == [("forked", 1)]


def test_unreadable_event_is_reported_as_unreadable() -> None:
    raw = [Entry("a" * 32, 1, None, "no key for epoch 2", kind="unreadable")]
    assert kinds([], raw=raw) == [("unreadable", 1)]


def test_checkpoints_only_move_forward() -> None:
    old = {"a": (5, "x"), "b": (1, "y")}
    assert merge_heads(old, {"a": (3, "z"), "b": (2, "w"), "c": (1, "v")}) == {
        "a": (5, "x"), "b": (2, "w"), "c": (1, "v")}


# --- properties -------------------------------------------------------------------------

_CHAINS: dict[int, list[AuditEvent]] = {}


def _long_chain(n: int) -> list[AuditEvent]:
    if n not in _CHAINS:
        _CHAINS[n] = chain_of("carol", n)
    return _CHAINS[n]


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_deleted_event_seen_by_a_later_reader_is_detected(n: int, data: st.DataObject) -> None:
    chain = _long_chain(n)
    victim = data.draw(st.integers(0, n - 1))
    kept = [e for i, e in enumerate(chain) if i != victim]
    found = kinds(kept, {chain[0].chain: (n, chain[-1].digest)})
    assert found, "a deletion went unnoticed"
    assert {k for k, _ in found} <= {"gap", "truncated"}


@settings(max_examples=60, deadline=None)
@given(n=st.integers(2, 10), data=st.data())
def test_any_flipped_byte_is_detected(n: int, data: st.DataObject) -> None:
    chain = _long_chain(n)
    victim = data.draw(st.integers(0, n - 1))
    raw = entries(chain)
    payload = bytearray(raw[victim].payload or b"")
    pos = data.draw(st.integers(0, len(payload) - 1))
    payload[pos] ^= data.draw(st.integers(1, 255))
    raw[victim] = Entry(raw[victim].chain, raw[victim].seq, bytes(payload))
    assert verify_log(raw, SIGNERS, {chain[0].chain: (n, chain[-1].digest)}).findings


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 8), data=st.data())
def test_any_permutation_is_detected(n: int, data: st.DataObject) -> None:
    chain = _long_chain(n)
    order = data.draw(st.permutations(range(n)))
    if list(order) == list(range(n)):
        return
    raw = [Entry(chain[0].chain, i + 1, chain[j].to_bytes()) for i, j in enumerate(order)]
    assert verify_log(raw, SIGNERS, {}).findings
