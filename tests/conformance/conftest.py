"""DVC's own remote test fixtures, and a ``remote`` that is secure:// over a local directory.

DVC's suite is normally enabled with ``-p dvc.testing.plugin`` or
``pytest_plugins = ["dvc.testing.plugin"]``. pytest refuses ``pytest_plugins`` in a conftest
below the rootdir (``pytest tests`` fails with "Defining 'pytest_plugins' in a non-top-level
conftest is no longer supported"), and the plugin's benchmark options would apply to the
whole run; so the fixtures the suite needs are imported from the plugin's fixture module.
They are only used by tests that ask for them (``tmp_dir`` changes the working directory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# DVC's fixtures for its TestRemote suite (same objects `-p dvc.testing.plugin` provides)
from dvc.testing.fixtures import dvc, make_tmp_dir, scm, tmp_dir  # noqa: F401

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE


@dataclass
class SecureCloud:
    """What DVC's suite expects of ``remote``: a ``scheme`` and a remote ``config``."""

    storage: Path
    hide_names: bool
    wrapped: str = "storage"
    scheme: str = "secure"

    @property
    def url(self) -> str:
        return f"secure://{self.wrapped}"

    @property
    def config(self) -> dict[str, Any]:
        return {"url": self.url, "hide_names": self.hide_names}


@pytest.fixture(params=[True, False], ids=["hidden-names", "plain-names"])
def hide_names(request: pytest.FixtureRequest) -> bool:
    return bool(request.param)


@pytest.fixture
def remote(tmp_dir: Any, dvc: Any, isolated_env: dict[str, str], hide_names: bool,  # noqa: F811
           monkeypatch: pytest.MonkeyPatch,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureCloud]:
    """``storage`` = a local directory; ``upstream`` = secure://storage (the default remote);
    an identity made by ``dvc-secure keygen`` and a keyring made by ``dvc-secure init``."""
    from dvc_secure.cli.main import main as dvc_secure_main
    from dvc_secure.plugin import register

    register()  # pytest may have imported DVC before the import hook could see it
    monkeypatch.delenv(ENV_IDENTITY, raising=False)
    monkeypatch.setenv(ENV_IDENTITY_FILE, str(tmp_path_factory.mktemp("identity") / "id.txt"))
    assert dvc_secure_main(["keygen"]) == 0
    assert dvc_secure_main(["init", "--member-name", "tester"]) == 0  # cwd: tmp_dir

    storage = tmp_path_factory.mktemp("secure-storage")
    tmp_dir.add_remote(name="storage", url=str(storage), default=False)
    cloud = SecureCloud(storage=storage, hide_names=hide_names)
    tmp_dir.add_remote(name="upstream", config=cloud.config)
    yield cloud
    # the suite really went through secure://: the storage holds only our objects
    stored = [p for p in storage.rglob("*") if p.is_file()]
    assert stored, "nothing reached the storage"
    for path in stored:
        assert path.read_bytes().startswith(b"DVCSEC"), f"{path} is not a dvc-secure object"
