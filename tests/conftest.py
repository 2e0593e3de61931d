"""Shared fixtures: isolated identities and real git + DVC repositories with a secure remote."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dvc_secure.adapters.local import env_secrets
from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE


def run(cmd: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a real command (dvc, git, dvc-secure); on unexpected failure show its output."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
    return proc


DVC = [sys.executable, "-m", "dvc"]
DVC_SECURE = [sys.executable, "-m", "dvc_secure.cli.main"]


@dataclass
class SecureRepo:
    """A git + DVC repository whose default remote is ``vault`` = secure://storage."""

    root: Path
    storage: Path
    identity_file: Path
    env: dict[str, str] = field(default_factory=dict)

    def dvc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*DVC, *args], self.root, self.env, check)

    def secure(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run([*DVC_SECURE, *args], self.root, self.env, check)

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run(["git", *args], self.root, self.env, check)

    def stored_objects(self) -> list[Path]:
        return sorted(p for p in self.storage.rglob("*") if p.is_file())


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_SECURE_", "GIT_"))}
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@example.invalid",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@example.invalid",
        DVC_NO_ANALYTICS="1",
        DVC_SITE_CACHE_DIR=str(home / "dvc-site-cache"),
    )
    return env


@pytest.fixture
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """No identity from the developer's machine can leak into a test."""
    home = tmp_path / "home"
    home.mkdir()
    for var in (ENV_IDENTITY, ENV_IDENTITY_FILE):
        monkeypatch.delenv(var, raising=False)
    env_secrets.forget()  # nor one taken out of the environment at start-up
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    yield base_env(home)


@pytest.fixture
def make_secure_repo(tmp_path: Path, isolated_env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Factory: ``make_secure_repo(name="repo", hide_names=True)`` -> SecureRepo."""

    def _make(name: str = "repo", hide_names: bool = True, storage: Path | None = None,
              identity_file: Path | None = None) -> SecureRepo:
        root = tmp_path / name
        root.mkdir()
        store = storage or tmp_path / f"{name}-storage"
        ident = identity_file or tmp_path / f"{name}-identity.txt"
        env = dict(isolated_env)
        env[ENV_IDENTITY_FILE] = str(ident)
        repo = SecureRepo(root=root, storage=store, identity_file=ident, env=env)
        repo.git("init", "-q")
        repo.dvc("init", "-q")
        if not ident.exists():
            repo.secure("keygen")
        repo.dvc("remote", "add", "storage", str(store))
        repo.secure("init", "--remote", "storage", "--member-name", "alice")
        if not hide_names:
            repo.dvc("remote", "modify", "vault", "hide_names", "false")
            repo.secure("remote-policy", "--update")  # pinned in the signed policy
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", "init")
        return repo

    return _make
