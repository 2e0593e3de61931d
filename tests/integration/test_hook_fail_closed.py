"""A hook whose own git calls fail must block the commit, never pass it (fail closed).

The failure is real: ``git commit`` runs the installed hooks with ``GIT_EXEC_PATH`` pointing
at a directory whose ``git`` fails one plumbing subcommand (git puts its exec path first on
the hook's PATH), everything else goes to the real git.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SecureRepo

BIN = str(Path(sys.executable).parent)


@pytest.fixture
def hooked(make_secure_repo) -> SecureRepo:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    repo.secure("install")
    return repo


def _failing_git(tmp: Path, subcommand: str) -> dict[str, str]:
    """An exec path whose ``git`` fails ``subcommand`` (exit 128) and runs the rest."""
    real_exec = subprocess.run(["git", "--exec-path"], text=True, capture_output=True,
                               check=True).stdout.strip()
    real_git = shutil.which("git")
    assert real_git is not None
    wrap = tmp / "failing-git"
    wrap.mkdir()
    script = wrap / "git"
    script.write_text(
        "#!/bin/sh\n"
        f"GIT_EXEC_PATH='{real_exec}'; export GIT_EXEC_PATH\n"
        'for arg in "$@"; do\n'
        f'  if [ "$arg" = "{subcommand}" ]; then\n'
        '    echo "fatal: simulated failure of git $arg" >&2; exit 128\n'
        "  fi\n"
        "done\n"
        f'exec "{real_git}" "$@"\n')
    script.chmod(0o755)
    return {"GIT_EXEC_PATH": str(wrap)}


def _stage_unsealed_dataset_and_identity(repo: SecureRepo) -> None:
    """Two things the pre-commit hook must stop: an unsealed, unpushed dataset and a
    plaintext identity file."""
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.txt").write_text("secret rows\n")
    repo.dvc("add", "-q", "data")
    shutil.copy(repo.identity_file, repo.root / "me.txt")
    repo.git("add", "-A")


@pytest.mark.parametrize("subcommand", ["diff", "ls-files", "cat-file"])
def test_pre_commit_blocks_when_git_plumbing_fails(hooked: SecureRepo, tmp_path: Path,
                                                    subcommand: str) -> None:
    _stage_unsealed_dataset_and_identity(hooked)
    env = {**hooked.env, **_failing_git(tmp_path, subcommand)}
    proc = subprocess.run(["git", "commit", "-q", "-m", "past a broken check"], cwd=hooked.root,
                          env=env, text=True, capture_output=True)
    assert proc.returncode != 0, proc.stderr
    assert "commit blocked" in proc.stderr, proc.stderr
    assert f"simulated failure of git {subcommand}" in proc.stderr or \
        "cannot be read from git" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    # nothing was committed
    assert hooked.git("rev-list", "--count", "HEAD").stdout.strip() == "1"
    # the same commit with a working git is stopped by the checks themselves
    ok = hooked.git("commit", "-q", "-m", "checked", check=False)
    assert ok.returncode == 1 and "git rm --cached -q me.txt" in ok.stderr
