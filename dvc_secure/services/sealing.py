"""``dvc-secure seal``: write signed sidecars for metafiles whose outputs changed.

Shell around the pure sidecar model: reads DVC's cache (to hash content with SHA-256,
memoised per object id in a local SQLite table), git's HEAD/MERGE_HEAD (to chain
versions), the keyring and the identity; writes ``<metafile>.seal`` and, for
directories, a content-addressed manifest under ``.dvc/cache/secure/manifests``.

Pinning the stored ciphertext (the remote index) normally opens the secure remote through
DVC. The pre-commit hook passes ``defer_upload=True``: the index is then built from this
clone's push journal when the journal knows every object (no DVC import, no network),
kept under ``.dvc/cache/secure/indexes`` and uploaded by the pre-push hook.
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
from typing import TYPE_CHECKING

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.adapters.git import plumbing
from dvc_secure.adapters.git.snapshots import normalise_metafile
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
from dvc_secure.core.keys.identity import key_fingerprint
from dvc_secure.core.sidecar.canonical import canonical_json
from dvc_secure.core.sidecar.metafile import DeclaredOutput, is_metafile, parse_outputs
from dvc_secure.core.sidecar.model import AccessMetadata, SealedOutput, Sidecar, sidecar_path_for
from dvc_secure.core.sidecar.remote_index import StoredObject, build_index, index_storage_path
from dvc_secure.errors import ConfigurationError, NotPushedError, SidecarError

if TYPE_CHECKING:  # DVC is imported only when a remote is really opened
    from dvc_secure.adapters.dvc.remote_access import SecureRemotes
    from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec

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


def _committed_sidecar(objects: plumbing.ObjectReader, ref: str, path: str) -> Sidecar | None:
    got = objects.get(f"{ref}^{{commit}}:{path}")
    if got is None or got[1] != "blob":
        return None
    return Sidecar.from_bytes(got[2], f"{ref}:{path}")


def _git_author(root: Path, config: dict[str, list[str]] | None = None) -> str:
    """user.name <user.email> from git's configuration, else the author variables."""
    if config is None:
        config = plumbing.config_values(root, r"^user\.(name|email)$")
    names, emails = config.get("user.name"), config.get("user.email")
    if names and emails:
        return f"{names[-1]} <{emails[-1]}>"
    name = os.environ.get("GIT_AUTHOR_NAME", "")
    email = os.environ.get("GIT_AUTHOR_EMAIL", "")
    return f"{name} <{email}>".strip() if name or email else "unknown"


def _default_remote_from_files(dvc_dir: Path) -> str:
    """:func:`remote_access.default_remote` read from DVC's config files (no DVC import)."""
    remote = dvc_remotes(dvc_dir).default
    if not remote:
        raise ConfigurationError("no default DVC remote", hint="dvc-secure init --remote <storage>")
    return remote


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
    defer_upload: bool = False,
    git: tuple[plumbing.WorkTree, plumbing.ObjectReader, dict[str, list[str]]] | None = None,
) -> list[SealResult]:
    """Seal every target (default: every metafile in the workspace) whose outputs or access
    metadata changed; unchanged ones are left byte-for-byte as they are.

    ``defer_upload``: pin from the push journal where it can and leave the remote index
    for the pre-push hook to upload (see the module docstring). ``git``: the caller's work
    tree, object reader and ``user.*`` config (the pre-commit hook: saves three processes)."""
    dvc_dir = root / ".dvc"
    wt = git[0] if git is not None else plumbing.discover(root)
    if wt is None:
        raise ConfigurationError(f"{root} is not inside a git work tree",
                                 hint="run dvc-secure inside the repository you want to seal")
    keys = LazyRepoKeys(str(dvc_dir)).get()
    signer = keys.signer()
    if defer_upload:  # inside a git hook: read DVC's config files without importing DVC
        remote = _default_remote_from_files(dvc_dir)
    else:
        from dvc_secure.adapters.dvc.remote_access import default_remote

        remote = default_remote(dvc_dir)
    now = now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    metafiles = [normalise_metafile(t) for t in targets] if targets else workspace_metafiles(root)
    digests = DigestCache(dvc_dir / "tmp" / "secure" / "digests.sqlite")
    cache = CacheReader(dvc_dir / "cache", digests)
    merging = (wt.git_dir / "MERGE_HEAD").exists()
    objects = git[1] if git is not None else plumbing.ObjectReader(root)
    config = git[2] if git is not None else None
    indexer = None if offline else _Pinner(dvc_dir, from_journal=defer_upload)
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
            parents = [p for p in (_committed_sidecar(objects, "HEAD", sc_rel),
                                   _committed_sidecar(objects, "MERGE_HEAD", sc_rel) if merging else None)
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
                git_author=_git_author(root, config),
                outputs=outputs,
                access=new_access,
            ).sign(signer)
            _atomic_write(root / sc_rel, sidecar.to_bytes())
            results.append(SealResult(metafile, sc_rel, sidecar.version, True))
    finally:
        if git is None:
            objects.close()
        digests.close()
        if indexer is not None:
            indexer.close()
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
        from dvc_secure.adapters.dvc.remote_access import SecureRemotes

        self._dvc_dir = dvc_dir
        self._remotes: SecureRemotes = SecureRemotes(dvc_dir)
        self._bound: set[str] = set()

    def remote(self, name: str) -> SecureFsspec:
        fs = self._remotes.get(name)
        if name not in self._bound:
            self._bound.add(name)
            bind_journal(self._dvc_dir, name, fs)
        return fs

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
        _atomic_write(kept_index_path(self._dvc_dir, digest), data)  # for dvc-secure repair
        path = fs.storage_path(index_storage_path(digest))
        if not fs.inner.exists(path):
            fs.inner.upload_fobj(io.BytesIO(data), path)
        return digest

    def upload_manifest(self, remote: str, digest: str, data: bytes) -> None:
        fs = self.remote(remote)
        path = manifest_rel(digest)
        if not fs.exists(path):
            fs.upload_stream(io.BytesIO(data), path, size=len(data))


def bind_journal(dvc_dir: Path, name: str, fs: SecureFsspec) -> None:
    """Record remote ``name``'s fsid in the push journal (for :class:`JournalIndexer`)."""
    journal = getattr(fs, "journal", None)
    if journal is not None:
        journal.bind_remote(name, dvc_remotes(dvc_dir).fingerprint(), fs.fsid)


def pending_index_path(dvc_dir: Path, digest: str) -> Path:
    """Where a remote index built from the journal waits for the pre-push hook."""
    return dvc_dir / "cache" / "secure" / "indexes" / digest


def kept_index_path(dvc_dir: Path, digest: str) -> Path:
    """This clone's copy of a remote index it built (``dvc-secure repair`` restores from it)."""
    return dvc_dir / "cache" / "secure" / "remote-indexes" / digest


class JournalIndexer:
    """Pins stored ciphertext from this clone's push journal, without DVC or the network.

    Answers only when the journal has a binding for the remote under the current
    configuration and a row for every object; otherwise None, and the caller opens the
    remote. The journal is exactly what :meth:`SecureFsspec.stored_object` consults first,
    so both paths pin the same bytes."""

    def __init__(self, dvc_dir: Path) -> None:
        from dvc_secure.adapters.local.push_journal import PushJournal, journal_path

        self._dvc_dir = dvc_dir
        path = journal_path(dvc_dir)
        self._journal = PushJournal(path) if path.is_file() else None
        self._fingerprint: str | None = None

    def index(self, remote: str, rels: list[str]) -> str | None:
        if self._journal is None:
            return None
        if self._fingerprint is None:
            self._fingerprint = dvc_remotes(self._dvc_dir).fingerprint()
        fsid = self._journal.bound_fsid(remote, self._fingerprint)
        if fsid is None:
            return None
        objects: list[StoredObject] = []
        for rel in rels:
            stored = self._journal.lookup(fsid, rel)
            if stored is None:
                return None
            objects.append(stored)
        digest, data = build_index(objects)
        _atomic_write(pending_index_path(self._dvc_dir, digest), data)
        _atomic_write(kept_index_path(self._dvc_dir, digest), data)
        return digest

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


class _Pinner:
    """Journal first (when allowed), else the remote itself, opened on first need."""

    def __init__(self, dvc_dir: Path, from_journal: bool) -> None:
        self._dvc_dir = dvc_dir
        self._journal = JournalIndexer(dvc_dir) if from_journal else None
        self._remote: RemoteIndexer | None = None

    def remote_indexer(self) -> RemoteIndexer:
        if self._remote is None:
            self._remote = RemoteIndexer(self._dvc_dir)
        return self._remote

    def pin(self, remote: str, rels: list[str], what: str,
            manifest: tuple[str, bytes] | None = None) -> str:
        if self._journal is not None:
            digest = self._journal.index(remote, rels)
            if digest is not None:
                return digest
        indexer = self.remote_indexer()
        if manifest is not None:
            indexer.upload_manifest(remote, *manifest)
        return indexer.index(remote, rels, what)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


def object_rel(oid: str) -> str:
    return f"files/md5/{oid[:2]}/{oid[2:]}"


def manifest_rel(digest: str) -> str:
    return f"secure/manifests/{digest}"


def _seal_output(root: Path, metafile: str, out: DeclaredOutput, cache: CacheReader,
                 epoch: int, remote: str, indexer: _Pinner | None) -> SealedOutput:
    target = out.remote or remote
    what = f"{metafile}:{out.path}"
    if out.oid.endswith(".dir"):
        listing = cache.dir_listing(out.oid)
        manifest, total, nfiles = build_manifest(listing, cache)
        digest = hashlib.sha256(manifest).hexdigest()
        _atomic_write(root / ".dvc" / "cache" / "secure" / "manifests" / digest, manifest)
        index = None
        if indexer is not None:
            # a new manifest is not in the journal yet: that case opens the remote to upload it
            rels = [object_rel(out.oid), manifest_rel(digest)]
            rels += [object_rel(oid) for oid in sorted({e["md5"] for e in listing})]
            index = indexer.pin(target, rels, what, manifest=(digest, manifest))
        return SealedOutput(out.path, out.oid, digest, total, nfiles, epoch, target,
                            remote_index=index)
    sha, size = cache.sha256(out.oid)
    index = indexer.pin(target, [object_rel(out.oid)], what) if indexer is not None else None
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
