"""A repository without any commit is recognised from its files (the trust loader's first
use then skips pygit2, the audit event skips ``git rev-parse``): the check that says "no
commit" must never say so of a repository that has one (a keyring version in its history
would then be missed by the trust loader, a revision by the audit event)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pygit2
import pytest

from dvc_secure.adapters.git.unborn import without_commits
from dvc_secure.adapters.local import keyring_history as hist
from dvc_secure.services.audit_recorder import _head_revision


def _git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t",
           "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


def _pygit2_sees_a_commit(root: Path) -> bool:
    repo = pygit2.Repository(str(root))
    return not repo.head_is_unborn or any(True for _ in repo.references)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    _git(root, "init", "-q", "-b", "main")
    return root


def test_fresh_init_has_no_commit(repo: Path) -> None:
    assert without_commits(repo)
    assert without_commits(repo / "sub" / "dir")  # DVC in a sub directory
    assert not _pygit2_sees_a_commit(repo)
    assert hist.history_keyrings(repo) == {} and hist.head_keyring(repo) is None
    assert _head_revision(repo) is None


def test_a_commit_is_seen(repo: Path) -> None:
    (repo / "f").write_text("x", encoding="utf-8")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    assert not without_commits(repo)
    assert _head_revision(repo) == str(pygit2.Repository(str(repo)).head.target)


def test_git_dir_from_the_environment_is_left_to_git(repo: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q", "-b", "main")
    (other / "f").write_text("x", encoding="utf-8")
    _git(other, "add", "f")
    _git(other, "commit", "-q", "-m", "c")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert without_commits(repo)  # the files above repo: no commit there ...
    assert _head_revision(repo) == str(pygit2.Repository(str(other)).head.target)  # ... git's


def test_packed_refs_only_is_seen(repo: Path) -> None:
    (repo / "f").write_text("x", encoding="utf-8")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    _git(repo, "pack-refs", "--all")
    assert not any(files for _, _, files in os.walk(repo / ".git" / "refs"))
    assert not without_commits(repo)


def test_a_ref_on_another_branch_is_seen(repo: Path) -> None:
    (repo / "f").write_text("x", encoding="utf-8")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    _git(repo, "branch", "-m", "main", "other")
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/unborn")
    assert _pygit2_sees_a_commit(repo)
    assert not without_commits(repo)


def test_detached_head_is_seen(repo: Path) -> None:
    (repo / "f").write_text("x", encoding="utf-8")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    _git(repo, "checkout", "-q", "--detach")
    _git(repo, "branch", "-D", "main")
    assert not without_commits(repo)


def test_worktree_and_missing_git_are_left_to_pygit2(repo: Path, tmp_path: Path) -> None:
    (repo / "f").write_text("x", encoding="utf-8")
    _git(repo, "add", "f")
    _git(repo, "commit", "-q", "-m", "c")
    _git(repo, "worktree", "add", "-q", str(tmp_path / "wt"))
    assert not without_commits(tmp_path / "wt")
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    assert not without_commits(plain)


def test_a_linked_refs_folder_is_not_trusted_to_be_empty(repo: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".git" / "refs" / "remotes").symlink_to(elsewhere, target_is_directory=True)
    assert not without_commits(repo)
