"""The audit event envelope (docs/spec/audit-log.md §4) and the push/pull command parser."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dvc_secure.core.format.audit_box import (
    HEADER_LEN,
    audit_key,
    envelope_epoch,
    open_event,
    seal_event,
)
from dvc_secure.errors import AuditBoxError, NoKeyForEpochError
from dvc_secure.services.audit_activity import dvc_command, remote_option

KEY = bytes(range(32))
NAME = "dvc-secure/audit/v1/" + "a" * 32 + "/0000000001.evt"


def keys(epoch: int) -> bytes:
    if epoch != 3:
        raise NoKeyForEpochError(f"no data key for key epoch {epoch}")
    return KEY


def test_envelope_round_trip_names_its_epoch() -> None:
    blob = seal_event(KEY, 3, NAME, b'{"x":1}')
    assert blob.startswith(b"DSAUDIT\x01\x00\x00\x00\x03")
    assert envelope_epoch(blob) == 3
    assert open_event(blob, NAME, keys) == b'{"x":1}'


def test_audit_key_is_not_the_data_key_and_differs_per_epoch() -> None:
    assert audit_key(KEY, 1) != KEY
    assert audit_key(KEY, 1) != audit_key(KEY, 2)


def test_envelope_moved_to_another_name_is_rejected() -> None:
    blob = seal_event(KEY, 3, NAME, b"{}")
    with pytest.raises(AuditBoxError, match="does not authenticate"):
        open_event(blob, NAME.replace("0001.evt", "0002.evt"), keys)


def test_envelope_relabelled_to_another_epoch_is_rejected() -> None:
    blob = bytearray(seal_event(KEY, 3, NAME, b"{}"))
    blob[11] = 4
    with pytest.raises(NoKeyForEpochError):
        open_event(bytes(blob), NAME, keys)
    with pytest.raises(AuditBoxError):
        open_event(bytes(blob), NAME, lambda e: KEY)


@pytest.mark.parametrize("blob", [
    b"",
    b"DSAUDIT\x01" + b"\x00" * 40,  # epoch 0
    b"DSAUDIT\x02\x00\x00\x00\x03" + b"\x00" * 40,  # version 2
    b"XXAUDIT\x01\x00\x00\x00\x03" + b"\x00" * 40,
    b"DSAUDIT\x01\x00\x00\x00\x03" + b"\x00" * 20,  # shorter than header + tag
])
def test_malformed_envelope_is_rejected(blob: bytes) -> None:
    with pytest.raises(AuditBoxError):
        open_event(blob, NAME, keys)


@settings(max_examples=80, deadline=None)
@given(payload=st.binary(max_size=200), data=st.data())
def test_any_flipped_bit_is_rejected(payload: bytes, data: st.DataObject) -> None:
    blob = bytearray(seal_event(KEY, 3, NAME, payload))
    pos = data.draw(st.integers(0, len(blob) - 1))
    blob[pos] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises((AuditBoxError, NoKeyForEpochError)):
        open_event(bytes(blob), NAME, keys)
    assert HEADER_LEN == 24


@pytest.mark.parametrize(("argv", "expected"), [
    (["/venv/bin/dvc", "push"], ("push", [])),
    (["/venv/bin/dvc", "push", "-r", "vault", "-j", "4", "data.dvc"], ("push", ["data.dvc"])),
    (["/venv/lib/python3.11/site-packages/dvc/__main__.py", "-q", "pull", "model.bin"],
     ("pull", ["model.bin"])),
    (["/venv/bin/dvc", "fetch", "--remote", "vault"], ("pull", [])),
    (["/venv/bin/dvc", "push", "--remote=vault", "d.dvc"], ("push", ["d.dvc"])),
    (["/venv/bin/dvc", "status", "-c"], None),
    (["/venv/bin/dvc", "git-hook", "pre-push", "origin"], None),
    (["/venv/bin/dvc-secure", "hook", "pre-push"], None),
    (["/venv/bin/pytest", "push"], None),
    ([], None),
])
def test_only_dvc_push_pull_fetch_are_recorded(argv: list[str],
                                               expected: tuple[str, list[str]] | None) -> None:
    assert dvc_command(argv) == expected


def test_remote_option_is_found_in_every_spelling() -> None:
    assert remote_option(["dvc", "push", "-r", "b"]) == "b"
    assert remote_option(["dvc", "push", "--remote=c", "x"]) == "c"
    assert remote_option(["dvc", "push", "x"]) is None
