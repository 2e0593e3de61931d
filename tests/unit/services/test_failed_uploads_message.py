"""The line a ``dvc push`` with failed uploads ends with (tests/faults/test_storage.py runs
it for real on a full and a read-only storage)."""

from __future__ import annotations

import pytest

from dvc_secure.adapters.dvc.service_hooks import TransferStats
from dvc_secure.services.audit_activity import report_failed_uploads


def test_push_with_failed_uploads_says_nothing_partial_is_left_and_to_push_again(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.argv", ["dvc", "push", "-j", "1"])
    report_failed_uploads(TransferStats(failures=3))
    err = capsys.readouterr().err
    assert "3 object(s) could not be stored on the secure remote" in err
    assert "no partial object" in err and "run 'dvc push' again" in err


@pytest.mark.parametrize("argv,failures", [(["dvc", "push"], 0), (["dvc", "pull"], 2),
                                           (["dvc-secure", "seal"], 2)])
def test_no_message_without_failed_uploads_of_a_push(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        argv: list[str], failures: int) -> None:
    monkeypatch.setattr("sys.argv", argv)
    report_failed_uploads(TransferStats(failures=failures))
    assert capsys.readouterr().err == ""
