"""This clone's audit state under ``<git-dir>/dvc-secure/audit/`` (never committed).

    clone-id             32 hex digits: names this clone (with the identity, its chain)
    lock                 serialises recorders and flushers of this clone
    state.json           {"heads": {chain: [seq, digest, time]},   own chains, as recorded
                          "known": {chain: [seq, digest]}}         checkpoints (seen on remote)
    queue/<chain>-<seq>.json   signed events not yet uploaded
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.core.format.primitives import random_bytes
from dvc_secure.errors import AuditLogError, ConfigurationError


def git_dir(repo_root: Path) -> Path:
    """The git directory of the work tree at ``repo_root`` (``.git`` file or directory)."""
    # a path walk, not pygit2: this runs inside git hooks (pygit2's import alone is ~0.1 s)
    from dvc_secure.adapters.local.repo_keyring import find_git_dir

    found = find_git_dir(Path(repo_root).resolve())
    if found is None:
        raise ConfigurationError(f"{repo_root} is not inside a git repository",
                                 hint="the audit trail lives in a git + DVC repository")
    return Path(found)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class ChainState:
    heads: dict[str, tuple[int, str, str]] = field(default_factory=dict)
    known: dict[str, tuple[int, str]] = field(default_factory=dict)


class AuditState:
    def __init__(self, repo_root: Path) -> None:
        self.dir = git_dir(repo_root) / "dvc-secure" / "audit"

    # --- identity of this clone --------------------------------------------------------

    def clone_id(self) -> str:
        path = self.dir / "clone-id"
        try:
            value = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            value = ""
        if len(value) == 32 and all(c in "0123456789abcdef" for c in value):
            return value
        self.dir.mkdir(parents=True, exist_ok=True)
        new = random_bytes(16).hex()
        try:  # O_EXCL: two first-time recorders agree on one id
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return path.read_text(encoding="ascii").strip()
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(new + "\n")
        return new

    def chain_id(self, signing_key: str) -> str:
        """One chain per (identity, clone): two clones or two identities never share one."""
        return hashlib.sha256(f"{self.clone_id()}\x00{signing_key}".encode()).hexdigest()[:32]

    # --- lock ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "a+b") as f:
            try:
                import fcntl
            except ImportError:  # no flock on this platform: one process per clone at a time
                yield
                return
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    # --- heads and checkpoints -------------------------------------------------------------------

    def load(self) -> ChainState:
        try:
            doc: Any = json.loads((self.dir / "state.json").read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ChainState()
        except ValueError:
            raise AuditLogError(f"{self.dir / 'state.json'} is not valid JSON",
                                hint="restore it, or delete it (this clone then forgets "
                                "the checkpoints it had)") from None
        state = ChainState()
        for c, v in (doc.get("heads") or {}).items():
            state.heads[c] = (int(v[0]), str(v[1]), str(v[2]))
        for c, v in (doc.get("known") or {}).items():
            state.known[c] = (int(v[0]), str(v[1]))
        return state

    def save(self, state: ChainState) -> None:
        doc = {"heads": {c: list(v) for c, v in sorted(state.heads.items())},
               "known": {c: list(v) for c, v in sorted(state.known.items())}}
        _atomic_write(self.dir / "state.json", (json.dumps(doc, indent=1) + "\n").encode())

    # --- queue ----------------------------------------------------------------------------------

    def enqueue(self, chain: str, seq: int, data: bytes) -> None:
        _atomic_write(self.dir / "queue" / f"{chain}-{seq:010d}.json", data)

    def queued(self) -> list[tuple[str, int, Path]]:
        out = []
        for p in (self.dir / "queue").glob("*.json"):
            chain, _, seq = p.stem.partition("-")
            if seq.isdigit():
                out.append((chain, int(seq), p))
        return sorted(out)
