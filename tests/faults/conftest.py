"""Fixtures for the fault tests: ready-made repositories copied from per-process templates.

Like ``tests/integration/conftest.py``: the wrapped storage is the relative path
``../storage`` beside the repository, so a copied directory (or a ``git clone`` beside it)
is a complete repository with the same remote.

- ``dataset_repo``: ``data/`` (16 files) ``dvc add``-ed and committed, nothing pushed;
- ``sealed_repo``: the same after ``dvc push`` and ``dvc-secure seal data``, in the same
  commit (so ``verify --all-revisions`` applies).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import SecureRepo
from tests.faults.fault_helpers import DATA
from tests.integration.conftest import copy_template, init_admin_repo, repo_at, write_files


def _build(base: Path) -> None:
    repo = init_admin_repo(base)
    write_files(repo, DATA)
    repo.dvc("add", "-q", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dataset")


@pytest.fixture(scope="session")
def _fault_templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fault-templates")
    dataset = root / "dataset"
    _build(dataset)
    sealed = root / "sealed"
    shutil.copytree(dataset, sealed, symlinks=True)
    repo = repo_at(sealed)
    repo.dvc("push", "-q")
    repo.secure("seal", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "--amend", "--no-edit")  # every revision is sealed
    return {"dataset": dataset, "sealed": sealed}


@pytest.fixture
def dataset_repo(_fault_templates: dict[str, Path], tmp_path: Path,
                 isolated_env: dict[str, str]) -> SecureRepo:
    return copy_template(_fault_templates["dataset"], tmp_path / "dataset")


@pytest.fixture
def sealed_repo(_fault_templates: dict[str, Path], tmp_path: Path,
                isolated_env: dict[str, str]) -> SecureRepo:
    return copy_template(_fault_templates["sealed"], tmp_path / "sealed")
