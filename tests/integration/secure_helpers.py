"""Helpers for the push/pull, failure and registration tests (fixtures: conftest.py)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

import yaml

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE
from tests.conftest import SecureRepo

MARKER = b"TOP-SECRET-PLAINTEXT-MARKER-7d1f"
TRACKED = ("data", "model.bin")


def dataset_files() -> dict[str, bytes]:
    """Workspace path -> content of the test dataset (deterministic)."""
    rnd = random.Random(20240611)
    return {
        "data/a.txt": MARKER + b" the quick brown fox\n" * 40,
        "data/nested/deeper/b.bin": rnd.randbytes(3000),
        "data/nested/deeper/c.csv": b"id,label\n" + b"".join(
            f"{i},{MARKER.decode()}-{i}\n".encode() for i in range(200)),
        "data/nested/empty.txt": b"",
        "data/big.bin": rnd.randbytes(2 * (1 << 20) + 512 * 1024),  # 3 segments of 1 MiB
        "model.bin": MARKER + rnd.randbytes(100_000),
    }


def workspace_files(repo: SecureRepo) -> dict[str, bytes]:
    """Content of the tracked dataset files as they are in the workspace now."""
    out = {}
    for rel in dataset_files():
        path = repo.root / rel
        if path.is_file():
            out[rel] = path.read_bytes()
    return out


def wipe_cache_and_workspace(repo: SecureRepo) -> None:
    shutil.rmtree(repo.root / ".dvc" / "cache", ignore_errors=True)
    for rel in TRACKED:
        path = repo.root / rel
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.exists() else []


def object_ids(repo: SecureRepo) -> dict[str, str]:
    """Workspace path (or ``<dir>/`` for a directory's listing) -> DVC md5 object id, read
    from the committed .dvc files and the cached ``.dir`` listings."""
    ids: dict[str, str] = {}
    for rel in TRACKED:
        meta = yaml.safe_load((repo.root / f"{rel}.dvc").read_text())
        oid = meta["outs"][0]["md5"]
        if oid.endswith(".dir"):
            ids[rel + "/"] = oid
            listing = repo.root / ".dvc" / "cache" / "files" / "md5" / oid[:2] / oid[2:]
            for entry in json.loads(listing.read_text()):
                ids[f"{rel}/{entry['relpath']}"] = entry["md5"]
        else:
            ids[rel] = oid
    return ids


def object_rel(oid: str) -> str:
    """DVC's path of an object in a remote (what secure:// encrypts and names)."""
    return f"files/md5/{oid[:2]}/{oid[2:]}"


def storage_path(repo: SecureRepo, oid: str, hide_names: bool = True,
                 wraps: str = "storage", storage: Path | None = None) -> Path:
    """Where object ``oid`` lies in the wrapped storage ``wraps`` (at ``storage``, default
    ``repo.storage``), computed with the name key of the secure remote the signed policy pins
    on it (docs/spec/hidden-names.md §1)."""
    store = repo.storage if storage is None else storage
    if not hide_names:
        return store / object_rel(oid)
    from dvc_secure.adapters.dvc.hidden_naming import Namer, naming_in
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys

    lazy = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env)
    namer = Namer(naming_in(lazy.get().keyring.remotes, wraps, ""), lazy)
    return store / namer.hidden(object_rel(oid))


def hidden_rel(repo: SecureRepo, rel: str, wraps: str = "storage") -> str:
    """The storage name of DVC path ``rel`` on the secure remote pinned on ``wraps``."""
    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
    from dvc_secure.core.format.names import hide_name

    key, scheme = LazyRepoKeys(str(repo.root / ".dvc"), env=repo.env).get().remote_names(wraps)
    return hide_name(key, rel, scheme)


def hidden_rel_with(remotes: Any, name_secret: bytes, rel: str, wraps: str = "storage") -> str:
    """The same, from a keyring's pinned ``remotes`` and a name secret (e.g. a removed
    member's, from an old keyring)."""
    from dvc_secure.core.format.names import (
        NAMES_V1,
        derive_name_key,
        derive_remote_name_key,
        hide_name,
    )

    pin = next((p for p in remotes.secure if p.wraps == wraps), None) if remotes else None
    if pin is None or pin.names is None:
        return hide_name(derive_name_key(name_secret), rel, NAMES_V1)
    return hide_name(derive_remote_name_key(name_secret, pin.names.id_bytes), rel,
                     pin.names.scheme)


def secrets_of(repo: SecureRepo, identity_file: Path | None = None) -> list[str]:
    """Every textual form of key material the repository's identity gives access to."""
    import base64

    from dvc_secure.adapters.local.repo_keys import LazyRepoKeys

    ident = identity_file or repo.identity_file
    lines = [ln.strip() for ln in ident.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    env = {**repo.env, ENV_IDENTITY_FILE: str(repo.identity_file)}
    keys = LazyRepoKeys(str(repo.root / ".dvc"), env=env).get()
    raw = [*keys.keyset.data_keys.values(), keys.keyset.name_secret, keys.name_key]
    if keys.identity.signing is not None:
        raw.append(keys.identity.signing.private)
    raw.append(keys.identity.encryption.private)
    forms = list(lines)
    for secret in raw:
        forms += [secret.hex(), base64.b64encode(secret).decode(), repr(secret)[2:-1]]
    # bech32 secret keys print case-insensitively; their data part is what matters
    forms += [ln.split("1", 1)[1].lower() for ln in lines if "1" in ln]
    return forms


def assert_no_key_material(output: str, secrets: list[str]) -> None:
    low = output.lower()
    for secret in secrets:
        assert secret.lower() not in low, "key material appears in the output"


def check_failed(proc, *phrases: str) -> str:  # type: ignore[no-untyped-def]
    """A failed command whose stderr says every one of ``phrases`` (case-insensitive)."""
    assert proc.returncode != 0, f"expected failure\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    text = proc.stderr + proc.stdout
    for phrase in phrases:
        assert phrase.lower() in text.lower(), f"{phrase!r} not in output:\n{text}"
    assert "Traceback" not in text, text
    return text



def run_in_pty(cmd: list[str], cwd: Path, env: dict[str, str],
               timeout: float = 180) -> tuple[int, str]:
    """Run ``cmd`` with a pseudo-terminal as stdin/stdout/stderr (DVC draws progress bars
    only on a terminal); returns (exit code, everything it printed)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import subprocess
    import termios
    import time

    master, slave = pty.openpty()
    # a terminal of 40 x 120 (a fresh pty is 0 x 0, on which tqdm draws nothing)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, cwd=cwd, env={**env, "TERM": "xterm", "COLUMNS": "120"},
                            stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return rc, b"".join(chunks).decode(errors="replace")


FAKETIME_LIB = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def days_later(env: dict[str, str], days: int) -> dict[str, str]:
    """``env`` for a process whose clock runs ``days`` ahead (Debian's libfaketime, real
    clock reads faked for the process and its children)."""
    import pytest

    if not FAKETIME_LIB.is_file():
        if os.environ.get("CI"):  # .ci/run installs it (ci/servers/install.sh): never skip there
            pytest.fail("libfaketime is missing in CI (ci/servers/install.sh installs it)")
        pytest.skip("libfaketime is not installed (apt-get install faketime)")
    return {**env, "LD_PRELOAD": str(FAKETIME_LIB), "FAKETIME": f"{days:+d}d",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1", "FAKETIME_NO_CACHE": "1"}


# run as `python -c` with dvc-secure's arguments: Ctrl-C (KeyboardInterrupt) after the
# first re-encrypted object, at a point the test controls
INTERRUPT_AFTER_FIRST_OBJECT = """
import sys
import dvc_secure.cli.access as access
real = access._progress
def progress(done, total):
    real(done, total)
    if done == 1:
        raise KeyboardInterrupt  # what Ctrl-C raises, at a point the test controls
access._progress = progress
from dvc_secure.cli.main import main
sys.exit(main(sys.argv[1:]))
"""
