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
from dvc_secure.errors import GitCommandError

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


def _git_required(args: list[str], cwd: Path) -> bytes:
    """Output of a git command whose failure must stop the check (never read as "nothing")."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True)
    if proc.returncode != 0:
        raise _failed(f"git {args[0]}", proc.returncode,
                      proc.stderr.decode("utf-8", "replace"))
    return proc.stdout


def _failed(what: str, code: int | None, stderr: str = "") -> GitCommandError:
    detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit code {code}"
    return GitCommandError(
        f"'{what}' failed ({detail}): the staged state could not be read, so it was not "
        "checked",
        hint="repair the repository ('git fsck', 'git status'), then commit again; "
        "'git commit --no-verify' skips the check knowingly (pre-push and CI still check)")


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
        try:
            stdin.write(spec.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            raise self._died() from None
        line = stdout.readline()
        if not line.endswith(b"\n"):  # end of output: git cat-file died
            raise self._died()
        header = line.split()
        if len(header) != 3:  # "<spec> missing" / "ambiguous"
            return None
        size = int(header[2])
        data = stdout.read(size)
        if len(data) != size or stdout.read(1) != b"\n":  # the LF after the content
            raise self._died()
        return header[0].decode(), header[1].decode(), data

    def _died(self) -> GitCommandError:
        code = self._proc.poll() if self._proc is not None else None
        return _failed("git cat-file --batch", code)

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
    new_mode: str = ""  # e.g. 100644; 160000 is a submodule (a commit, not a blob)


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
                                 None if new == zero else new, meta[1]))
    return changes


def staged_diff(root: Path, base: str) -> list[RawChange]:
    """What the index changes against ``base`` (a commit or the empty tree); raises
    GitCommandError when git fails (an empty list means "nothing staged", nothing else)."""
    out = _git_required(["diff", "--cached", "--raw", "-z", "--no-renames", "--no-abbrev",
                         "--ignore-submodules=none", base], root)
    return _parse_raw(out)


def tree_diff(root: Path, old: str, new: str) -> list[RawChange] | None:
    out = _git_bytes(["diff-tree", "-r", "-z", "--no-renames", "--no-abbrev", old, new], root)
    return None if out is None else _parse_raw(out)


def staged_files(root: Path) -> tuple[dict[str, str], bool]:
    """(path -> blob id of the relevant staged files, whether any path is unmerged);
    raises GitCommandError when git fails."""
    out = _git_required(["ls-files", "-s", "-z"], root)
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
    proc = subprocess.run(["git", "config", "-z", "--get-regexp", pattern], cwd=root,
                          capture_output=True)
    if proc.returncode not in (0, 1):  # 1: no value matches
        raise _failed("git config", proc.returncode, proc.stderr.decode("utf-8", "replace"))
    out = proc.stdout
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


def head_commit_id(root: Path) -> str | None:
    """The commit id HEAD names (None: an unborn branch, no commit yet). The id may name an
    object that is missing or unreadable: the caller must still be able to read it."""
    proc = git(["rev-parse", "-q", "--verify", "HEAD"], root)
    if proc.returncode == 0 and proc.stdout.strip():
        return proc.stdout.strip()
    unborn = git(["symbolic-ref", "-q", "HEAD"], root)
    if unborn.returncode == 0 and git(["show-ref", "--verify", "-q", unborn.stdout.strip()],
                                      root).returncode != 0:
        return None  # HEAD is a branch that does not exist yet
    raise _failed("git rev-parse HEAD", proc.returncode, proc.stderr)


def write_tree(root: Path) -> str | None:
    proc = git(["write-tree"], root)
    return proc.stdout.strip() if proc.returncode == 0 else None


def last_version_of(root: Path, path: str) -> tuple[str, bytes | None] | None:
    """The newest commit of HEAD's history that changed ``path`` (relative to ``root``) and
    the file's last committed content (None: unreadable), even when that commit deleted it.
    None when no commit did, or git cannot tell (not a repository, no commit, no git)."""
    try:
        proc = git(["log", "-1", "--format=%H", "--", path], root)
    except OSError:
        return None
    commit = proc.stdout.strip() if proc.returncode == 0 else ""
    if not commit:
        return None
    for rev in (commit, commit + "^"):  # the commit that deleted it: its parent has it
        data = _git_bytes(["show", f"{rev}:./{path}"], root)
        if data is not None:
            return commit, data
    return commit, None
