"""Git history walks with pygit2: commits parents-first, and per commit the metafiles,
sidecars and keyring as parsed snapshots for the verification engine.

Parsing is memoised by blob id and tree scans by tree id, so a long history with few
changes per commit costs little more than its number of commits.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

from dvc_secure.errors import ConfigurationError, DvcSecureError
from dvc_secure.keys.keyring import Keyring
from dvc_secure.sidecar.metafile import is_metafile, parse_outputs
from dvc_secure.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.verification.engine import MetafileState, Snapshot

KEYRING_PATH = ".dvc/secure/keyring.json"
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


@dataclass(frozen=True)
class _Parsed:
    value: object | None
    error: str | None


class SnapshotReader:
    """Builds engine snapshots for commits of one repository."""

    def __init__(self, repo: pygit2.Repository) -> None:
        self.repo = repo
        self._tree_files: dict[str, dict[str, str]] = {}
        self._blobs: dict[tuple[str, str], _Parsed] = {}
        self._states: dict[tuple[str, str, str | None], MetafileState] = {}

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

    def parse_blob(self, kind: str, blob_id: str, path: str) -> _Parsed:
        key = (kind, blob_id if kind != "sidecar" else f"{blob_id}:{path}")
        hit = self._blobs.get(key)
        if hit is not None:
            return hit
        blob = self.repo[pygit2.Oid(hex=blob_id)]
        assert isinstance(blob, pygit2.Blob)
        data = blob.data
        try:
            value: object
            if kind == "keyring":
                ring = Keyring.from_json(data.decode("utf-8"))
                ring.verify_signatures()
                value = ring
            elif kind == "sidecar":
                value = Sidecar.from_bytes(data, path)
            else:
                value = parse_outputs(data, path)
            parsed = _Parsed(value, None)
        except (DvcSecureError, UnicodeDecodeError) as exc:
            parsed = _Parsed(None, getattr(exc, "message", str(exc)))
        self._blobs[key] = parsed
        return parsed

    def files_at(self, commit: pygit2.Commit) -> dict[str, str]:
        return self._relevant_files(commit.tree)

    def read_blob(self, blob_id: str) -> bytes:
        blob = self.repo[pygit2.Oid(hex=blob_id)]
        assert isinstance(blob, pygit2.Blob)
        return bytes(blob.data)

    # --- snapshots ------------------------------------------------------------------------------

    def snapshot_from_files(self, rev: str, parents: tuple[str, ...], files: dict[str, str]) -> Snapshot:
        trust = None
        trust_error = "no .dvc/secure/keyring.json"
        if KEYRING_PATH in files:
            kr = self.parse_blob("keyring", files[KEYRING_PATH], KEYRING_PATH)
            trust = kr.value if isinstance(kr.value, Keyring) else None
            trust_error = kr.error or ""
        metafiles: dict[str, MetafileState] = {}
        for path, blob in files.items():
            if path.endswith(SIDECAR_SUFFIX) or not is_metafile(path):
                continue
            sc_blob = files.get(path + SIDECAR_SUFFIX)
            # one object per (metafile, sidecar) content: the engine memoises by identity
            key = (path, blob, sc_blob)
            cached = self._states.get(key)
            if cached is not None:
                metafiles[path] = cached
                continue
            outs = self.parse_blob("metafile", blob, path)
            declared = outs.value if isinstance(outs.value, dict) else {}
            sc_path = path + SIDECAR_SUFFIX
            sidecar = None
            sidecar_error = None
            if sc_path in files:
                parsed = self.parse_blob("sidecar", files[sc_path], sc_path)
                sidecar = parsed.value if isinstance(parsed.value, Sidecar) else None
                sidecar_error = parsed.error
            elif outs.error:
                sidecar_error = f"metafile unreadable: {outs.error}"
            metafiles[path] = self._states[key] = MetafileState(
                path=path,
                outputs={p: o.oid for p, o in declared.items()},
                sidecar=sidecar,
                sidecar_error=sidecar_error,
                remotes={p: o.remote for p, o in declared.items()},
            )
        orphans = tuple(sorted(
            p for p in files
            if p.endswith(SIDECAR_SUFFIX) and p[: -len(SIDECAR_SUFFIX)] not in files
        ))
        return Snapshot(rev=rev, parents=parents, metafiles=metafiles, trust=trust,  # type: ignore[arg-type]
                        trust_error=trust_error, orphan_sidecars=orphans)

    def snapshot(self, commit: pygit2.Commit) -> Snapshot:
        parents = tuple(str(p) for p in commit.parent_ids)
        return self.snapshot_from_files(str(commit.id), parents, self.files_at(commit))

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


def normalise_metafile(target: str) -> str:
    """Accept ``data``, ``data.dvc`` or ``data.dvc.seal``; return the metafile path."""
    t = posixpath.normpath(target.replace("\\", "/")).lstrip("./") or target
    if t.endswith(SIDECAR_SUFFIX):
        t = t[: -len(SIDECAR_SUFFIX)]
    if not is_metafile(t):
        t += ".dvc"
    return t
