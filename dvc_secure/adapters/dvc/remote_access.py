"""Opening a repository's secure remote by name, outside a DVC command."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dvc_secure.adapters.dvc.compat import cloud_fs_getter
from dvc_secure.adapters.dvc.secure_fs import SecureFileSystem
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.errors import ConfigurationError


def open_secure_remote(dvc_dir: Path, name: str | None = None) -> SecureFsspec:
    """The secure filesystem of remote ``name`` (None: the default remote, from the same
    reading of DVC's configuration); keys load lazily, on first need."""
    from dvc.config import Config, RemoteNotFoundError

    config = Config(dvc_dir=str(dvc_dir))
    if name is None:
        name = _default_in(config)
    try:
        cls, conf, _path = cloud_fs_getter()(config, name=name)
    except RemoteNotFoundError:
        raise ConfigurationError(f"DVC remote '{name}' does not exist") from None
    if not issubclass(cls, SecureFileSystem):
        raise ConfigurationError(f"DVC remote '{name}' is not a secure:// remote")
    return SecureFileSystem(**conf).fs


def default_remote(dvc_dir: Path) -> str:
    """The repository's default DVC remote (``core.remote``), as DVC resolves it."""
    from dvc.config import Config

    return _default_in(Config(dvc_dir=str(dvc_dir)))


def _default_in(config: Any) -> str:
    remote = config.get("core", {}).get("remote")
    if not remote:
        raise ConfigurationError("no default DVC remote", hint="dvc-secure init --remote <storage>")
    return str(remote)


def pull_targets(root: Path, targets: list[str], force: bool = False) -> None:
    """``dvc pull TARGETS`` in-process (fetch, decrypt and verify through the secure remote)."""
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        repo.pull(targets=targets, force=force)


class SecureRemotes:
    """Secure remotes of one repository, opened once per name."""

    def __init__(self, dvc_dir: Path) -> None:
        self.dvc_dir = dvc_dir
        self._open: dict[str, SecureFsspec] = {}

    def get(self, name: str) -> SecureFsspec:
        if name not in self._open:
            self._open[name] = open_secure_remote(self.dvc_dir, name)
        return self._open[name]
