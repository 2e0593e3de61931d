"""Pure governance models and rules (core/governance): alerts, OCSF mapping, overlap,
inventory locations and recipients, Croissant required fields. Each rule fires on its
case and stays quiet otherwise."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from dvc_secure.core.audit.model import AuditEvent, Signer
from dvc_secure.core.governance import alerts as A
from dvc_secure.core.governance.croissant import CONTEXT, required_problems, to_croissant
from dvc_secure.core.governance.inventory import build_inventory, location_of
from dvc_secure.core.governance.ocsf import to_ocsf
from dvc_secure.core.governance.overlap import (
    EMPTY_SHA256,
    SealedFile,
    find_overlaps,
    parse_splits,
)
from dvc_secure.core.keys import policy_changes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import AccessMetadata, SealedOutput, Sidecar
from dvc_secure.errors import ConfigurationError

ALICE, BOB = Identity.generate(), Identity.generate()
CLASSES = {"data/train.dvc": "restricted", "data/test.dvc": "internal"}
MEMBERS = {ALICE.signing_key: A.MemberStatus("alice"), BOB.signing_key: A.MemberStatus("bob")}
QUIET = A.AlertConfig()


def event(who: Identity, name: str, action: str, time: str, datasets: list[str] | None = None,
          seq: int = 1, **details: object) -> AuditEvent:
    return AuditEvent(chain=("a" if who is ALICE else "b") * 32, seq=seq, prev=None, time=time,
                      actor={"name": name, "key": who.signing_key},
                      client={"host": "laptop", "clone": "c" * 32}, action=action,
                      datasets=datasets if datasets is not None else ["all"],
                      details=dict(details))


def rules(alerts: list[A.Alert]) -> list[str]:
    return [a.rule for a in alerts]


# --- alerts -------------------------------------------------------------------------------


def test_first_sensitive_pull_fires_once_per_member_and_dataset() -> None:
    evs = [event(BOB, "bob", "pull", "2026-03-02T10:00:00Z", ["data/test.dvc"], bytes=10),
           event(BOB, "bob", "pull", "2026-03-02T11:00:00Z", ["data/train"], seq=2, bytes=10),
           event(BOB, "bob", "pull", "2026-03-02T12:00:00Z", ["all"], seq=3, bytes=10),
           event(ALICE, "alice", "pull", "2026-03-02T13:00:00Z", ["all"], bytes=10)]
    got = A.evaluate(evs, CLASSES, MEMBERS, QUIET)
    assert [(a.rule, a.actor, a.time) for a in got] == [
        (A.FIRST_PULL, "bob", "2026-03-02T11:00:00Z"),
        (A.FIRST_PULL, "alice", "2026-03-02T13:00:00Z")]
    assert "data/train.dvc (restricted)" in got[0].message
    # earlier events are baseline only
    assert A.evaluate(evs, CLASSES, MEMBERS, QUIET, since="2026-03-02T11:30:00Z") == got[1:]
    # a push of a restricted dataset, or a pull of an internal one, never fires it
    assert A.evaluate([event(BOB, "bob", "push", "2026-03-02T10:00:00Z", ["data/train.dvc"]),
                       evs[0]], CLASSES, MEMBERS, QUIET) == []


def test_volume_spike_is_measured_against_the_members_own_history() -> None:
    mib = 1 << 20
    evs = [event(BOB, "bob", "pull", f"2026-03-0{i}T10:00:00Z", ["data/test.dvc"], seq=i,
                 bytes=2 * mib) for i in range(1, 5)]
    spike = event(BOB, "bob", "pull", "2026-03-09T10:00:00Z", ["data/test.dvc"], seq=9,
                  bytes=50 * mib)
    assert rules(A.evaluate([*evs, spike], CLASSES, MEMBERS, QUIET)) == [A.VOLUME]
    # 4x the median is not a spike at factor 5; nor is a spike without enough history
    normal = event(BOB, "bob", "pull", "2026-03-09T10:00:00Z", ["data/test.dvc"], seq=9,
                   bytes=8 * mib)
    assert A.evaluate([*evs, normal], CLASSES, MEMBERS, QUIET) == []
    assert A.evaluate([*evs[:2], spike], CLASSES, MEMBERS, QUIET) == []
    # alice's large pulls are not bob's baseline
    big = [event(ALICE, "alice", "pull", f"2026-03-0{i}T11:00:00Z", ["data/test.dvc"],
                 seq=i, bytes=100 * mib) for i in range(1, 5)]
    assert A.evaluate([*big, spike], CLASSES, MEMBERS, QUIET) == []


def test_revoked_or_expired_key_fires_only_after_the_revocation_or_expiry() -> None:
    revoke = event(ALICE, "alice", "revoke", "2026-03-05T09:00:00Z", [],
                   summary=["revoked 'bob' (reader); new key epoch 2 ...", "'bob' keeps ..."])
    before = event(BOB, "bob", "pull", "2026-03-04T10:00:00Z", ["data/test.dvc"])
    after = event(BOB, "bob", "pull", "2026-03-06T10:00:00Z", ["data/test.dvc"], seq=2)
    got = A.evaluate([before, revoke, after], CLASSES, MEMBERS, QUIET)
    assert [(a.rule, a.time) for a in got] == [(A.REVOKED_KEY, "2026-03-06T10:00:00Z")]
    regrant = event(ALICE, "alice", "grant", "2026-03-05T12:00:00Z", [], seq=2,
                    summary=["granted 'bob' the role reader (keys of every epoch)"])
    assert A.evaluate([before, revoke, regrant, after], CLASSES, MEMBERS, QUIET) == []
    rotate = event(ALICE, "alice", "rotate", "2026-03-05T09:00:00Z", [],
                   summary=["new key epoch 3, wrapped to 1 member(s)",
                            "dropped 'bob' (grant expired)"])
    got = A.evaluate([before, rotate, after], CLASSES, MEMBERS, QUIET)
    assert [(a.rule, a.time) for a in got] == [(A.REVOKED_KEY, "2026-03-06T10:00:00Z")]
    expiring = {**MEMBERS, BOB.signing_key: A.MemberStatus("bob", "2026-03-05")}
    got = A.evaluate([before, after], CLASSES, expiring, QUIET)
    assert [(a.rule, a.time) for a in got] == [(A.REVOKED_KEY, "2026-03-06T10:00:00Z")]
    assert "ended on 2026-03-05" in got[0].message


def test_outside_window_uses_the_configured_days_hours_and_offset() -> None:
    config = A.parse_config(json.dumps({
        "format": "dvc-secure-alerts", "version": 1,
        "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "08:00",
                   "end": "18:00", "utc_offset": "+02:00"}}).encode(), "alerts.json")
    monday_noon = event(BOB, "bob", "push", "2026-03-02T10:00:00Z", ["data/test.dvc"])
    monday_late = event(BOB, "bob", "push", "2026-03-02T16:30:00Z", ["data/test.dvc"], seq=2)
    saturday = event(BOB, "bob", "seal", "2026-03-07T10:00:00Z", ["data/test.dvc"], seq=3)
    verify = event(BOB, "bob", "verify", "2026-03-07T11:00:00Z", [], seq=4)
    got = A.evaluate([monday_noon, monday_late, saturday, verify], CLASSES, MEMBERS, config)
    assert [(a.rule, a.seq) for a in got] == [(A.WINDOW, 2), (A.WINDOW, 3)]
    assert A.evaluate([monday_late], CLASSES, MEMBERS, QUIET) == []  # no window: no rule


@pytest.mark.parametrize("doc", [
    {"format": "dvc-secure-alerts", "version": 2},
    {"format": "dvc-secure-alerts", "version": 1, "volume": {"factor": 0}},
    {"format": "dvc-secure-alerts", "version": 1, "window": {"start": "8:00", "end": "18:00"}},
    {"format": "dvc-secure-alerts", "version": 1,
     "window": {"days": ["someday"], "start": "08:00", "end": "18:00"}},
])
def test_bad_alert_config_is_a_configuration_error(doc: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError) as err:
        A.parse_config(json.dumps(doc).encode(), "alerts.json")
    assert err.value.hint


# --- OCSF -----------------------------------------------------------------------------------


def test_ocsf_pull_and_revoke_carry_the_required_fields() -> None:
    pull = event(BOB, "bob", "pull", "2026-03-02T10:00:00Z", ["data/train.dvc"], objects=3,
                 bytes=99, failed=0, command="dvc pull /home/bob/secret-path")
    out = to_ocsf(pull, Signer("bob", "reader"), "9.9", "vault")
    assert (out["class_uid"], out["category_uid"], out["activity_id"], out["type_uid"]) == \
        (1001, 1, 2, 100102)
    assert out["time"] == int(dt.datetime(2026, 3, 2, 10, tzinfo=dt.timezone.utc).timestamp()) * 1000
    assert out["actor"]["user"]["name"] == "bob"
    assert out["actor"]["user"]["uid"] == pull.actor_keyid
    assert out["status"] == "Success" and out["status_id"] == 1
    assert out["file"]["name"] == "data/train.dvc"
    assert out["resources"] == [{"name": "data/train.dvc", "type": "dataset"}]
    meta = out["metadata"]
    assert meta["product"] == {"name": "dvc-secure", "vendor_name": "dvc-secure", "version": "9.9"}
    assert (meta["correlation_uid"], meta["sequence"], meta["uid"]) == \
        (pull.chain, pull.seq, pull.digest)
    text = json.dumps(out)
    assert "secret-path" not in text and BOB.signing_key not in text
    failed = to_ocsf(event(BOB, "bob", "push", "2026-03-02T10:00:00Z", failed=2), None, "9.9")
    assert failed["status"] == "Failure" and failed["type_uid"] == 100101
    revoke = to_ocsf(event(ALICE, "alice", "revoke", "2026-03-05T09:00:00Z", [],
                           summary=["revoked 'bob' (reader)"]), Signer("alice", "admin"), "9.9")
    assert (revoke["class_uid"], revoke["category_uid"], revoke["type_uid"]) == (3001, 3, 300108)
    assert revoke["user"] == {"name": "bob"}
    incident = to_ocsf(event(ALICE, "alice", "incident", "2026-03-05T09:01:00Z", [],
                             member="bob", id="20260305T090100Z-0a1b2c3d"), None, "9.9")
    assert (incident["type_uid"], incident["user"]) == (300199, {"name": "bob"})
    assert "file" not in incident and "actor" in incident


# --- overlap ----------------------------------------------------------------------------------


def test_overlap_reports_shared_content_across_datasets_only() -> None:
    files = [SealedFile("train", "train/a", "1" * 64, 5), SealedFile("train", "train/a2", "1" * 64, 5),
             SealedFile("test", "test/x", "1" * 64, 5), SealedFile("test", "test/y", "2" * 64, 5),
             SealedFile("train", "train/dup1", "3" * 64, 5),
             SealedFile("train", "train/dup2", "3" * 64, 5),
             SealedFile("train", "train/e", EMPTY_SHA256, 0),
             SealedFile("test", "test/e", EMPTY_SHA256, 0)]
    (found,) = find_overlaps(files)
    assert found.datasets == ("test", "train")
    assert [f.path for f in found.files] == ["test/x", "train/a", "train/a2"]
    assert len(find_overlaps(files, include_empty=True)) == 2
    assert find_overlaps(files[3:6]) == []


def test_splits_config_needs_two_datasets_per_group() -> None:
    good = {"format": "dvc-secure-splits", "version": 1,
            "groups": [{"name": "g", "datasets": ["a.dvc", "b.dvc"]}]}
    assert parse_splits(json.dumps(good).encode(), "s")[0].datasets == ("a.dvc", "b.dvc")
    bad = {**good, "groups": [{"name": "g", "datasets": ["a.dvc"]}]}
    with pytest.raises(ConfigurationError):
        parse_splits(json.dumps(bad).encode(), "s")


# --- inventory, croissant ---------------------------------------------------------------------


@pytest.mark.parametrize(("url", "backend", "host"), [
    ("s3://AKIAXXXX:secret@bucket/prefix?versionid=1", "s3", "bucket"),
    ("ssh://user:pw@host.example:22/path", "ssh", "host.example"),
    ("https://u:p@files.example.org/x#frag", "https", "files.example.org"),
    ("/srv/storage", "local", ""), ("../storage", "local", ""), (r"C:\data", "local", ""),
    ("file:///srv/x", "local", ""), (None, "unknown", ""),
])
def test_location_keeps_only_backend_and_host(url: str | None, backend: str, host: str) -> None:
    loc = location_of("vault", url)
    assert (loc.backend, loc.host) == (backend, host)
    for secret in ("secret", "AKIA", "pw", "u:p", "versionid", "prefix", "frag"):
        assert secret not in json.dumps(loc.to_dict())


def _sidecar(epoch: int) -> Sidecar:
    out = SealedOutput(path="train", oid="d" * 32 + ".dir", sha256="f" * 64, size=30, nfiles=3,
                       key_epoch=epoch, remote="vault")
    return Sidecar(metafile="data/train.dvc", version=2, previous=("0" * 64,),
                   sealed_at="2026-03-01T09:00:00Z", signer_keyid="k" * 16, git_author="",
                   outputs=(out,), access=AccessMetadata("restricted", "DPO", "training",
                                                         "2027-01-01", ("bob",)))


def test_recipients_are_the_members_holding_the_datasets_epoch() -> None:
    ring = Keyring.create(ALICE, "alice", "2026-01-01")
    keys = ring.unwrap(ALICE)
    ring = policy_changes.grant(ring, keys, name="bob", recipient=BOB.recipient, role="reader",
                                signing_key=None, expires="2026-02-01", now="2026-01-02",
                                history=False)
    ring = policy_changes.grant(ring, keys, name="carol", recipient=Identity.generate().recipient,
                                role="reader", signing_key=None, expires=None, now="2026-01-03",
                                history=True)
    today = dt.date(2026, 3, 1)
    inv = build_inventory("r" * 40, [_sidecar(1)], ring, {}, "2026-03-01T00:00:00Z", today)
    (rec,) = inv.datasets
    # bob was granted the current epoch only; after a rotation he would not hold epoch 1
    assert [(r.name, r.expired) for r in rec.recipients] == [
        ("alice", False), ("bob", True), ("carol", False)]
    nxt, _dropped = policy_changes.rotate(ring, ring.unwrap(ALICE), now="2026-03-01", today=today)
    inv2 = build_inventory("r" * 40, [_sidecar(nxt.current_epoch)], nxt, {}, "x", today)
    assert [r.name for r in inv2.datasets[0].recipients] == ["alice", "carol"]
    assert inv2.datasets[0].key_custody == \
        f"member-held X25519 identities, epoch {nxt.current_epoch}"
    assert inv.datasets[0].locations[0].backend == "unknown"


def test_croissant_document_has_the_required_fields() -> None:
    ring = Keyring.create(ALICE, "alice", "2026-01-01")
    inv = build_inventory("r" * 40, [_sidecar(1)], ring, {}, "2026-03-01T00:00:00Z",
                          dt.date(2026, 3, 1))
    doc = to_croissant(inv, "repo", {("data/train.dvc", "train"): (("a.csv", "a" * 64, 10),)})
    assert doc["@context"] == CONTEXT and required_problems(doc) == []
    files = [e for e in doc["distribution"] if e["@type"] == "cr:FileObject"]
    assert files == [{"@type": "cr:FileObject", "@id": "data/train/a.csv",
                      "name": "data/train/a.csv", "contentUrl": "data/train/a.csv",
                      "contentSize": "10 B", "encodingFormat": "text/csv", "sha256": "a" * 64}]
    broken = {**doc, "distribution": [{**files[0], "sha256": None}]}
    assert required_problems(broken) == ["distribution[0]: FileObject needs contentUrl and sha256/md5"]
    assert "conformsTo" in required_problems({**doc, "conformsTo": "x"})[0]


def test_croissant_document_validates_with_mlcroissant(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mlc = pytest.importorskip("mlcroissant")
    ring = Keyring.create(ALICE, "alice", "2026-01-01")
    inv = build_inventory("r" * 40, [_sidecar(1)], ring, {}, "2026-03-01T00:00:00Z",
                          dt.date(2026, 3, 1))
    doc = to_croissant(inv, "repo@abc", {("data/train.dvc", "train"): (
        ("a.csv", "a" * 64, 10), ("img/b.png", "b" * 64, 5))})
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    assert len(mlc.Dataset(jsonld=str(good)).metadata.distribution) == 3
    doc["distribution"][1].pop("sha256")  # a FileObject without a checksum is an error
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    with pytest.raises(mlc.ValidationError):
        mlc.Dataset(jsonld=str(bad))
