"""Rough edges (issue 15.5), each test named after the failure it prevents. Real `dvc`,
real `dvc-secure`, real git."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dvc_secure import errors
from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import object_ids, storage_path, wipe_cache_and_workspace


def test_tampered_object_on_pull_is_a_dvc_error_not_an_unexpected_one(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    big = object_ids(repo)["data/big.bin"]
    path = storage_path(repo, big)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    wipe_cache_and_workspace(repo)
    proc = repo.dvc("pull", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "failed authentication" in text and "failed to" in text
    assert "unexpected error" not in text.lower()
    cached = repo.root / ".dvc" / "cache" / "files" / "md5" / big[:2] / big[2:]
    assert not cached.exists()  # nothing of the rejected object reached the cache
    assert not (repo.root / "data" / "big.bin").exists()


def test_init_with_a_mistyped_remote_creates_no_keyring(tmp_path: Path,
                                                        isolated_env: dict[str, str]) -> None:
    env = dict(isolated_env, **{ENV_IDENTITY_FILE: str(tmp_path / "id.txt")})
    root = tmp_path / "repo"
    root.mkdir()
    run(["git", "init", "-q"], root, env)
    run([*DVC, "init", "-q"], root, env)
    run([*DVC_SECURE, "keygen"], root, env)
    run([*DVC, "remote", "add", "storage", str(tmp_path / "s")], root, env)
    proc = run([*DVC_SECURE, "init", "--remote", "storgae"], root, env, check=False)
    assert proc.returncode == 2
    assert "'storgae' does not exist" in proc.stderr and "hint:" in proc.stderr
    assert not (root / ".dvc" / "secure").exists()
    # and the corrected command works on the untouched repository
    run([*DVC_SECURE, "init", "--remote", "storage"], root, env)


def test_whoami_into_a_closed_pipe_prints_no_traceback(make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    read, write = os.pipe()
    os.close(read)  # the reader is gone before anything is written ('| head -1' did exit)
    try:
        proc = subprocess.run([*DVC_SECURE, "whoami"], cwd=repo.root, env=repo.env,
                              stdout=write, stderr=subprocess.PIPE, text=True)
    finally:
        os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 141  # what a process killed by SIGPIPE reports
    # through a real shell pipe too
    shell = subprocess.run(f"{sys.executable} -m dvc_secure.cli.main whoami | head -1",
                           shell=True, cwd=repo.root, env=repo.env, capture_output=True,
                           text=True)
    assert shell.stdout.startswith("identity: ") and "Traceback" not in shell.stderr


def test_verify_with_a_root_policy_that_is_not_a_digest_is_a_usage_error(
        make_secure_repo) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    proc = repo.secure("verify", "--root-policy", "xyz", check=False)
    assert proc.returncode == 2
    assert "64 hex digits" in proc.stderr and "dvc-secure policy-id" in proc.stderr
    assert repo.secure("verify", "--as-of", "31.12.2030", check=False).returncode == 2


def test_identity_path_that_is_a_directory_is_not_told_to_chmod(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    folder = tmp_path / "identities"
    folder.mkdir()
    env = dict(repo.env, **{ENV_IDENTITY_FILE: str(folder)})
    proc = run([*DVC_SECURE, "whoami"], repo.root, env, check=False)
    assert proc.returncode == 2
    assert "is a directory" in proc.stderr and "chmod" not in proc.stderr
    passphrase = dict(repo.env, DVC_SECURE_PASSPHRASE_FILE=str(folder))
    ident = tmp_path / "protected.txt"
    proc = run([*DVC_SECURE, "keygen", "--passphrase", "--output", str(ident)], repo.root,
               passphrase, check=False)
    assert proc.returncode == 2 and "chmod" not in proc.stderr, proc.stderr
    assert "is a directory" in proc.stderr


def test_reencrypt_in_ci_logs_prints_a_summary_not_a_line_per_object(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    repo.secure("seal")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "sealed")
    proc = repo.secure("rotate", "--reencrypt")  # stderr is a pipe here, as in CI
    assert "re-encrypting" not in proc.stderr, proc.stderr
    assert "re-encrypted:" in proc.stdout


def test_changing_hide_names_on_a_remote_with_objects_does_not_write_a_second_copy(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo

    def objects() -> list[Path]:  # stored data objects (not the audit log's events)
        return [p for p in repo.stored_objects() if "dvc-secure" not in p.parts]

    before = objects()
    repo.dvc("remote", "modify", "vault", "hide_names", "false")
    pinned = repo.dvc("push", check=False)  # a pinned repository: the signed pin refuses it
    assert pinned.returncode == 1 and "signed remote policy" in pinned.stderr
    repo.secure("remote-policy", "--update")  # an admin signs the change: the naming check
    (repo.root / "more.txt").write_bytes(b"more\n")
    repo.dvc("add", "-q", "more.txt")
    proc = repo.dvc("push", check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "hide_names" in text and "dvc remote modify" in text
    assert "unexpected error" not in text.lower()
    assert objects() == before  # nothing written under the other names
    # set back, the push works
    repo.dvc("remote", "modify", "vault", "hide_names", "true")
    repo.secure("remote-policy", "--update")
    repo.dvc("push", "-q")


ERROR_CLASSES = [cls for _, cls in inspect.getmembers(errors, inspect.isclass)
                 if issubclass(cls, errors.DvcSecureError) and cls.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_prints_a_hint(cls: type[errors.DvcSecureError]) -> None:
    text = str(cls("something went wrong"))
    first, _, rest = text.partition("\n")
    assert first == "something went wrong"
    assert rest.startswith("  hint: ") and len(rest) > len("  hint: ") + 10
    assert str(cls("x", hint="do this")).endswith("\n  hint: do this")


def test_garbage_identity_invalid_keyring_and_sidecar_json_print_a_hint(
        make_secure_repo, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    repo = make_secure_repo()
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("this is not an identity\n")
    garbage.chmod(0o600)
    cases: list[tuple[list[str], dict[str, str]]] = [
        (["whoami"], dict(repo.env, **{ENV_IDENTITY_FILE: str(garbage)}))]
    (repo.root / "data.dvc").write_text("outs:\n- md5: 0123456789abcdef0123456789abcdef\n"
                                        "  path: data\n")
    (repo.root / "data.dvc.seal").write_text("{not json")
    cases.append((["log", "data"], repo.env))
    cases.append((["seal", "data.dvc", "--offline"], repo.env))
    keyring = repo.root / ".dvc" / "secure" / "keyring.json"
    cases.append((["members"], repo.env))
    for args, env in cases:
        if args == ["members"]:
            keyring.write_text("{not json")
        proc = run([*DVC_SECURE, *args], repo.root, env, check=False)
        assert proc.returncode in (1, 2), (args, proc.stderr)
        assert "Traceback" not in proc.stderr, (args, proc.stderr)
        assert "\n  hint: " in proc.stderr, (args, proc.stderr)


def test_dvc_get_from_outside_a_repository_writes_nothing_at_the_filesystem_root(
        pushed_repo: SecureRepo, tmp_path: Path) -> None:
    journal = Path("/.dvc/tmp/secure/pushed.sqlite")
    existed = journal.exists()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    proc = run([*DVC, "get", pushed_repo.root.as_uri(), "model.bin", "-o", "model.bin"], outside,
               pushed_repo.env, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text
    assert "outside a DVC repository on this machine" in text and "git clone" in text
    assert "unexpected error" not in text.lower()
    if not existed:  # (another process on this machine may have made it before)
        assert not journal.exists()
        assert not Path("/.dvc").exists()
