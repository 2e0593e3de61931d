"""The identity text given in DVC_SECURE_IDENTITY (CI secrets) stays in dvc-secure's own
processes: DVC stage commands and chained git hooks never inherit it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY, ENV_IDENTITY_FILE
from tests.conftest import SecureRepo

BIN = str(Path(sys.executable).parent)


def _secret_lines(identity: str) -> list[str]:
    lines = [ln.strip() for ln in identity.splitlines() if "SECRET" in ln.upper()]
    assert lines, "the identity has secret key lines"
    return lines


def _assert_no_identity(dump: str, identity: str) -> None:
    assert ENV_IDENTITY + "=" not in dump
    for line in _secret_lines(identity):
        assert line not in dump, "identity key material inherited by a child process"


def test_identity_in_environment_is_not_inherited_by_stage_commands_or_chained_hooks(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo: SecureRepo = make_secure_repo()
    identity = repo.identity_file.read_text()
    repo.env["PATH"] = BIN + os.pathsep + repo.env.get("PATH", "")
    # the user's own pre-commit hook, chained after dvc-secure's, dumps its environment
    hook_dump = tmp_path / "hook-env.txt"
    user_hook = repo.root / ".git" / "hooks" / "pre-commit"
    user_hook.write_text(f"#!/bin/sh\nenv > '{hook_dump}'\n")
    user_hook.chmod(0o755)
    repo.secure("install")
    # from now on the identity exists only as the environment variable (a CI secret)
    del repo.env[ENV_IDENTITY_FILE]
    repo.env[ENV_IDENTITY] = identity
    repo.env["DVC_SECURE_IDENTITY_FILE"] = str(tmp_path / "no-such-identity.txt")

    # a DVC stage command dumps its environment (a shell, not Python: nothing of ours runs)
    repo.dvc("stage", "add", "-q", "-n", "dump", "-o", "stage-env.txt",
             "env > stage-env.txt")
    repo.dvc("repro", "-q")
    _assert_no_identity((repo.root / "stage-env.txt").read_text(), identity)

    # DVC itself still uses the identity (taken into the process, not lost) ...
    (repo.root / "data").mkdir()
    (repo.root / "data" / "a.txt").write_text("rows\n")
    repo.dvc("add", "-q", "data")
    repo.dvc("push", "-q")
    # ... and so does dvc-secure's hook (it seals), while the chained hook does not see it
    repo.git("add", "-A")
    proc = repo.git("commit", "-q", "-m", "data")
    assert "sealed and staged" in proc.stderr, proc.stderr
    assert hook_dump.is_file(), "the chained user hook ran"
    _assert_no_identity(hook_dump.read_text(), identity)
