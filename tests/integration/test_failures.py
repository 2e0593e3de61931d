"""Attacks and failures the secure remote stops, through the real `dvc` CLI.

Each test is named after what it stops. For every failure: the exit code is non-zero, stderr
says what is wrong in words a user can act on, no key material is printed, and nothing
unauthenticated reaches the DVC cache or the workspace.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import (
    TRACKED,
    assert_no_key_material,
    check_failed,
    dataset_files,
    files_under,
    object_ids,
    object_rel,
    secrets_of,
    storage_path,
    wipe_cache_and_workspace,
    workspace_files,
)

SEGMENT = 1 << 20


def assert_nothing_written(repo: SecureRepo) -> None:
    cache = repo.root / ".dvc" / "cache"
    assert files_under(cache) == [], f"files reached the cache: {files_under(cache)}"
    assert_workspace_empty(repo)


def assert_workspace_empty(repo: SecureRepo) -> None:
    assert workspace_files(repo) == {}
    for rel in TRACKED:
        assert files_under(repo.root / rel) == []
    assert not [p for p in repo.root.rglob("*") if ".dvcsecure-partial-" in p.name]


def assert_cache_sound(repo: SecureRepo, absent: str) -> None:
    """Every cached object is what its name says (no bad data), and ``absent`` is not there."""
    md5_dir = repo.root / ".dvc" / "cache" / "files" / "md5"
    for path in files_under(md5_dir):
        oid = path.parent.name + path.name
        data = path.read_bytes()
        if oid.endswith(".dir"):
            json.loads(data)
        else:
            assert hashlib.md5(data).hexdigest() == oid, f"bad data cached as {oid}"
    assert not (md5_dir / absent[:2] / absent[2:]).exists()
    assert_workspace_empty(repo)


def pull_fails(repo: SecureRepo, *phrases: str, env: dict[str, str] | None = None,
               secrets: list[str] | None = None) -> str:
    proc = run([*DVC, "pull"], repo.root, env or repo.env, check=False)
    text = check_failed(proc, *phrases)
    assert_no_key_material(text, secrets if secrets is not None else secrets_of(repo))
    return text


# --- keys -----------------------------------------------------------------------------------


def test_missing_identity_cannot_pull_and_is_told_to_run_keygen(
        pushed_repo: SecureRepo, tmp_path: Path) -> None:
    repo = pushed_repo
    secrets = secrets_of(repo)
    wipe_cache_and_workspace(repo)
    empty = tmp_path / "empty-config"
    empty.mkdir()
    env = {k: v for k, v in repo.env.items() if k != ENV_IDENTITY_FILE}
    env["XDG_CONFIG_HOME"] = str(empty)
    text = pull_fails(repo, "no identity found", "dvc-secure keygen", env=env, secrets=secrets)
    assert text.lower().count("no identity found") == 1, text
    assert_nothing_written(repo)

    # the other commands that open the remote say the same, as a DVC error (not "unexpected")
    for command in (["push"], ["status", "-c"]):
        proc = run([*DVC, *command], repo.root, env, check=False)
        assert proc.returncode == 1, (command, proc.stderr)
        text = check_failed(proc, "no identity found", "dvc-secure keygen")
        assert "unexpected error" not in text
        assert_no_key_material(text, secrets)


def test_identity_not_in_keyring_cannot_pull_and_is_told_the_epoch_and_grant(
        pushed_repo: SecureRepo, tmp_path: Path) -> None:
    repo = pushed_repo
    stranger = tmp_path / "stranger.txt"
    env = {**repo.env, ENV_IDENTITY_FILE: str(stranger)}
    run([*DVC_SECURE, "keygen"], repo.root, env)
    secrets = secrets_of(repo)
    secrets += [ln for ln in stranger.read_text().splitlines() if not ln.startswith("#")]
    wipe_cache_and_workspace(repo)
    pull_fails(repo, "not a member", "epoch 1", "grant", str(stranger), env=env,
               secrets=secrets)
    assert_nothing_written(repo)
    proc = run([*DVC, "status", "-c"], repo.root, env, check=False)
    assert proc.returncode == 1, proc.stderr
    text = check_failed(proc, "not a member", "epoch 1", "grant")
    assert "unexpected error" not in text
    assert_no_key_material(text, secrets)


def _add_reader(repo: SecureRepo, reader_file: Path) -> None:
    """What an admin's grant does: a new policy version with a reader, signed by the admin."""
    from dvc_secure.adapters.local.identity_store import save_identity
    from dvc_secure.adapters.local.repo_keyring import load_keyring, save_keyring
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.cli.main import _now
    from dvc_secure.core.keys.identity import Identity
    from dvc_secure.core.keys.keyring import Member

    dvc_dir = repo.root / ".dvc"
    admin = LazyRepoKeys(str(dvc_dir), env=repo.env).get()
    reader = Identity(encryption=Identity.generate().encryption, signing=None)
    save_identity(reader, reader_file, _now())
    ring = load_keyring(dvc_dir).successor()
    ring.members.append(Member(name="bob", recipient=reader.recipient, role="reader",
                               added=_now()))
    for epoch in ring.epochs:
        secret = admin.keyset.data_keys[epoch.number] + admin.keyset.name_secret
        epoch.stanzas.append(ring.wrap_to(reader.recipient, epoch.number, secret))
    assert admin.identity.signing is not None
    ring.sign(admin.identity.signing)
    save_keyring(dvc_dir, ring)


def test_reader_identity_can_pull_but_cannot_push(pushed_repo: SecureRepo,
                                                   tmp_path: Path) -> None:
    repo = pushed_repo
    reader_file = tmp_path / "reader.txt"
    _add_reader(repo, reader_file)
    env = {**repo.env, ENV_IDENTITY_FILE: str(reader_file)}
    secrets = secrets_of(repo) + secrets_of(repo, identity_file=reader_file)

    wipe_cache_and_workspace(repo)
    run([*DVC, "pull", "-q"], repo.root, env)
    assert workspace_files(repo) == dataset_files()

    before = {p: p.read_bytes() for p in files_under(repo.storage)}
    (repo.root / "notes.txt").write_text("a reader's edit\n")
    run([*DVC, "add", "-q", "notes.txt"], repo.root, env)
    proc = run([*DVC, "push"], repo.root, env, check=False)
    text = check_failed(proc, "may not push", "role: reader", "--role writer")
    assert_no_key_material(text, secrets)
    assert {p: p.read_bytes() for p in files_under(repo.storage)} == before


# --- tampered storage -------------------------------------------------------------------------


def test_flipped_byte_in_stored_object_fails_authentication(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    big = object_ids(repo)["data/big.bin"]
    path = storage_path(repo, big)
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    path.write_bytes(bytes(blob))
    wipe_cache_and_workspace(repo)
    pull_fails(repo, "failed authentication", object_rel(big), "verify --remote")
    assert_cache_sound(repo, absent=big)


def test_object_cut_at_segment_boundary_fails_as_truncated(pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    big = object_ids(repo)["data/big.bin"]
    path = storage_path(repo, big)
    blob = path.read_bytes()
    assert len(blob) > 2 * (SEGMENT + 16)
    path.write_bytes(blob[: 78 + 2 * (SEGMENT + 16)])  # header + two full segments
    wipe_cache_and_workspace(repo)
    pull_fails(repo, "is truncated", object_rel(big), "re-push")
    assert_cache_sound(repo, absent=big)


def test_object_missing_its_last_bytes_is_rejected(pushed_repo: SecureRepo) -> None:
    # A cut inside the final segment cannot be told apart from corruption of that segment
    # (AEAD): it fails authentication. (A cut at a segment boundary: see the test above.)
    repo = pushed_repo
    big = object_ids(repo)["data/big.bin"]
    path = storage_path(repo, big)
    path.write_bytes(path.read_bytes()[:-100])
    wipe_cache_and_workspace(repo)
    pull_fails(repo, "segment 2 failed authentication", object_rel(big))
    assert_cache_sound(repo, absent=big)


def test_object_swapped_onto_another_name_fails_header_authentication(
        pushed_repo: SecureRepo) -> None:
    repo = pushed_repo
    ids = object_ids(repo)
    victim = ids["model.bin"]
    storage_path(repo, victim).write_bytes(storage_path(repo, ids["data/a.txt"]).read_bytes())
    wipe_cache_and_workspace(repo)
    pull_fails(repo, "does not authenticate", "swapped", object_rel(victim))
    assert_cache_sound(repo, absent=victim)


def test_validly_encrypted_replacement_without_writer_key_is_untrusted(
        pushed_repo: SecureRepo) -> None:
    """Someone who can decrypt (holds the data key) and write to the storage, but holds no
    writer signing key, replaces model.bin with other content, encrypted correctly."""
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.format.object_format import EncryptingReader
    from dvc_secure.core.format.primitives import SigningKeyPair

    repo = pushed_repo
    victim = object_ids(repo)["model.bin"]
    keys = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env).get()
    epoch = keys.keyset.current_epoch
    forged = b"poisoned weights " * 1000
    reader = EncryptingReader(io.BytesIO(forged), data_key=keys.keyset.key_for_epoch(epoch),
                              epoch=epoch, object_id=object_rel(victim).encode(),
                              signer=SigningKeyPair.generate())
    storage_path(repo, victim).write_bytes(reader.read())
    reader.close()

    wipe_cache_and_workspace(repo)
    pull_fails(repo, "not a writer", object_rel(victim))
    assert_cache_sound(repo, absent=victim)
    for path in files_under(repo.root):
        if ".git" not in path.parts:
            assert b"poisoned weights" not in path.read_bytes(), path


# --- interrupted pushes -----------------------------------------------------------------------

_STALLING_PUSH = """
import os, sys, time
from dvc_secure.adapters.dvc import transfer_streams

original = transfer_streams.ProgressSource.read
marker = sys.argv[1]

def read(self, n=-1):
    data = original(self, n)
    self.sent = getattr(self, "sent", 0) + len(data)
    if self.sent > 1536 * 1024:  # inside data/big.bin, the only file above 1.5 MiB
        open(marker, "w").close()
        time.sleep(600)
    return data

transfer_streams.ProgressSource.read = read
from dvc.cli import main
sys.exit(main(["push"]))
"""


def test_push_killed_mid_upload_leaves_nothing_a_pull_accepts_and_push_resumes(
        dataset_repo: SecureRepo, tmp_path: Path) -> None:
    repo = dataset_repo
    big = object_ids(repo)["data/big.bin"]
    marker = tmp_path / "mid-upload"
    proc = subprocess.Popen([sys.executable, "-c", _STALLING_PUSH, str(marker)], cwd=repo.root,
                            env=repo.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "dvc push ended before it reached data/big.bin"
            assert time.monotonic() < deadline, "dvc push never reached data/big.bin"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()

    assert not storage_path(repo, big).exists()
    names = {storage_path(repo, oid) for oid in object_ids(repo).values()}
    leftovers = [p for p in files_under(repo.storage) if p not in names]
    assert leftovers, "the killed upload left nothing behind: was it killed mid-upload?"
    # what the killed upload left behind is not taken for data/big.bin (or anything else)
    status = repo.dvc("status", "-c").stdout
    assert "in sync" not in status and "data" in status, status

    pushed = repo.dvc("push").stdout
    assert "pushed" in pushed and "Everything is up to date" not in pushed, pushed
    assert storage_path(repo, big).is_file()
    wipe_cache_and_workspace(repo)
    repo.dvc("pull", "-q")
    assert workspace_files(repo) == dataset_files()


class _FailingSource(io.RawIOBase):
    """A plaintext source whose disk dies after ``limit`` bytes."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._data = io.BytesIO(data)
        self._limit = limit
        self._sent = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self._sent >= self._limit:
            raise OSError("disk read error")
        chunk = self._data.read(min(n if n >= 0 else self._limit, self._limit - self._sent))
        self._sent += len(chunk)
        return chunk


@pytest.mark.parametrize("size_known", [True, False], ids=["put_file", "upload_fobj"])
def test_source_failing_mid_stream_leaves_no_object_on_a_non_atomic_store(
        pushed_repo: SecureRepo, size_known: bool) -> None:
    """DVC's memory filesystem keeps what was written when a write fails (like SFTP does):
    the secure layer must remove the partial object, or a later push would skip it."""
    from dvc_objects.fs.memory import MemoryFileSystem

    from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys

    repo = pushed_repo
    inner = MemoryFileSystem(global_store=False)
    root = f"/store-{uuid.uuid4().hex}"
    fs = SecureFsspec(inner=inner, inner_root=root,
                      keys=LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env))
    payload = random.Random(3).randbytes(3 * SEGMENT)
    rel = "files/md5/ab/" + "c" * 30

    with pytest.raises(OSError, match="disk read error"):
        fs.upload_stream(_FailingSource(payload, 2 * SEGMENT + 5), rel,
                         size=len(payload) if size_known else None)
    assert not fs.exists(rel)
    assert list(inner.find(root)) == []

    fs.upload_stream(io.BytesIO(payload), rel, size=len(payload) if size_known else None)
    with fs.open(rel, "rb") as f:
        assert f.read() == payload


# --- unsafe remote URLs -----------------------------------------------------------------------


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if ".git" not in p.parts and "tmp" not in p.relative_to(root).parts[:2]}


@pytest.mark.parametrize("url", ["secure:///x", "secure:x"])
def test_secure_url_without_remote_name_is_refused_and_never_a_local_path(
        pushed_repo: SecureRepo, url: str) -> None:
    repo = pushed_repo
    assert not Path("/x").exists()
    before = _tree(repo.root)
    secrets = secrets_of(repo)
    proc = repo.dvc("remote", "add", "bad", url, check=False)
    assert_no_key_material(check_failed(proc, "has no remote name", "secure://<remote-name>"),
                           secrets)
    assert "bad" not in (repo.root / ".dvc" / "config").read_text()

    # written into the config by hand: every command refuses the config, push included
    with (repo.root / ".dvc" / "config").open("a") as f:
        f.write(f"['remote \"bad\"']\n    url = {url}\n")
    proc = repo.dvc("push", "-r", "bad", check=False)
    assert_no_key_material(check_failed(proc, "has no remote name", "plaintext"), secrets)
    assert not Path("/x").exists()
    assert _tree(repo.root) == before
