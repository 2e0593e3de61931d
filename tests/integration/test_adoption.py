"""Adopting dvc-secure in a repository that already has DVC history: real git, real DVC,
real hooks. The history is built first with plain DVC (``dvc add`` + ``git commit`` +
plain ``dvc push``), then ``dvc-secure init`` adopts it."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import SecureRepo, run

BIN = str(Path(sys.executable).parent)
LEGACY_COMMITS = 4  # 'dvc init' + three dataset versions


def legacy_repo(tmp_path: Path, env: dict[str, str], name: str = "legacy") -> SecureRepo:
    """A plain DVC repository with history: three versions of ``data/`` pushed to a plain
    remote, no dvc-secure anywhere."""
    env = dict(env, PATH=BIN + os.pathsep + env.get("PATH", ""))
    env[ENV_IDENTITY_FILE] = str(tmp_path / f"{name}-identity.txt")
    repo = SecureRepo(root=tmp_path / name, storage=tmp_path / f"{name}-storage",
                      identity_file=tmp_path / f"{name}-identity.txt", env=env)
    repo.root.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.dvc("init", "-q")
    repo.dvc("remote", "add", "-d", "storage", str(repo.storage))
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "dvc init")
    for i in range(1, 4):
        (repo.root / "data").mkdir(exist_ok=True)
        (repo.root / "data" / "rows.csv").write_text("id\n" + "".join(f"{n}\n" for n in range(i)))
        repo.dvc("add", "-q", "data")
        repo.git("add", "-A")
        repo.git("commit", "-q", "-m", f"data v{i}")
        repo.dvc("push", "-q")
    return repo


def adopt(repo: SecureRepo, *flags: str) -> str:
    """keygen + init (sealing the existing outputs and installing the hooks) + the
    adoption commit through the hooks; returns init's stderr."""
    repo.secure("keygen")
    proc = repo.secure("init", "--remote", "storage", "--member-name", "alice",
                       "--seal-existing", "--install-hooks", *flags)
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "adopt dvc-secure")
    return proc.stderr


@pytest.fixture
def adopted(tmp_path: Path, isolated_env: dict[str, str]) -> SecureRepo:
    repo = legacy_repo(tmp_path, isolated_env)
    adopt(repo)
    return repo


def test_history_before_init_is_reported_not_failed(adopted: SecureRepo) -> None:
    proc = adopted.secure("verify", "--all-revisions", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"NOTE {LEGACY_COMMITS} revision(s) from before dvc-secure was adopted" in proc.stdout
    assert "verified: 1 revision(s), no findings" in proc.stdout
    junit = adopted.root.parent / "report.xml"
    doc = json.loads(adopted.secure("verify", "--all-revisions", "--json", "--junit",
                                    str(junit)).stdout)
    xml = junit.read_text()
    assert xml.count("<skipped") == LEGACY_COMMITS and 'failures="0"' in xml
    assert doc["verified"] is True and doc["findings"] == []
    assert len(doc["before_adoption"]) == LEGACY_COMMITS
    assert {n["code"] for n in doc["notices"]} == {"unsealed-before-adoption"}
    # the nightly job of docs/ci.md, remote level included
    assert adopted.secure("verify", "--all-revisions", "--remote", check=False).returncode == 0
    # a range that spans the adoption, and one wholly before it
    first = adopted.git("rev-list", "--max-parents=0", "HEAD").stdout.strip()
    assert adopted.secure("verify", "--rev", f"{first}..HEAD", check=False).returncode == 0
    assert adopted.secure("verify", "--rev", "HEAD~1", check=False).returncode == 0


def test_first_push_of_adopted_history_is_not_blocked(adopted: SecureRepo) -> None:
    bare = adopted.root.parent / "origin.git"
    run(["git", "init", "-q", "--bare", str(bare)], adopted.root.parent, adopted.env)
    adopted.git("remote", "add", "origin", str(bare))
    proc = adopted.git("push", "-u", "origin", "main", check=False)
    assert proc.returncode == 0, proc.stderr
    head = adopted.git("rev-parse", "HEAD").stdout
    assert run(["git", "rev-parse", "main"], bare, adopted.env).stdout == head
    # a later dataset change goes through both hooks as usual
    (adopted.root / "data" / "rows.csv").write_text("id\n42\n")
    adopted.dvc("add", "-q", "data")
    adopted.dvc("push", "-q")
    adopted.git("add", "-A")
    assert "sealed and staged" in adopted.git("commit", "-q", "-m", "v4").stderr
    assert adopted.git("push", "origin", "main", check=False).returncode == 0


def test_removing_the_keyring_after_adoption_is_a_failure(adopted: SecureRepo) -> None:
    policy = adopted.secure("policy-id").stdout.strip()
    adopted.git("rm", "-q", "-r", ".dvc/secure", "data.dvc.seal")
    skip = dict(adopted.env, DVC_SECURE_SKIP_HOOKS="1")
    run(["git", "commit", "-q", "-m", "un-adopt"], adopted.root, skip)
    proc = adopted.secure("verify", "--json", check=False)
    assert proc.returncode == 1, proc.stdout
    codes = {f["code"] for f in json.loads(proc.stdout)["findings"]}
    assert "keyring-removed" in codes
    assert adopted.secure("verify", "--all-revisions", check=False).returncode == 1
    # the same by resetting the branch to a pre-adoption commit and building on it
    adopted.git("checkout", "-q", "-b", "rewritten", "HEAD~2")
    (adopted.root / "notes.txt").write_text("no keyring here\n")
    adopted.git("add", "notes.txt")
    run(["git", "commit", "-q", "-m", "rewritten"], adopted.root, skip)
    proc = adopted.secure("verify", "--rev", "main~1..rewritten", check=False)
    assert proc.returncode == 1, proc.stdout
    assert "no dvc-secure history at all" in proc.stdout
    # alone it is just an old branch; with the root policy pinned (CI) it fails too
    assert adopted.secure("verify", "--rev", "rewritten", check=False).returncode == 0
    proc = adopted.secure("verify", "--rev", "rewritten", "--root-policy", policy, check=False)
    assert proc.returncode == 1 and "history has no keyring at all" in proc.stdout


def test_init_seals_existing_outputs_as_version_1(tmp_path: Path,
                                                   isolated_env: dict[str, str]) -> None:
    repo = legacy_repo(tmp_path, isolated_env)
    err = adopt(repo)
    assert "data.dvc.seal: sealed version 1" in err
    assert "git hooks installed" in err
    # the seal is in the adoption commit, and it is version 1 of the current data
    assert "data.dvc.seal" in repo.git("show", "--name-only", "--format=", "HEAD").stdout.split()
    log = repo.secure("log", "data").stdout
    assert [ln.split()[0] for ln in log.splitlines()[1:]] == ["1"]
    # its data went to the secure remote, pinned: the remote level verifies
    assert repo.secure("verify", "--remote", check=False).returncode == 0


def test_init_without_a_terminal_says_what_it_did_not_do(tmp_path: Path,
                                                         isolated_env: dict[str, str]) -> None:
    repo = legacy_repo(tmp_path, isolated_env)
    repo.secure("keygen")
    proc = repo.secure("init", "--remote", "storage", "--member-name", "alice")
    assert "dvc-secure init --seal-existing" in proc.stderr
    assert "dvc-secure install" in proc.stderr
    assert not (repo.root / "data.dvc.seal").exists()
    assert repo.git("config", "--local", "--get", "core.hooksPath", check=False).returncode != 0
