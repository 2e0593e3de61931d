"""Git history walks with pygit2: commits parents-first, and per commit the metafiles,
sidecars and keyring as parsed snapshots for the verification engine.

Parsing is memoised by blob id and tree scans by tree id, so a long history with few
changes per commit costs little more than its number of commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pygit2

from dvc_secure.adapters.git.snapshots import KEYRING_PATH, SnapshotBuilder, normalise_metafile
from dvc_secure.core.sidecar.metafile import is_metafile
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.engine import Snapshot
from dvc_secure.errors import ConfigurationError

__all__ = ["KEYRING_PATH", "SnapshotReader", "normalise_metafile", "open_repository",
           "sidecar_history"]
_SUFFIXES = (".dvc", SIDECAR_SUFFIX)
_ENUMS = getattr(pygit2, "enums", None)
# parents before children; pygit2 < 1.14 only has the module-level constants
PARENTS_FIRST = (
    _ENUMS.SortMode.TOPOLOGICAL | _ENUMS.SortMode.REVERSE
    if _ENUMS is not None
    else pygit2.GIT_SORT_TOPOLOGICAL | pygit2.GIT_SORT_REVERSE
)


def open_repository(path: Path) -> pygit2.Repository:
    found = pygit2.discover_repository(str(path))
    if found is None:
        raise ConfigurationError(f"{path} is not inside a git repository",
                                 hint="run dvc-secure inside the repository you want to check")
    return pygit2.Repository(found)


class SnapshotReader(SnapshotBuilder):
    """Builds engine snapshots for commits of one repository."""

    def __init__(self, repo: pygit2.Repository) -> None:
        super().__init__()
        self.repo = repo
        self._tree_files: dict[str, dict[str, str]] = {}

    # --- commits -------------------------------------------------------------------------

    def resolve(self, rev: str) -> pygit2.Commit:
        try:
            obj = self.repo.revparse_single(rev)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            raise ConfigurationError(f"unknown revision '{rev}'") from None
        return commit

    def ancestry(self, tips: list[pygit2.Commit], stop: set[str] | None = None) -> list[pygit2.Commit]:
        """Every commit reachable from ``tips`` (minus ``stop``), parents before children."""
        walker = self.repo.walk(tips[0].id, PARENTS_FIRST)  # type: ignore[arg-type]
        for tip in tips[1:]:
            walker.push(tip.id)
        for s in stop or ():
            walker.hide(pygit2.Oid(hex=s))
        return list(walker)

    # --- trees ---------------------------------------------------------------------------------

    def _relevant_files(self, tree: pygit2.Tree, prefix: str = "") -> dict[str, str]:
        """path -> blob id of metafiles, sidecars and the keyring below ``tree``."""
        key = str(tree.id)
        cached = self._tree_files.get(key)
        if cached is not None:
            return cached if not prefix else {prefix + p: b for p, b in cached.items()}
        found: dict[str, str] = {}
        for entry in tree:
            name = entry.name or ""
            if entry.type_str == "tree":
                if name == ".git":
                    continue
                if name == ".dvc":
                    sub = self.repo[entry.id]
                    assert isinstance(sub, pygit2.Tree)
                    try:
                        kr = sub["secure/keyring.json"]
                    except KeyError:
                        continue
                    found[".dvc/secure/keyring.json"] = str(kr.id)
                    continue
                sub = self.repo[entry.id]
                assert isinstance(sub, pygit2.Tree)
                for p, b in self._relevant_files(sub).items():
                    found[f"{name}/{p}"] = b
            elif entry.type_str == "blob" and (name.endswith(_SUFFIXES) or name == "dvc.lock") \
                    and (is_metafile(name) or name.endswith(SIDECAR_SUFFIX)):
                found[name] = str(entry.id)
        self._tree_files[key] = found
        return found if not prefix else {prefix + p: b for p, b in found.items()}

    def files_at(self, commit: pygit2.Commit) -> dict[str, str]:
        return self._relevant_files(commit.tree)

    def read_blob(self, blob_id: str) -> bytes:
        blob = self.repo[pygit2.Oid(hex=blob_id)]
        assert isinstance(blob, pygit2.Blob)
        return bytes(blob.data)

    # --- snapshots ------------------------------------------------------------------------------

    def snapshot(self, commit: pygit2.Commit) -> Snapshot:
        parents = tuple(str(p) for p in commit.parent_ids)
        day = dt.datetime.fromtimestamp(commit.commit_time, dt.timezone.utc).date()
        return self.snapshot_from_files(str(commit.id), parents, self.files_at(commit),
                                        committed_on=day)

    def snapshots(self, commits: list[pygit2.Commit]) -> Iterator[Snapshot]:
        for c in commits:
            yield self.snapshot(c)


def sidecar_history(reader: SnapshotReader, tip: pygit2.Commit, metafile: str) -> list[tuple[pygit2.Commit, Sidecar]]:
    """Commits (oldest first) where the sidecar of ``metafile`` took a new value."""
    path = metafile + SIDECAR_SUFFIX
    out: list[tuple[pygit2.Commit, Sidecar]] = []
    seen: set[str] = set()
    for commit in reader.ancestry([tip]):
        blob = reader.files_at(commit).get(path)
        if blob is None or blob in seen:
            continue
        seen.add(blob)
        parsed = reader.parse_blob("sidecar", blob, path)
        if isinstance(parsed.value, Sidecar):
            out.append((commit, parsed.value))
    return out
