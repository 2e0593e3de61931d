"""Fixtures for the push/pull, failure and registration tests: ready-made secure repositories.

Building a repository through the real CLI (git init, dvc init, keygen, remote add,
dvc-secure init, dvc add, dvc push) costs ~6 s of DVC start-up. Each pytest process builds
two templates once, through exactly those commands, and every test gets its own copy:

- ``dataset_repo``: ``data/`` (nested dirs, an empty file, a 2.5 MiB file spanning three
  encryption segments) and ``model.bin`` are ``dvc add``-ed and committed, nothing pushed;
- ``pushed_repo``: the same after ``dvc push`` to ``vault`` = secure://storage.

The wrapped remote ``storage`` is a *relative* local path (``base/storage`` beside
``base/repo``), so a copied directory is a complete, independent repository + remote.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import SecureRepo, base_env
from tests.integration.secure_helpers import TRACKED, dataset_files


def repo_at(base: Path) -> SecureRepo:
    env = base_env(base / "home")
    env[ENV_IDENTITY_FILE] = str(base / "identity.txt")
    return SecureRepo(root=base / "repo", storage=base / "storage",
                      identity_file=base / "identity.txt", env=env)


def init_admin_repo(base: Path) -> SecureRepo:
    """A new git + DVC repository under ``base`` whose secure remote ``vault`` wraps
    ``storage``, with alice (a fresh identity) its admin."""
    (base / "home").mkdir(parents=True)
    repo = repo_at(base)
    repo.root.mkdir()
    repo.git("init", "-q")
    repo.dvc("init", "-q")
    repo.secure("keygen")
    repo.dvc("remote", "add", "storage", "../storage")  # DVC stores it relative to .dvc/
    repo.secure("init", "--remote", "storage", "--member-name", "alice")
    return repo


def write_files(repo: SecureRepo, files: dict[str, bytes]) -> None:
    for rel, content in files.items():
        path = repo.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def _build_dataset_template(base: Path) -> None:
    repo = init_admin_repo(base)
    write_files(repo, dataset_files())
    repo.dvc("add", "-q", *TRACKED)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dataset")


@pytest.fixture(scope="session")
def _secure_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("secure-templates")
    dataset = root / "dataset"
    _build_dataset_template(dataset)
    pushed = root / "pushed"
    shutil.copytree(dataset, pushed, symlinks=True)
    repo_at(pushed).dvc("push", "-q")
    return {"dataset": dataset, "pushed": pushed}


def copy_template(template: Path, dest: Path) -> SecureRepo:
    shutil.copytree(template, dest, symlinks=True)
    shutil.rmtree(dest / "home")
    (dest / "home").mkdir()
    return repo_at(dest)


@pytest.fixture
def dataset_repo(_secure_templates: dict[str, Path], tmp_path: Path,
                 isolated_env: dict[str, str]) -> SecureRepo:
    """Data added and committed, nothing pushed (see module docstring)."""
    return copy_template(_secure_templates["dataset"], tmp_path / "dataset")


@pytest.fixture
def pushed_repo(_secure_templates: dict[str, Path], tmp_path: Path,
                isolated_env: dict[str, str]) -> SecureRepo:
    """Data added, committed and pushed to ``vault`` (see module docstring)."""
    return copy_template(_secure_templates["pushed"], tmp_path / "pushed")
