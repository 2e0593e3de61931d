"""The `.pre-commit-hooks.yaml` of this repository, driven by the real `pre-commit` tool.

`repo:` points at a local clone of this repository (with the working tree's
`.pre-commit-hooks.yaml` committed in the clone only), `rev:` at that commit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SecureRepo, run

pytest.importorskip("pre_commit")

PROJECT = Path(__file__).resolve().parents[2]
HOOKS_FILE = PROJECT / ".pre-commit-hooks.yaml"
BIN = str(Path(sys.executable).parent)


@pytest.fixture
def hooks_repo(tmp_path: Path, isolated_env: dict[str, str]) -> tuple[Path, str]:
    if not HOOKS_FILE.is_file() or not (PROJECT / ".git").exists():
        pytest.skip("needs a git checkout of dvc-secure with .pre-commit-hooks.yaml")
    clone = tmp_path / "dvc-secure-clone"
    run(["git", "clone", "-q", "--no-hardlinks", str(PROJECT), str(clone)], tmp_path, isolated_env)
    shutil.copy(HOOKS_FILE, clone / ".pre-commit-hooks.yaml")
    run(["git", "add", ".pre-commit-hooks.yaml"], clone, isolated_env)
    if run(["git", "diff", "--cached", "--quiet"], clone, isolated_env, check=False).returncode:
        run(["git", "commit", "-q", "-m", "test: current hooks file"], clone, isolated_env)
    sha = run(["git", "rev-parse", "HEAD"], clone, isolated_env).stdout.strip()
    return clone, sha


def _pre_commit(repo: SecureRepo, *args: str) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "pre_commit", *args], repo.root, repo.env)


def test_pre_commit_framework_runs_dvc_secure_hooks(make_secure_repo, hooks_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clone, sha = hooks_repo
    repo: SecureRepo = make_secure_repo()
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    repo.env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    (repo.root / ".pre-commit-config.yaml").write_text(
        "repos:\n"
        f"  - repo: {clone}\n"
        f"    rev: {sha}\n"
        "    hooks:\n"
        "      - id: dvc-secure-pre-commit\n"
        "      - id: dvc-secure-pre-push\n"
    )
    _pre_commit(repo, "install", "--hook-type", "pre-commit", "--hook-type", "pre-push")
    repo.git("add", ".pre-commit-config.yaml")
    repo.git("commit", "-q", "-m", "pre-commit config")

    # a changed dataset is sealed by the hook and the sidecar lands in the commit
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.txt").write_text("v1")
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    repo.git("add", "-A")
    proc = repo.git("commit", "-m", "v1")
    assert "dvc-secure seal and verify staged datasets" in proc.stdout + proc.stderr
    assert "data.dvc.seal" in repo.git("show", "--name-only", "--format=", "HEAD").stdout.split()

    # unpushed data is blocked with the command that fixes it
    (repo.root / "data" / "a.txt").write_text("v2")
    repo.dvc("add", "-q", "data")
    repo.git("add", "-A")
    proc = repo.git("commit", "-m", "v2", check=False)
    assert proc.returncode != 0
    assert "dvc push data.dvc" in proc.stdout + proc.stderr
    repo.dvc("push", "-q")
    repo.git("commit", "-q", "-m", "v2")

    # pre-push: a revert that rolls data back is refused (the framework passes the range
    # in PRE_COMMIT_FROM_REF / PRE_COMMIT_TO_REF)
    bare = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], tmp_path, repo.env)
    repo.git("remote", "add", "origin", str(bare))
    repo.git("push", "-q", "-u", "origin", "HEAD")
    repo.git("revert", "--no-commit", "HEAD")
    repo.git("commit", "-q", "--no-verify", "-m", "revert v2")
    proc = repo.git("push", "origin", "HEAD", check=False)
    assert proc.returncode != 0
    assert "dvc-secure restore data --version 1" in proc.stdout + proc.stderr
