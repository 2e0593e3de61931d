"""Git read access through git's own plumbing commands, without pygit2.

The pre-commit hook runs on every commit and only needs a few trees, blobs and config
values: importing pygit2 costs more than all of that (~0.1 s, most of it before the first
call), so the hook's fast path reads through ``git`` itself: one ``git cat-file --batch``
process for objects, ``ls-files``/``diff`` for the staged state. Full history walks
(``dvc-secure verify``) keep using pygit2 (``history.py``).
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from dvc_secure.core.sidecar.metafile import is_metafile

KEYRING_PATH = ".dvc/secure/keyring.json"
SIDECAR_SUFFIX = ".seal"  # = sidecar.model.SIDECAR_SUFFIX (not imported: it pulls in crypto)
EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"


def relevant(path: str) -> bool:
    """Metafiles, sidecars and the keyring: what the verification engine reads."""
    parts = path.split("/")
    if ".git" in parts:
        return False
    if ".dvc" in parts[:-1]:
        return path == KEYRING_PATH
    return is_metafile(path) or path.endswith(SIDECAR_SUFFIX)


def git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True)


def _git_bytes(args: list[str], cwd: Path) -> bytes | None:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True)
    return proc.stdout if proc.returncode == 0 else None


@dataclass(frozen=True)
class WorkTree:
    root: Path  # top of the work tree
    git_dir: Path  # absolute; a linked worktree's own git dir (what pygit2 calls repo.path)


def discover(start: Path) -> WorkTree | None:
    """The non-bare repository around ``start`` (None: not in a work tree)."""
    proc = git(["rev-parse", "--absolute-git-dir", "--show-toplevel"], start)
    lines = proc.stdout.splitlines()
    if proc.returncode != 0 or len(lines) != 2 or not lines[1]:
        return None
    return WorkTree(Path(lines[1]), Path(lines[0]))


def object_id(data: bytes, hex_len: int = 40) -> str:
    """Git's blob id of ``data`` (SHA-1 repositories; SHA-256 ones have 64-digit ids)."""
    h = hashlib.sha1() if hex_len == 40 else hashlib.sha256()
    h.update(b"blob %d\0" % len(data))
    h.update(data)
    return h.hexdigest()


class ObjectReader:
    """Objects by id or revision expression through one long-lived ``git cat-file --batch``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._proc: subprocess.Popen[bytes] | None = None

    def _pipes(self) -> tuple[IO[bytes], IO[bytes]]:
        if self._proc is None:
            self._proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.root,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        return self._proc.stdin, self._proc.stdout

    def get(self, spec: str) -> tuple[str, str, bytes] | None:
        """(object id, type, content) of ``spec`` (an id or e.g. ``HEAD:path``), None if absent."""
        if "\n" in spec:
            return None
        stdin, stdout = self._pipes()
        stdin.write(spec.encode() + b"\n")
        stdin.flush()
        header = stdout.readline().split()
        if len(header) != 3:  # "<spec> missing" / "ambiguous"
            return None
        size = int(header[2])
        data = stdout.read(size)
        stdout.read(1)  # the LF after the content
        return header[0].decode(), header[1].decode(), data

    def blob(self, oid: str) -> bytes | None:
        got = self.get(oid)
        return got[2] if got is not None and got[1] == "blob" else None

    def commit(self, rev: str) -> tuple[str, str, list[str]] | None:
        """(commit id, tree id, parent ids) of ``rev``, None if it does not name a commit."""
        got = self.get(f"{rev}^{{commit}}")
        if got is None:
            return None
        tree, parents = "", []
        for line in got[2].split(b"\n"):
            if not line:
                break  # end of the header
            if line.startswith(b"tree "):
                tree = line[5:].decode()
            elif line.startswith(b"parent "):
                parents.append(line[7:].decode())
        return got[0], tree, parents

    def close(self) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            self._proc.wait()
            if self._proc.stdout is not None:
                self._proc.stdout.close()
            self._proc = None


@dataclass(frozen=True)
class RawChange:
    status: str  # A, M, D, T
    path: str
    old: str | None  # blob id before (None: added)
    new: str | None  # blob id after (None: deleted)


def _parse_raw(out: bytes) -> list[RawChange]:
    fields = out.split(b"\0")
    changes = []
    i = 0
    while i + 1 < len(fields) and fields[i].startswith(b":"):
        meta = fields[i][1:].decode().split()
        path = fields[i + 1].decode("utf-8", "surrogateescape")
        i += 2
        old, new, status = meta[2], meta[3], meta[4][:1]
        zero = "0" * len(old)
        changes.append(RawChange(status, path, None if old == zero else old,
                                 None if new == zero else new))
    return changes


def staged_diff(root: Path, base: str) -> list[RawChange] | None:
    """What the index changes against ``base`` (a commit or the empty tree)."""
    out = _git_bytes(["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev",
                      "--ignore-submodules=none", base], root)
    return None if out is None else _parse_raw(out)


def tree_diff(root: Path, old: str, new: str) -> list[RawChange] | None:
    out = _git_bytes(["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new], root)
    return None if out is None else _parse_raw(out)


def staged_files(root: Path) -> tuple[dict[str, str], bool] | None:
    """(path -> blob id of the relevant staged files, whether any path is unmerged)."""
    out = _git_bytes(["ls-files", "-s", "-z"], root)
    if out is None:
        return None
    files: dict[str, str] = {}
    unmerged = False
    for rec in out.split(b"\0"):
        if not rec:
            continue
        meta, _, raw_path = rec.partition(b"\t")
        mode, oid, stage = meta.decode().split()
        if stage != "0":
            unmerged = True
            continue
        path = raw_path.decode("utf-8", "surrogateescape")
        if mode != "160000" and relevant(path):
            files[path] = oid
    return files, unmerged


def config_values(root: Path, pattern: str) -> dict[str, list[str]]:
    """Every config value whose (lower-case) key matches ``pattern``, all levels merged."""
    out = _git_bytes(["config", "-z", "--get-regexp", pattern], root) or b""
    values: dict[str, list[str]] = {}
    for rec in out.split(b"\0"):
        if not rec:
            continue
        key, _, value = rec.decode("utf-8", "replace").partition("\n")
        values.setdefault(key, []).append(value)
    return values


def config_int(value: str) -> int:
    """Git's integer syntax: an optional k/m/g suffix (powers of 1024)."""
    scale = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}.get(value[-1:].lower(), 1)
    return int(value[:-1] if scale != 1 else value) * scale


def write_tree(root: Path) -> str | None:
    proc = git(["write-tree"], root)
    return proc.stdout.strip() if proc.returncode == 0 else None
