"""DVC's own remote conformance suite (``dvc.testing.remote_tests.TestRemote``), unchanged,
against ``secure://`` wrapping a real SSH, S3, Azure Blob and GCS server, with hidden and
with plain object names."""

from __future__ import annotations

from typing import Any

import pytest
from dvc.testing import remote_tests

from .conftest import add_secure_remote_inprocess
from .stores import Store


class _SecureRemote:
    """What TestRemote reads from its ``remote`` fixture."""

    scheme = "secure"

    def __init__(self, store: Store) -> None:
        self.store = store


class TestSecureRemoteOverBackend(remote_tests.TestRemote):
    @pytest.fixture(params=[True, False], ids=["hidden", "plain"])
    def remote(self, request: pytest.FixtureRequest, tmp_dir: Any, dvc: Any, store: Store,
               monkeypatch: pytest.MonkeyPatch) -> _SecureRemote:
        add_secure_remote_inprocess(tmp_dir, dvc, store, monkeypatch, hide_names=request.param)
        return _SecureRemote(store)
