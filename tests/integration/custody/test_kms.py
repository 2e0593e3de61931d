"""A KMS-wrapped repository against a real KMS-protocol server (moto, loopback): push and
pull; denial by IAM (clear error, nothing written); a deleted key makes the data
unreadable; an existing repository starts requiring the KMS by a signed keyring change,
which an attacker with git push access cannot undo."""

from __future__ import annotations

import json
import sys
import urllib.request
from pathlib import Path

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import DVC_SECURE, SecureRepo, run
from tests.integration.backends.servers import Server
from tests.integration.secure_helpers import (
    MARKER,
    check_failed,
    dataset_files,
    files_under,
    wipe_cache_and_workspace,
    workspace_files,
)

from .conftest import new_kms_key
from .servers import OPEN_CREDENTIALS, client_env, run_watching_argv


def make_repo(tmp_path: Path, env: dict[str, str], kms: str | None) -> SecureRepo:
    """git + DVC repository, keyring (with ``--kms`` when given), the test dataset added and
    committed; nothing pushed."""
    root = tmp_path / "repo"
    root.mkdir()
    repo = SecureRepo(root=root, storage=tmp_path / "storage",
                      identity_file=tmp_path / "identity.txt",
                      env={**env, ENV_IDENTITY_FILE: str(tmp_path / "identity.txt")})
    repo.git("init", "-q")
    repo.dvc("init", "-q")
    repo.secure("keygen")
    repo.dvc("remote", "add", "storage", str(repo.storage))
    repo.secure("init", "--remote", "storage", "--member-name", "alice",
                *(["--kms", kms] if kms else []))
    for rel, content in dataset_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    repo.dvc("add", "data", "model.bin")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "data")
    return repo


def keyring_doc(repo: SecureRepo) -> dict:  # type: ignore[type-arg]
    return json.loads((repo.root / ".dvc" / "secure" / "keyring.json").read_text())


def unwrapped_secrets(repo: SecureRepo) -> list[bytes]:
    """The data keys of every epoch and the KMS secrets, as this test process derives them:
    raw, hex and base64."""
    import base64

    from dvc_secure.adapters.custody.registry import wrapper_for
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.keys.custody import kms_context
    from dvc_secure.core.keys.custody_fields import parse_epoch_kms

    keys = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env).get()
    ks = keys.keyset
    raw = [ks.key_for_epoch(e) for e in range(1, ks.current_epoch + 1)]
    for epoch in keys.keyring.epochs:
        if "kms" in epoch.unknown:
            provider, key, blob = parse_epoch_kms(epoch.unknown["kms"], epoch.number)
            raw.append(wrapper_for(provider).unwrap(
                key, blob, kms_context(keys.keyring.keyring_id, epoch.number)))
    return [form for s in raw for form in (s, s.hex().encode(), base64.b64encode(s))]


def test_kms_wrapped_push_pull(tmp_path: Path, isolated_env: dict[str, str],
                               kms_server: Server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _key_id, alias = new_kms_key(kms_server)
    env = {**isolated_env, **client_env(kms_server, OPEN_CREDENTIALS)}
    repo = make_repo(tmp_path, env, f"aws-kms://{alias}")
    signed = keyring_doc(repo)["signed"]
    assert signed["version"] == 2
    assert signed["kms"] == {"provider": "aws-kms", "key": alias}
    assert signed["epochs"][0]["kms"]["key"] == alias

    push = repo.dvc("push")
    stored = b"".join(p.read_bytes() for p in files_under(repo.storage))
    assert MARKER not in stored
    wipe_cache_and_workspace(repo)
    pull = repo.dvc("pull")
    assert workspace_files(repo) == dataset_files()

    # no unwrapped key in any file, nor in what the commands printed
    from dvc_secure.adapters.custody.registry import forget_unwrapped

    for var, value in env.items():
        monkeypatch.setenv(var, value)
    try:
        secrets = unwrapped_secrets(repo)
    finally:
        forget_unwrapped()  # this process's KMS client points at this test's server
    assert len(secrets) == 6  # epoch 1's data key and KMS secret, three forms each
    for path in files_under(tmp_path):
        if path.is_file() and path.stat().st_size < 50 << 20:
            text = path.read_bytes()
            for s in secrets:
                assert s not in text, f"key material in {path}"
    for out in (push.stdout + push.stderr, pull.stdout + pull.stderr):
        assert not any(s in out.encode() for s in secrets)
    # nor in any process's arguments while a pull runs
    wipe_cache_and_workspace(repo)
    code, out, samples = run_watching_argv(
        [sys.executable, "-m", "dvc", "pull"], repo.root, repo.env,
        [f for f in secrets if len(f) > 32])
    assert code == 0 and samples > 0, out
    assert workspace_files(repo) == dataset_files()


def test_iam_denial_is_clear_and_writes_nothing(tmp_path: Path, isolated_env: dict[str, str],
                                                kms_iam_server: Server) -> None:
    admin, outsider = kms_iam_server.info["admin"], kms_iam_server.info["outsider"]
    _key_id, alias = new_kms_key(kms_iam_server, admin)
    repo = make_repo(tmp_path, {**isolated_env, **client_env(kms_iam_server, admin)},
                     f"aws-kms://{alias}")
    repo.dvc("push")
    wipe_cache_and_workspace(repo)

    # the same member identity, but IAM credentials without kms:Decrypt
    repo.env.update(client_env(kms_iam_server, outsider))
    text = check_failed(repo.dvc("pull", check=False), "AWS KMS refused", alias)
    assert "kms:Decrypt" in text
    assert workspace_files(repo) == {}
    assert files_under(repo.root / ".dvc" / "cache" / "files") == []

    # full KMS permission but no member identity: still nothing
    stranger = {**repo.env, **client_env(kms_iam_server, admin),
                ENV_IDENTITY_FILE: str(tmp_path / "stranger.txt")}
    run([*DVC_SECURE, "keygen"], repo.root, stranger)
    check_failed(run([sys.executable, "-m", "dvc", "pull"], repo.root, stranger, check=False),
                 "not a member")
    assert workspace_files(repo) == {}

    repo.env.update(client_env(kms_iam_server, admin))  # access restored centrally by IAM
    repo.dvc("pull")
    assert workspace_files(repo) == dataset_files()

    # init --kms without kms:Encrypt: refused before anything is written (no keyring, no remote)
    other = tmp_path / "other"
    other.mkdir()
    env = {**repo.env, **client_env(kms_iam_server, outsider)}
    run(["git", "init", "-q"], other, env)
    run([sys.executable, "-m", "dvc", "init", "-q"], other, env)
    run([sys.executable, "-m", "dvc", "remote", "add", "storage", str(tmp_path / "s2")], other, env)
    config = (other / ".dvc" / "config").read_text()
    check_failed(run([*DVC_SECURE, "init", "--remote", "storage", "--kms", f"aws-kms://{alias}"],
                     other, env, check=False), "AWS KMS refused to encrypt", "kms:Encrypt")
    assert not (other / ".dvc" / "secure").exists()
    assert (other / ".dvc" / "config").read_text() == config


def test_deleted_kms_key_makes_data_unreadable(tmp_path: Path, isolated_env: dict[str, str],
                                               tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    # a server of its own: deleting means resetting it (moto keeps keys pending deletion usable)
    from .servers import moto_available, require, start_kms

    if not moto_available():
        require("moto's server is not installed (pip install 'moto[server]' boto3)")
    server = start_kms(tmp_path_factory.mktemp("kms-delete"), enforce_iam=False)
    try:
        _key_id, alias = new_kms_key(server)
        repo = make_repo(tmp_path, {**isolated_env, **client_env(server, OPEN_CREDENTIALS)},
                         f"aws-kms://{alias}")
        repo.dvc("push")
        wipe_cache_and_workspace(repo)
        req = urllib.request.Request(f"{server.endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).close()  # the key is gone, as after deletion
        check_failed(repo.dvc("pull", check=False), "AWS KMS refused", "does not exist")
        assert workspace_files(repo) == {}
    finally:
        server.stop()


def test_existing_repo_requires_kms_by_signed_change(tmp_path: Path, isolated_env: dict[str, str],
                                                     kms_server: Server) -> None:
    _key_id, alias = new_kms_key(kms_server)
    env = {**isolated_env, **client_env(kms_server, OPEN_CREDENTIALS)}
    repo = make_repo(tmp_path, env, None)
    repo.dvc("push")
    assert keyring_doc(repo)["signed"]["version"] == 1
    out = repo.secure("rotate", "--kms", f"aws-kms://{alias}")
    assert alias in out.stdout + out.stderr
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "require KMS")
    doc = keyring_doc(repo)
    assert doc["signed"]["version"] == 2 and doc["signed"]["current_epoch"] == 2
    assert "kms" not in doc["signed"]["epochs"][0] and "kms" in doc["signed"]["epochs"][1]

    (repo.root / "more.txt").write_bytes(MARKER + b" after the KMS requirement\n")
    repo.dvc("add", "more.txt")
    repo.dvc("push")
    wipe_cache_and_workspace(repo)
    (repo.root / "more.txt").unlink()
    repo.dvc("pull")  # epoch 1 (member key only) and epoch 2 (member + KMS) objects
    assert workspace_files(repo) == dataset_files()
    assert (repo.root / "more.txt").read_bytes().startswith(MARKER)

    # a git-push attacker drops the requirement: the admins' signatures no longer verify
    del doc["signed"]["kms"]
    (repo.root / ".dvc" / "secure" / "keyring.json").write_text(json.dumps(doc))
    repo.git("commit", "-q", "-am", "drop the KMS requirement")
    check_failed(repo.dvc("push", check=False), "keyring")
