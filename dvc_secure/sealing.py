"""``dvc-secure seal``: write signed sidecars for metafiles whose outputs changed.

Shell around the pure sidecar model: reads DVC's cache (to hash content with SHA-256,
memoised per object id in a local SQLite table), git's HEAD/MERGE_HEAD (to chain
versions), the keyring and the identity; writes ``<metafile>.seal`` and, for
directories, a content-addressed manifest under ``.dvc/cache/secure/manifests``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import pygit2

from dvc_secure.dvc_adapter.remote_access import SecureRemotes
from dvc_secure.dvc_adapter.secure_fs import SecureFsspec
from dvc_secure.errors import ConfigurationError, SidecarError
from dvc_secure.git_adapter.history import normalise_metafile, open_repository
from dvc_secure.keys.identity import key_fingerprint
from dvc_secure.secure_store import LazyRepoKeys
from dvc_secure.sidecar.metafile import DeclaredOutput, is_metafile, parse_outputs
from dvc_secure.sidecar.model import (
    AccessMetadata,
    SealedOutput,
    Sidecar,
    canonical_json,
    sidecar_path_for,
)
from dvc_secure.sidecar.remote_index import build_index, index_storage_path

MANIFEST_FORMAT = "dvc-secure-manifest"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class SealResult:
    metafile: str
    sidecar_path: str
    version: int
    changed: bool


class DigestCache:
    """md5 object id -> (sha256, size), so each cached object is hashed once per clone."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path))
        self._db.execute("CREATE TABLE IF NOT EXISTS digests (oid TEXT PRIMARY KEY, sha256 TEXT, size INTEGER)")

    def get(self, oid: str) -> tuple[str, int] | None:
        row = self._db.execute("SELECT sha256, size FROM digests WHERE oid = ?", (oid,)).fetchone()
        return (row[0], int(row[1])) if row else None

    def put(self, oid: str, sha256: str, size: int) -> None:
        self._db.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?)", (oid, sha256, size))

    def close(self) -> None:
        self._db.commit()
        self._db.close()


class CacheReader:
    """Content of DVC cache objects, hashed with SHA-256."""

    def __init__(self, cache_dir: Path, digests: DigestCache) -> None:
        self.cache_dir = cache_dir
        self.digests = digests

    def object_path(self, oid: str) -> Path:
        return self.cache_dir / "files" / "md5" / oid[:2] / oid[2:]

    def _open(self, oid: str) -> Path:
        for candidate in (self.object_path(oid), self.cache_dir / oid[:2] / oid[2:]):
            if candidate.is_file():
                return candidate
        raise SidecarError(
            f"object {oid} is not in the local DVC cache, so it cannot be sealed",
            hint="run 'dvc commit' (or 'dvc pull') for this dataset first",
        )

    def sha256(self, oid: str) -> tuple[str, int]:
        hit = self.digests.get(oid)
        if hit is not None:
            return hit
        h = hashlib.sha256()
        size = 0
        with self._open(oid).open("rb") as f:
            for chunk in iter(lambda: f.read(_CHUNK), b""):
                h.update(chunk)
                size += len(chunk)
        result = (h.hexdigest(), size)
        self.digests.put(oid, *result)
        return result

    def dir_listing(self, oid: str) -> list[dict[str, str]]:
        try:
            entries = json.loads(self._open(oid).read_bytes())
        except ValueError:
            raise SidecarError(f"directory object {oid} in the cache is not valid JSON") from None
        if not isinstance(entries, list):
            raise SidecarError(f"directory object {oid} in the cache is malformed")
        return entries


def build_manifest(listing: list[dict[str, str]], cache: CacheReader) -> tuple[bytes, int, int]:
    """Canonical manifest bytes for a directory output, its total size and file count."""
    files = []
    total = 0
    for entry in listing:
        oid, rel = entry.get("md5"), entry.get("relpath")
        if not isinstance(oid, str) or not isinstance(rel, str):
            raise SidecarError("a directory object lists an entry without md5/relpath")
        sha, size = cache.sha256(oid)
        files.append({"path": rel, "md5": oid, "sha256": sha, "size": size})
        total += size
    files.sort(key=lambda f: str(f["path"]))
    doc = {"format": MANIFEST_FORMAT, "version": 1, "files": files}
    return canonical_json(doc), total, len(files)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _committed_sidecar(repo: pygit2.Repository, ref: str, path: str) -> Sidecar | None:
    try:
        commit = repo.revparse_single(ref).peel(pygit2.Commit)
        blob = commit.tree[path]
    except (KeyError, ValueError, pygit2.GitError):
        return None
    obj = repo[blob.id]
    if not isinstance(obj, pygit2.Blob):
        return None
    return Sidecar.from_bytes(obj.data, f"{ref}:{path}")


def _git_author(repo: pygit2.Repository) -> str:
    try:
        sig = repo.default_signature
        return f"{sig.name} <{sig.email}>"
    except (KeyError, pygit2.GitError):
        name = os.environ.get("GIT_AUTHOR_NAME", "")
        email = os.environ.get("GIT_AUTHOR_EMAIL", "")
        return f"{name} <{email}>".strip() if name or email else "unknown"


def default_secure_remote(dvc_dir: Path) -> str:
    from dvc.config import Config

    remote = Config(dvc_dir=str(dvc_dir)).get("core", {}).get("remote")
    if not remote:
        raise ConfigurationError("no default DVC remote", hint="dvc-secure init --remote <storage>")
    return str(remote)


def workspace_metafiles(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".dvc")]
        for name in filenames:
            rel = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
            if is_metafile(rel):
                out.append(rel)
    return sorted(out)


def seal_metafiles(
    root: Path,
    targets: Iterable[str] | None = None,
    *,
    access: Callable[[AccessMetadata], AccessMetadata] = lambda a: a,
    now: str | None = None,
    offline: bool = False,
) -> list[SealResult]:
    """Seal every target (default: every metafile in the workspace) whose outputs or access
    metadata changed; unchanged ones are left byte-for-byte as they are."""
    dvc_dir = root / ".dvc"
    repo = open_repository(root)
    keys = LazyRepoKeys(str(dvc_dir)).get()
    signer = keys.signer()
    remote = default_secure_remote(dvc_dir)
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    metafiles = [normalise_metafile(t) for t in targets] if targets else workspace_metafiles(root)
    digests = DigestCache(dvc_dir / "tmp" / "secure" / "digests.sqlite")
    cache = CacheReader(dvc_dir / "cache", digests)
    merging = (Path(repo.path) / "MERGE_HEAD").exists()
    indexer = None if offline else RemoteIndexer(dvc_dir)
    results = []
    try:
        for metafile in metafiles:
            path = root / metafile
            if not path.is_file():
                raise SidecarError(f"{metafile} does not exist", hint="dvc add <data> first")
            declared = parse_outputs(path.read_bytes(), metafile)
            outputs = tuple(_seal_output(root, metafile, o, cache, keys.keyring.current_epoch,
                                         remote, indexer)
                            for o in sorted(declared.values(), key=lambda o: o.path))
            sc_rel = sidecar_path_for(metafile)
            parents = [p for p in (_committed_sidecar(repo, "HEAD", sc_rel),
                                   _committed_sidecar(repo, "MERGE_HEAD", sc_rel) if merging else None)
                       if p is not None]
            current = (Sidecar.from_bytes((root / sc_rel).read_bytes(), sc_rel)
                       if (root / sc_rel).is_file() else None)
            base = current or (parents[0] if parents else None)
            new_access = access(base.access if base else _default_access(keys.keyring))
            if current is not None and current.outputs == outputs and current.access == new_access \
                    and current.signer_keyid == key_fingerprint(signer.public) \
                    and _chains_to(current, parents):
                results.append(SealResult(metafile, sc_rel, current.version, False))
                continue
            distinct = {p.digest: p for p in parents}
            sidecar = Sidecar(
                metafile=metafile,
                version=max((p.version for p in parents), default=0) + 1,
                previous=tuple(sorted(distinct)),
                sealed_at=now,
                signer_keyid=key_fingerprint(signer.public),
                git_author=_git_author(repo),
                outputs=outputs,
                access=new_access,
            ).sign(signer)
            _atomic_write(root / sc_rel, sidecar.to_bytes())
            results.append(SealResult(metafile, sc_rel, sidecar.version, True))
    finally:
        digests.close()
    return results


def _chains_to(current: Sidecar, parents: list[Sidecar]) -> bool:
    """Is ``current`` a valid next state for these parent sidecars (no re-seal needed)?"""
    distinct = {p.digest for p in parents}
    if len(distinct) <= 1 and current.digest in distinct:
        return True  # unchanged since the last commit
    return sorted(current.previous) == sorted(distinct) and \
        current.version == max((p.version for p in parents), default=0) + 1


def _default_access(keyring: object) -> AccessMetadata:
    members = getattr(keyring, "members", [])
    return AccessMetadata(classification="confidential",
                          readers=tuple(sorted(m.name for m in members)))


class RemoteIndexer:
    """Builds and uploads remote indexes (and encrypted manifests) for sealed outputs."""

    def __init__(self, dvc_dir: Path) -> None:
        self._remotes = SecureRemotes(dvc_dir)

    def remote(self, name: str) -> SecureFsspec:
        return self._remotes.get(name)

    def index(self, remote: str, rels: list[str], what: str) -> str:
        """Pin the stored ciphertext of ``rels`` (paths relative to the remote root)."""
        fs = self.remote(remote)
        objects, missing = [], 0
        for rel in rels:
            stored = fs.stored_object(rel)
            if stored is None:
                missing += 1
            else:
                objects.append(stored)
        if missing:
            raise NotPushedError(
                f"{missing} of {len(rels)} object(s) of {what} are not on remote '{remote}', so "
                "the seal could not pin their ciphertext",
                hint=f"run 'dvc push -r {remote}' first (or seal with --offline and push later; "
                "'verify --remote' then reports the version as not indexed)",
            )
        digest, data = build_index(objects)
        path = fs.storage_path(index_storage_path(digest))
        if not fs.inner.exists(path):
            fs.inner.upload_fobj(io.BytesIO(data), path)
        return digest

    def upload_manifest(self, remote: str, digest: str, data: bytes) -> None:
        fs = self.remote(remote)
        path = manifest_rel(digest)
        if not fs.exists(path):
            fs.upload_stream(io.BytesIO(data), path, size=len(data))


class NotPushedError(ConfigurationError):
    """Sealing needs the objects on the remote (to pin their ciphertext)."""


def object_rel(oid: str) -> str:
    return f"files/md5/{oid[:2]}/{oid[2:]}"


def manifest_rel(digest: str) -> str:
    return f"secure/manifests/{digest}"


def _seal_output(root: Path, metafile: str, out: DeclaredOutput, cache: CacheReader,
                 epoch: int, remote: str, indexer: RemoteIndexer | None) -> SealedOutput:
    target = out.remote or remote
    what = f"{metafile}:{out.path}"
    if out.oid.endswith(".dir"):
        listing = cache.dir_listing(out.oid)
        manifest, total, nfiles = build_manifest(listing, cache)
        digest = hashlib.sha256(manifest).hexdigest()
        _atomic_write(root / ".dvc" / "cache" / "secure" / "manifests" / digest, manifest)
        index = None
        if indexer is not None:
            indexer.upload_manifest(target, digest, manifest)
            rels = [object_rel(out.oid), manifest_rel(digest)]
            rels += [object_rel(oid) for oid in sorted({e["md5"] for e in listing})]
            index = indexer.index(target, rels, what)
        return SealedOutput(out.path, out.oid, digest, total, nfiles, epoch, target,
                            remote_index=index)
    sha, size = cache.sha256(out.oid)
    index = indexer.index(target, [object_rel(out.oid)], what) if indexer is not None else None
    return SealedOutput(out.path, out.oid, sha, size, 1, epoch, target, remote_index=index)


def with_access(classification: str | None = None, owner: str | None = None,
                purpose: str | None = None, delete_after: str | None = None,
                readers: list[str] | None = None) -> Callable[[AccessMetadata], AccessMetadata]:
    def apply(a: AccessMetadata) -> AccessMetadata:
        changes: dict[str, object] = {}
        if classification is not None:
            changes["classification"] = classification
        if owner is not None:
            changes["owner"] = owner
        if purpose is not None:
            changes["purpose"] = purpose
        if delete_after is not None:
            changes["delete_after"] = delete_after or None
        if readers is not None:
            changes["readers"] = tuple(readers)
        return replace(a, **changes)  # type: ignore[arg-type]

    return apply
