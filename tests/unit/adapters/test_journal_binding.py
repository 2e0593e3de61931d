"""Sealing without DVC: DVC's config read from its files, and the push journal's
name -> fsid bindings that are only trusted under the configuration they were made in."""

from __future__ import annotations

from pathlib import Path

import pytest

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.adapters.local.push_journal import PushJournal
from dvc_secure.core.sidecar.remote_index import StoredObject


@pytest.fixture
def dvc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DVC_SYSTEM_CONFIG_DIR", str(tmp_path / "system"))
    monkeypatch.setenv("DVC_GLOBAL_CONFIG_DIR", str(tmp_path / "global"))
    d = tmp_path / "repo" / ".dvc"
    d.mkdir(parents=True)
    (d / "config").write_text(
        "[core]\n    remote = vault\n"
        "['remote \"storage\"']\n    url = /srv/a\n"
        "['remote \"vault\"']\n    url = secure://storage\n", encoding="utf-8")
    return d


def test_config_levels_merge_like_dvc(dvc_dir: Path) -> None:
    (dvc_dir / "config.local").write_text('[remote "storage"]\n  url = /srv/b\n', encoding="utf-8")
    remotes = dvc_remotes(dvc_dir)
    assert remotes.default == "vault"
    assert remotes.url("storage") == "/srv/b"  # the local level wins
    assert remotes.is_secure("vault") and not remotes.is_secure("storage")


def test_changed_storage_url_changes_the_fingerprint(dvc_dir: Path) -> None:
    before = dvc_remotes(dvc_dir).fingerprint()
    assert dvc_remotes(dvc_dir).fingerprint() == before  # stable
    (dvc_dir / "config.local").write_text('[remote "storage"]\n  url = /srv/b\n', encoding="utf-8")
    assert dvc_remotes(dvc_dir).fingerprint() != before
    (dvc_dir / "config.local").write_text(
        '[remote "storage"]\n  url = /srv/a\n  credentialpath = /x\n', encoding="utf-8")
    assert dvc_remotes(dvc_dir).fingerprint() != before  # any option, not only the URL


def test_stale_binding_is_rejected(tmp_path: Path) -> None:
    journal = PushJournal(tmp_path / "pushed.sqlite")
    journal.bind_remote("vault", "config-1", "secure_aaa")
    assert journal.bound_fsid("vault", "config-1") == "secure_aaa"
    assert journal.bound_fsid("vault", "config-2") is None  # configuration changed since
    assert journal.bound_fsid("other", "config-1") is None
    journal.bind_remote("vault", "config-2", "secure_bbb")  # re-bound when opened again
    assert journal.bound_fsid("vault", "config-1") is None
    assert journal.bound_fsid("vault", "config-2") == "secure_bbb"
    journal.close()


def test_binding_survives_reopen_next_to_object_rows(tmp_path: Path) -> None:
    path = tmp_path / "pushed.sqlite"
    journal = PushJournal(path)
    journal.record("secure_aaa", "files/md5/ab/cd", StoredObject("x/y", 10, "0" * 64))
    journal.bind_remote("vault", "config-1", "secure_aaa")
    journal.close()
    again = PushJournal(path)
    assert again.bound_fsid("vault", "config-1") == "secure_aaa"
    assert again.lookup("secure_aaa", "files/md5/ab/cd") == StoredObject("x/y", 10, "0" * 64)
    again.close()
