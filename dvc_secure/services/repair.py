"""``dvc-secure repair``: diagnose a secure remote against the sealed history and restore
what it lacks, so that ``verify --remote`` proves it complete again (docs/verification.md).

For every sealed output of the chosen revisions, on the chosen remote (default: the one
each version was sealed for):

1. its remote index — missing or damaged: copied from this clone (an index the pre-commit
   hook built) or from another configured secure remote that has it; its digest is the one
   the sidecar pins, so any copy is as good as the original;
2. every stored object the index lists — missing, truncated, corrupted, or replaced by bytes
   that neither the pin, a re-encryption record nor a trusted upload record vouches for:
   pushed again through the secure filesystem from this clone's cache, after checking the
   cached content against the sealed SHA-256 (directory manifests: fetched from another
   secure remote when this clone lacks them). Every push ends with a signed upload record
   on that remote (docs/spec/repair.md), which is what lets ``verify --remote`` accept the
   new ciphertext;
3. what this clone cannot supply is reported with the other secure remotes holding a copy.

Finally the remote is checked again exactly as ``verify --remote`` does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.core.sidecar.model import SealedOutput, Sidecar
from dvc_secure.core.sidecar.remote_index import StoredObject, index_storage_path, parse_index
from dvc_secure.core.verification.findings import Finding
from dvc_secure.errors import ConfigurationError, DvcSecureError
from dvc_secure.services.history_check import verify_history
from dvc_secure.services.remote_check import (
    INDEX_BAD,
    INDEX_MISSING,
    NOT_INDEXED,
    RemoteChecker,
    hash_at,
    relocated,
)
from dvc_secure.services.sealing import (
    kept_index_path,
    manifest_rel,
    object_rel,
    pending_index_path,
)
from dvc_secure.services.upload_records import publish_pending, write_record

if TYPE_CHECKING:
    from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec

REPUSHED = "re-pushed"
COPIED = "copied"
WOULD_REPUSH = "would re-push"
WOULD_COPY = "would copy"
UNREPAIRABLE = "not repaired"


@dataclass(frozen=True)
class RepairItem:
    """One thing wrong on the remote, and what repair did about it."""

    rev: str
    dataset: str
    output: str
    remote: str
    path: str  # storage path (hidden name) of the object or index
    problem: str  # finding code, as verify --remote reports it
    action: str  # REPUSHED, COPIED, WOULD_*, UNREPAIRABLE
    detail: str
    available_on: tuple[str, ...] = ()  # other secure remotes that hold a copy


@dataclass
class RepairReport:
    remote: str | None
    dry_run: bool
    revisions: int = 0
    outputs: int = 0
    items: list[RepairItem] = field(default_factory=list)
    records: list[str] = field(default_factory=list)  # upload records written
    remaining: list[Finding] = field(default_factory=list)  # what verify --remote still finds

    @property
    def ok(self) -> bool:
        return not self.remaining


@dataclass(frozen=True)
class _Source:
    rel: str  # the object's plaintext path on the remote (its identity)
    local: Path  # where this clone's copy would be
    sha256: str | None  # sealed content digest (None: a .dir listing, checked by its MD5)
    dir_md5: str | None = None  # a .dir listing's DVC id without the suffix


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


class _Repairer:
    def __init__(self, root: Path, checker: RemoteChecker, dry_run: bool) -> None:
        self.root = root
        self.dvc_dir = root / ".dvc"
        self.checker = checker
        self.dry_run = dry_run
        self.secure_names = dvc_remotes(self.dvc_dir).secure_names()
        self.items: list[RepairItem] = []
        self._done: dict[tuple[str, str], tuple[str, str, tuple[str, ...]]] = {}
        self._named: set[tuple[str, str]] = set()
        self.records: list[str] = []  # name records written (repair.md §3a)

    # --- helpers ---------------------------------------------------------------------------

    def _others(self, name: str) -> list[str]:
        return [n for n in self.secure_names if n != name]

    def _add(self, rev: str, sc: Sidecar, out: SealedOutput, remote: str, path: str,
             problem: str, action: str, detail: str, available: tuple[str, ...] = ()) -> None:
        self.items.append(RepairItem(rev, sc.metafile, out.path, remote, path, problem, action,
                                     detail, available))

    def _index_bytes(self, name: str, digest: str) -> tuple[bytes, str] | None:
        """A copy of index ``digest`` that hashes to it: (bytes, where it came from)."""
        for local in (kept_index_path(self.dvc_dir, digest),
                      pending_index_path(self.dvc_dir, digest)):
            if local.is_file() and _sha256(local) == digest:
                return local.read_bytes(), "this clone"
        for other in self._others(name):
            try:
                fs = self.checker.remote_fs(other)
                with fs.inner.open(fs.storage_path(index_storage_path(digest)), "rb") as f:
                    data = f.read()
            except Exception:  # another remote is a best-effort source
                continue
            if hashlib.sha256(data).hexdigest() == digest:
                return data, f"remote '{other}'"
        return None

    def _index(self, rev: str, sc: Sidecar, out: SealedOutput, name: str,
               fs: SecureFsspec) -> list[StoredObject] | None:
        digest = out.remote_index
        assert digest is not None
        try:
            return self.checker.read_index(fs, digest)
        except FileNotFoundError:
            problem = INDEX_MISSING
        except DvcSecureError:
            problem = INDEX_BAD
        key = (name, index_storage_path(digest))
        if key not in self._done:
            found = self._index_bytes(name, digest)
            if found is None:
                self._done[key] = (UNREPAIRABLE, "no copy in this clone nor on any other "
                                   "configured secure remote", ())
            else:
                data, source = found
                if not self.dry_run:
                    fs.inner.upload_fobj(io.BytesIO(data), fs.storage_path(key[1]))
                self._done[key] = (WOULD_COPY if self.dry_run else COPIED, f"from {source}", ())
        action, detail, _ = self._done[key]
        self._add(rev, sc, out, name, key[1], problem, action, detail)
        if action == UNREPAIRABLE:
            return None
        found = self._index_bytes(name, digest) if self.dry_run else None
        if found is not None:
            return parse_index(found[0], digest)
        return self.checker.read_index(fs, digest)

    def _manifest(self, out: SealedOutput, name: str) -> list[dict[str, object]] | None:
        """The sealed manifest of a directory output (cached in this clone once fetched)."""
        local = self.dvc_dir / "cache" / "secure" / "manifests" / out.sha256
        if _sha256(local) != out.sha256:
            data = None
            for remote in [name, *self._others(name)]:
                try:
                    with self.checker.remote_fs(remote).open("/" + manifest_rel(out.sha256),
                                                             "rb") as f:
                        data = f.read()
                except Exception:  # any remote is a best-effort source
                    continue
                if hashlib.sha256(data).hexdigest() == out.sha256:
                    break
                data = None
            if data is None:
                return None
            local.parent.mkdir(parents=True, exist_ok=True)
            tmp = local.with_name(local.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, local)
        files = json.loads(local.read_bytes()).get("files")
        return files if isinstance(files, list) else None

    def _sources(self, out: SealedOutput, name: str, fs: SecureFsspec) -> dict[str, _Source]:
        """Storage path -> how to re-push that object from this clone."""
        cache = self.dvc_dir / "cache" / "files" / "md5"
        srcs = [_Source(object_rel(out.oid), cache / out.oid[:2] / out.oid[2:],
                        None if out.is_dir else out.sha256,
                        out.oid.removesuffix(".dir") if out.is_dir else None)]
        if out.is_dir:
            srcs.append(_Source(manifest_rel(out.sha256),
                                self.dvc_dir / "cache" / "secure" / "manifests" / out.sha256,
                                out.sha256))
            for entry in self._manifest(out, name) or []:
                if isinstance(entry, dict):
                    md5, sha = str(entry.get("md5", "")), str(entry.get("sha256", ""))
                    srcs.append(_Source(object_rel(md5), cache / md5[:2] / md5[2:], sha))
        return {fs.storage_rel(fs.object_path(s.rel)): s for s in srcs}

    @staticmethod
    def _local_ok(src: _Source) -> bool:
        if src.sha256 is not None:
            return _sha256(src.local) == src.sha256
        try:  # a .dir listing: DVC names it by the MD5 of its bytes
            data = src.local.read_bytes()
        except OSError:
            return False
        return hashlib.md5(data, usedforsecurity=False).hexdigest() == src.dir_md5

    def _has_copy(self, name: str, path: str) -> tuple[str, ...]:
        out = []
        for other in self._others(name):
            try:
                fs = self.checker.remote_fs(other)
                moved = relocated(fs, path)  # its name there, if that remote has its own
                if fs.inner.exists(fs.storage_path(path)) or (
                        moved is not None and fs.inner.exists(fs.storage_path(moved))):
                    out.append(other)
            except Exception:  # a probe of another remote must not stop repair
                continue
        return tuple(out)

    # --- one output --------------------------------------------------------------------------

    def output(self, rev: str, sc: Sidecar, out: SealedOutput) -> None:
        name = self.checker.remote_for(out)
        if out.remote_index is None:
            self._add(rev, sc, out, name, "", NOT_INDEXED, UNREPAIRABLE,
                      f"sealed offline, nothing pinned: seal a new version "
                      f"(dvc-secure seal {sc.metafile})")
            return
        fs = self.checker.remote_fs(name)
        entries = self._index(rev, sc, out, name, fs)
        if entries is None:
            return
        bad: list[tuple[StoredObject, str]] = []
        for e in entries:
            found = self.checker.object_problem(name, fs, e, self.checker.stored(fs, e.path))
            if found is not None:
                bad.append((e, found[0]))
        sources = self._sources(out, name, fs) if bad else {}
        for e, problem in bad:
            key = (name, e.path)
            if key not in self._done:
                src = sources.get(e.path) or sources.get(relocated(fs, e.path) or "")
                self._done[key] = self._fix(name, fs, e, src)
            action, detail, available = self._done[key]
            self._add(rev, sc, out, name, e.path, problem, action, detail, available)
        if not self.dry_run:
            self._record_names(fs, out.remote_index, entries)

    def _record_names(self, fs: SecureFsspec, digest: str, entries: list[StoredObject]) -> None:
        """Where this remote stores the index's objects under other names than the index
        lists (another remote's, or its own before a migration), a signed upload record of
        exactly those objects under its own names, so that a keyless ``verify --remote``
        can follow them (docs/spec/repair.md §3a). Needs the name secret; once per index."""
        if not fs.hide_names or not entries or (fs.fsid, digest) in self._named:
            return
        self._named.add((fs.fsid, digest))
        here: list[StoredObject] = []
        for e in entries:
            found = hash_at(fs, e.path)
            if found is None:
                moved = relocated(fs, e.path)
                found = hash_at(fs, moved) if moved is not None else None
            if found is None:
                return  # incomplete here: nothing to vouch for
            here.append(found)
        if [h.path for h in here] == [e.path for e in entries]:
            return  # stored under the sealed names: the index itself is the proof
        accepted, _ = self.checker.attestations(fs)
        known = accepted.index_objects(digest, len(here))
        if known is not None and sorted((o.path, o.sha256, o.size) for o in known) == \
                sorted((h.path, h.sha256, h.size) for h in here):
            return
        written = write_record(fs, here, remote_index=digest)
        if written is not None:
            self.records.append(written)

    def _fix(self, name: str, fs: SecureFsspec, e: StoredObject,
             src: _Source | None) -> tuple[str, str, tuple[str, ...]]:
        if src is None:
            return (UNREPAIRABLE, "this clone cannot tell which object it is (directory "
                    "listing or manifest unavailable)", self._has_copy(name, e.path))
        if not self._local_ok(src):
            available = self._has_copy(name, e.path)
            where = (f"; remote(s) {', '.join(available)} hold a copy: dvc fetch -r "
                     f"{available[0]} --all-commits, then run repair again") if available else \
                "; no other configured secure remote holds it either"
            return UNREPAIRABLE, f"{src.rel} is not in this clone's cache{where}", available
        if self.dry_run:
            return WOULD_REPUSH, f"{src.rel} from this clone's cache", ()
        with src.local.open("rb") as f:
            fs.upload_stream(f, "/" + src.rel, size=src.local.stat().st_size)
        return REPUSHED, f"{src.rel} from this clone's cache", ()


def repair_remote(root: Path, remote: str | None = None, all_revisions: bool = False,
                  dry_run: bool = False, jobs: int = 4) -> RepairReport:
    """Diagnose and (unless ``dry_run``) repair; see the module docstring."""
    dvc_dir = root / ".dvc"
    if remote is not None and not dvc_remotes(dvc_dir).is_secure(remote):
        raise ConfigurationError(f"'{remote}' is not a secure:// remote of this repository",
                                 hint="dvc remote list; repair works on secure remotes only")
    history = verify_history(root, all_revisions=all_revisions)
    report = RepairReport(remote, dry_run, revisions=len(history.revisions))
    checker = RemoteChecker(dvc_dir, jobs=jobs, remote_name=remote)
    repairer = _Repairer(root, checker, dry_run)
    for rev, sc in history.sealed:
        for out in sc.outputs:
            report.outputs += 1
            repairer.output(rev, sc, out)
    report.items = repairer.items
    if not dry_run:
        report.records = publish_pending(strict=True) + repairer.records
    # prove it the way CI will: a fresh check, nothing remembered from before the repair
    report.remaining = RemoteChecker(dvc_dir, jobs=jobs, remote_name=remote).check_remote(
        history.sealed)
    return report
