"""Fixtures for secure:// over real storage servers (SSH, S3, Azure Blob, GCS).

Servers start lazily, once per pytest process (each xdist worker has its own), on free ports
of 127.0.0.1, and stop at the end of the session. Each test gets its own bucket, container
or directory on them. A server whose program is missing skips its tests outside CI and
FAILS them in CI (env ``CI`` set): CI must never go green without having run them.
"""

from __future__ import annotations

import atexit
import datetime as dt
import importlib.util
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# gcsfs >= 2025 asks the GCS control plane (gRPC, real Google endpoints) for the bucket
# layout; an emulator has no such service. Must be set before gcsfs is imported.
os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")

# DVC's own test fixtures (tmp_dir, dvc, ...) for its TestRemote suite
from dvc.testing.fixtures import dvc, make_tmp_dir, scm, tmp_dir  # noqa: F401

from tests.conftest import SecureRepo

from .servers import STARTERS, Server, ServerUnavailable, in_ci
from .stores import Store, make_store

KINDS = ["ssh", "s3", "azure", "gs"]
BACKEND_ENV = {"GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


# the DVC plugin each backend needs, and the provider's own client the tests inspect it with
CLIENT_MODULES = {
    "ssh": ["dvc_ssh", "sshfs"],
    "s3": ["dvc_s3", "boto3"],
    "azure": ["dvc_azure", "azure.storage.blob"],
    "gs": ["dvc_gs", "google.cloud.storage"],
}


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:  # a missing parent package
        return False


def require(reason: str) -> None:
    """Outside CI: skip with the reason. In CI: fail, a missing server is a broken CI."""
    if in_ci():
        pytest.fail(f"{reason} [CI is set: backend tests must run; see ci/servers/install.sh]",
                    pytrace=False)
    pytest.skip(reason)


class ServerPool:
    """Starts each kind of server on first use; ``stop_all`` stops every one started."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.servers: dict[str, Server] = {}
        self.unavailable: dict[str, str] = {}

    def get(self, kind: str) -> Server:
        if kind in self.unavailable:
            require(self.unavailable[kind])
        if kind not in self.servers and kind not in self.unavailable:
            try:
                missing = [m for m in CLIENT_MODULES[kind] if not _importable(m)]
                if missing:
                    raise ServerUnavailable(f"Python packages missing: {', '.join(missing)} "
                                            "(pip install -e '.[test]')")
                self.servers[kind] = STARTERS[kind](self.root / kind)
            except ServerUnavailable as exc:
                self.unavailable[kind] = f"{kind} backend unavailable: {exc}"
        if kind in self.unavailable:
            require(self.unavailable[kind])
        return self.servers[kind]

    def stop_all(self) -> None:
        while self.servers:
            _, server = self.servers.popitem()
            server.stop()


@pytest.fixture(scope="session")
def backend_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("servers"))
    atexit.register(pool.stop_all)  # also on an interrupted session
    try:
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def make_backend_store(backend_servers: ServerPool,
                       tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Store]:
    """``make_backend_store("s3")`` -> a fresh, empty location on that backend."""

    def make(kind: str) -> Store:
        server = backend_servers.get(kind)
        return make_store(kind, server, tmp_path_factory.mktemp("ssh-stores"))

    return make


@pytest.fixture(params=KINDS)
def store(request: pytest.FixtureRequest, make_backend_store: Callable[[str], Store]) -> Store:
    return make_backend_store(request.param)


# --- repositories driven through the real CLI -------------------------------------------------


@dataclass
class BackendRepo(SecureRepo):
    """A git + DVC repo whose secure remote ``vault`` wraps remote ``storage`` on a backend."""

    store: Store | None = None


def configure_remote(root: Path, name: str, store: Store) -> None:
    """What a user does with ``dvc remote add NAME URL`` and ``dvc remote modify [--local]``:
    the URL and options in .dvc/config (git), the credentials in .dvc/config.local."""
    from dvc.config import Config

    from dvc_secure.plugin import register

    register()  # the config may hold secure:// remotes, which DVC validates on load
    config = Config(dvc_dir=str(root / ".dvc"))
    with config.edit("repo") as conf:
        conf["remote"][name] = {"url": store.url, **store.options}
    if store.credentials:
        with config.edit("local") as conf:
            conf["remote"][name] = dict(store.credentials)


@pytest.fixture
def make_backend_repo(tmp_path: Path, isolated_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """``make_backend_repo(store, name="repo")`` -> BackendRepo with ``vault`` = secure://storage."""

    def _make(store: Store, name: str = "repo", identity_file: Path | None = None) -> BackendRepo:
        root = tmp_path / name
        root.mkdir()
        ident = identity_file or tmp_path / f"{name}-identity.txt"
        env = {**isolated_env, **BACKEND_ENV, "DVC_SECURE_IDENTITY_FILE": str(ident)}
        repo = BackendRepo(root=root, storage=tmp_path / "unused", identity_file=ident, env=env,
                           store=store)
        repo.git("init", "-q")
        repo.dvc("init", "-q")
        if not ident.exists():
            repo.secure("keygen")
        configure_remote(root, "storage", store)
        repo.secure("init", "--remote", "storage", "--member-name", "alice")
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "init")
        return repo

    return _make


# --- DVC's TestRemote: the in-process remote fixture --------------------------------------------


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def add_secure_remote_inprocess(workspace: Any, dvc_repo: Any, store: Store,
                                monkeypatch: pytest.MonkeyPatch, hide_names: bool,
                                name: str = "upstream") -> None:
    """Keyring + identity + ``storage`` (the backend) + ``name`` = secure://storage (default)."""
    from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE
    from dvc_secure.adapters.local.repo_keyring import save_keyring
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Keyring
    from dvc_secure.plugin import register

    register()
    identity = Identity.generate()
    monkeypatch.delenv(ENV_IDENTITY_FILE, raising=False)
    monkeypatch.setenv(ENV_IDENTITY, identity.to_text(now()))
    save_keyring(dvc_repo.dvc_dir, Keyring.create(identity, "tester", now()))
    workspace.add_remote(name="storage", config=store.remote_config(), default=False)
    workspace.add_remote(name=name, config={"url": "secure://storage", "hide_names": hide_names})

