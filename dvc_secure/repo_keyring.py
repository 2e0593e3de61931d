"""The git-tracked keyring file of a DVC repository: locate, load, verify, save."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from dvc_secure.errors import KeyringError
from dvc_secure.keys.keyring import Keyring

KEYRING_RELPATH = Path("secure") / "keyring.json"  # relative to the .dvc directory


def keyring_path(dvc_dir: str | os.PathLike[str]) -> Path:
    return Path(dvc_dir) / KEYRING_RELPATH


def load_keyring(dvc_dir: str | os.PathLike[str]) -> Keyring:
    path = keyring_path(dvc_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringError(
            f"this repository has no dvc-secure keyring ({path})",
            hint="run 'dvc-secure init' once in the repository (then commit .dvc/secure/)",
        ) from None
    ring = Keyring.from_json(text)
    ring.verify_signatures()
    return ring


def save_keyring(dvc_dir: str | os.PathLike[str], ring: Keyring) -> Path:
    path = keyring_path(dvc_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".keyring-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(ring.to_json())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
