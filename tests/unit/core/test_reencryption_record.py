"""Re-encryption records (dvc_secure/core/records/reencryption.py): signing, merging, and the
replacement rule ``verify --remote`` applies."""

from __future__ import annotations

import json
import threading

import pytest

from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.keys.identity import key_fingerprint
from dvc_secure.core.records.reencryption import (
    KeyringView,
    ReencryptedObject,
    ReencryptionRecord,
    Replacements,
    check_record,
    epoch_of_filename,
    record_relpath,
)
from dvc_secure.errors import ReencryptionError
from dvc_secure.services.object_pipe import BoundedPipe

WRITER = SigningKeyPair.from_private(bytes(range(32)))
READER_KEY = SigningKeyPair.from_private(bytes(range(1, 33)))
RING = "0123456789abcdef0123456789abcdef"
VIEW = KeyringView(RING, [1, 2], {key_fingerprint(WRITER.public): WRITER.public})


def _obj(path: str = "ab/token", old: str = "a", new: str = "b", size: int = 300) -> ReencryptedObject:
    return ReencryptedObject("vault", path, old * 64, size, new * 64, size)


def _record(*objects: ReencryptedObject, epoch: int = 2) -> ReencryptionRecord:
    return ReencryptionRecord(RING, epoch, "2026-12-01T00:00:00Z", objects or (_obj(),))


def test_signed_record_round_trips_and_is_usable() -> None:
    rec = _record().sign(WRITER)
    again = ReencryptionRecord.from_bytes(rec.to_bytes(), "r")
    assert again == rec
    assert check_record(again, VIEW, 2, "r") == []


def test_unsigned_record_is_rejected() -> None:
    assert check_record(_record(), VIEW, 2, "r")


def test_record_signed_by_non_writer_is_rejected() -> None:
    assert check_record(_record().sign(READER_KEY), VIEW, 2, "r")


def test_forged_entry_breaks_the_signature() -> None:
    doc = json.loads(_record().sign(WRITER).to_bytes())
    doc["signed"]["objects"][0]["new_sha256"] = "f" * 64  # attacker's bytes
    forged = ReencryptionRecord.from_bytes(json.dumps(doc).encode(), "r")
    assert any("signature" in p for p in check_record(forged, VIEW, 2, "r"))


def test_record_replayed_into_another_epoch_file_is_rejected() -> None:
    assert check_record(_record().sign(WRITER), VIEW, 3, "epoch-3.json")


def test_record_of_another_keyring_is_rejected() -> None:
    other = KeyringView("f" * 32, [1, 2], VIEW.sealer_keys)
    assert check_record(_record().sign(WRITER), other, 2, "r")


def test_merging_keeps_entries_and_requires_a_new_signature() -> None:
    rec = _record().sign(WRITER)
    merged = rec.with_objects([_obj("cd/other", "c", "d")], "2026-12-02T00:00:00Z")
    assert len(merged.objects) == 2 and merged.signatures == ()
    assert merged.sign(WRITER).valid_signers(VIEW.sealer_keys)


def test_conflicting_entries_for_one_old_ciphertext_are_refused() -> None:
    with pytest.raises(ReencryptionError):
        _record().with_objects([_obj(new="c")], "t")


def test_replacement_chains_follow_epochs_but_not_backwards() -> None:
    acc = Replacements([_record(_obj(old="a", new="b")), _record(_obj(old="b", new="c"), epoch=3)])
    assert acc.accepts("vault", "ab/token", "a" * 64, "c" * 64, 300)
    assert acc.accepts("vault", "ab/token", "a" * 64, "b" * 64, 300)
    assert not acc.accepts("vault", "ab/token", "c" * 64, "a" * 64, 300)
    assert not acc.accepts("vault", "ab/token", "a" * 64, "c" * 64, 299)  # truncated
    assert not acc.accepts("other", "ab/token", "a" * 64, "b" * 64, 300)
    assert not acc.accepts("vault", "ab/else", "a" * 64, "b" * 64, 300)


def test_cyclic_records_do_not_loop() -> None:
    acc = Replacements([_record(_obj(old="a", new="b")), _record(_obj(old="b", new="a"), epoch=3)])
    assert not acc.accepts("vault", "ab/token", "a" * 64, "e" * 64, 300)


def test_record_paths() -> None:
    assert record_relpath(7) == ".dvc/secure/reencrypted/epoch-7.json"
    assert epoch_of_filename("epoch-7.json") == 7
    assert epoch_of_filename("epoch-07.json") is None
    assert epoch_of_filename("notes.txt") is None


def test_pipe_delivers_bytes_in_order_with_bounded_depth() -> None:
    pipe = BoundedPipe()
    data = bytes(range(256)) * 20000  # ~5 MiB through a 4-chunk pipe

    def produce() -> None:
        pipe.write(data)
        pipe.close()

    t = threading.Thread(target=produce)
    t.start()
    got = b"".join(iter(lambda: pipe.read(1 << 16), b""))
    t.join()
    assert got == data


def test_pipe_fails_the_consumer_when_the_old_object_fails_verification() -> None:
    """The upload side must fail, so a half-verified object is never completed."""
    pipe = BoundedPipe()

    def produce() -> None:
        pipe.write(b"x" * 10)
        pipe.close(ReencryptionError("bad trailer"))

    t = threading.Thread(target=produce)
    t.start()
    with pytest.raises(ReencryptionError):
        while pipe.read(4):
            pass
    t.join()


def test_pipe_producer_stops_when_the_upload_aborts() -> None:
    pipe = BoundedPipe()
    pipe.aborted.set()
    with pytest.raises(ReencryptionError):
        pipe.write(b"y" * (10 << 20))


def test_attack_superseded_ciphertext_is_named_by_the_record_that_replaced_it() -> None:
    """Issue 13 item 6: after a recorded re-encryption a -> b (epoch 2) and b -> c (epoch 3),
    finding a or b again at that path on that remote is a rollback of the store; c is the
    current ciphertext, and another remote or path is not covered."""
    acc = Replacements([_record(_obj(old="a", new="b")), _record(_obj(old="b", new="c"), epoch=3)])
    assert acc.superseded_by("vault", "ab/token", "a" * 64) == 2
    assert acc.superseded_by("vault", "ab/token", "b" * 64) == 3
    assert acc.superseded_by("vault", "ab/token", "c" * 64) is None
    assert acc.superseded_by("backup", "ab/token", "a" * 64) is None
    assert acc.superseded_by("vault", "cd/other", "a" * 64) is None
