"""A marker in the git directory while a re-encryption runs (local, never committed).

Written before ``revoke/rotate --reencrypt`` or ``dvc-secure reencrypt`` touches the
remote, removed when the run completes. If it is still there, a run was interrupted: a
re-run of the same command resumes that epoch instead of starting another one, and
``dvc-secure doctor`` says so.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from dvc_secure.adapters.local.repo_keyring import find_git_dir

MARKER = Path("dvc-secure") / "reencrypt-in-progress.json"


@dataclass(frozen=True)
class InterruptedReencryption:
    keyring_id: str
    epoch: int
    command: str


def _marker(start: str | os.PathLike[str]) -> Path | None:
    git_dir = find_git_dir(Path(start).resolve())
    return git_dir / MARKER if git_dir is not None else None


def interrupted_reencryption(start: str | os.PathLike[str]) -> InterruptedReencryption | None:
    """The unfinished re-encryption of this clone, if any (``start``: any path inside)."""
    path = _marker(start)
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return InterruptedReencryption(str(doc["keyring_id"]), int(doc["epoch"]),
                                       str(doc.get("command", "dvc-secure reencrypt")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def start_reencryption(start: str | os.PathLike[str], keyring_id: str, epoch: int,
                       command: str) -> None:
    path = _marker(start)
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"keyring_id": keyring_id, "epoch": epoch,
                                   "command": command}) + "\n", encoding="utf-8")
        os.replace(tmp, path)


def finish_reencryption(start: str | os.PathLike[str], epoch: int) -> None:
    """Remove the marker of ``epoch`` (a marker of a newer epoch stays)."""
    found = interrupted_reencryption(start)
    path = _marker(start)
    if path is not None and (found is None or found.epoch <= epoch):
        with contextlib.suppress(OSError):
            path.unlink()
