"""The fsspec filesystem behind ``secure://<remote>[/sub/path]``, wrapping another DVC remote.

Objects are encrypted on the way out (``put_file``/``upload_fobj``) and authenticated,
verified and decrypted on the way in (``get_file``/``open``). With hidden names (the
default) the wrapped storage sees ``<xx>/<token>`` instead of DVC's MD5 object ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import posixpath
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any, BinaryIO, cast

from dvc_objects.fs.base import FileSystem
from dvc_objects.fs.local import LocalFileSystem
from fsspec import AbstractFileSystem
from fsspec.callbacks import DEFAULT_CALLBACK, Callback

from dvc_secure.adapters.dvc import service_hooks
from dvc_secure.adapters.dvc.compat import DvcSecureDvcError, fs_join
from dvc_secure.adapters.dvc.content_check import authenticated_ciphertext, decrypt_checked
from dvc_secure.adapters.dvc.domain_store import DomainStore
from dvc_secure.adapters.dvc.hidden_naming import Namer, RemoteNaming
from dvc_secure.adapters.dvc.storage_names import (
    OBJECT_PATH,
    PARTIAL_PREFIX,
    SCHEME,
    SHARD,
    refuse_other_naming,
)
from dvc_secure.adapters.dvc.transfer_streams import (
    Discard,
    EncryptOnClose,
    ProgressSink,
    ProgressSource,
    per_file_progress,
    stream_size,
    write_local_atomically,
)
from dvc_secure.adapters.local.push_journal import PushJournal
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
from dvc_secure.core.format.object_format import (
    DEFAULT_SEGMENT_LOG2,
    EncryptingReader,
    ObjectSeal,
    ciphertext_size,
    plaintext_size,
)
from dvc_secure.core.sidecar.remote_index import StoredObject
from dvc_secure.errors import DvcSecureError

logger = logging.getLogger("dvc_secure")


class SecureFsspec(AbstractFileSystem):  # type: ignore[misc]
    """Synchronous fsspec filesystem over a wrapped DVC filesystem (see module docstring)."""

    protocol = SCHEME
    root_marker = "/"
    cachable = False
    async_impl = False

    def __init__(
        self,
        inner: FileSystem,
        inner_root: str,
        keys: LazyRepoKeys,
        hide_names: bool = True,
        fsid_seed: str = "",
        pins: Callable[[], dict[str, str]] | None = None,
        journal: PushJournal | None = None,
        naming: RemoteNaming | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.journal = journal
        self.pins = service_hooks.memoise(pins) if pins is not None else None
        self.inner = inner
        self.inner_root = inner_root.rstrip(inner.sep) or inner_root
        self.keys = keys
        self.hide_names = hide_names
        self.namer = Namer(naming or RemoteNaming(), keys)
        self._fsid = "secure_" + hashlib.sha256(fsid_seed.encode()).hexdigest()[:24]
        self._root_made = False
        self._root_lock, self.domains = threading.Lock(), DomainStore(self)

    # --- paths -------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith(f"{SCHEME}://"):
            return "/"
        return path or "/"

    @property
    def fsid(self) -> str:
        return self._fsid

    @staticmethod
    def _rel(path: str) -> str:
        rel = posixpath.normpath("/" + str(path)).lstrip("/")
        return "" if rel == "." else rel

    def _join_inner(self, *parts: str) -> str:
        return fs_join(self.inner, self.inner_root, *[p for p in parts if p])

    def write_path(self, rel: str) -> str:
        """Where ``rel`` is written: its name under the remote's own naming."""
        if not rel:
            return self.inner_root
        return self._join_inner(self.namer.hidden(rel) if self.hide_names else rel)

    def object_path(self, rel: str) -> str:
        """Where ``rel`` is read: :meth:`write_path`, or its scheme-1 name if only that is
        stored while the pin says such names may remain (docs/spec/hidden-names.md §9)."""
        path, old = self.write_path(rel), self.legacy_path(rel)
        if old is not None and not self.inner.exists(path) and self.inner.exists(old):
            return old
        return path

    def legacy_path(self, rel: str) -> str | None:
        legacy = self.namer.legacy(rel) if rel and self.hide_names else None
        return self._join_inner(legacy) if legacy is not None else None

    def _reveal(self, inner_path: str) -> str | None:
        root = self.inner_root.rstrip("/") + "/"
        if not inner_path.startswith(root):
            return None
        sub = inner_path[len(root):]
        if not self.hide_names:
            return sub
        rel = self.namer.reveal(sub)
        if rel is None:
            logger.debug("dvc-secure: ignoring foreign object %s", inner_path)
        return rel

    # --- listing -----------------------------------------------------------------------

    def _inner_find(self, inner_path: str) -> list[str]:
        try:
            return list(self.inner.find(inner_path))
        except FileNotFoundError:
            return []

    def _find_rels(self, rel: str, prefix: bool) -> Iterator[str]:
        """Plaintext names under ``rel`` (a directory, or a name prefix when ``prefix``)."""
        if not self.hide_names:
            if prefix:
                parent, stem = posixpath.split(rel)
                for p in self._inner_find(self._join_inner(parent)):
                    r = self._reveal(p)
                    if r is not None and r.startswith(rel if parent else stem):
                        yield r
            else:
                for p in self._inner_find(self._join_inner(rel)):
                    r = self._reveal(p)
                    if r is not None:
                        yield r
            return
        shard = SHARD.match(rel)
        if shard:
            # DVC lists its object store shard by shard (xx = first two hex digits) and only
            # uses the union, so hidden shard xx stands in for plaintext shard xx: the
            # estimate from shard "00" and the full traversal stay exact.
            token_prefix = shard.group("rest") or ""
            for p in self._inner_find(self._join_inner(shard.group("xy"))):
                tail = p.rsplit("/", 1)[-1]
                if token_prefix and not tail.startswith(token_prefix):
                    continue
                r = self._reveal(p)
                if r is not None and r.startswith(shard.group("ns")):
                    yield r
            return
        want = rel if prefix else (rel + "/" if rel else "")
        for p in self._inner_find(self.inner_root):
            r = self._reveal(p)
            if r is not None and r.startswith(want):
                yield r

    def find(self, path: str, maxdepth: int | None = None, withdirs: bool = False,
             detail: bool = False, **kwargs: Any) -> Any:
        rel = self._rel(self._strip_protocol(path))
        names = sorted("/" + r for r in self._find_rels(rel, bool(kwargs.get("prefix"))))
        if detail:
            return {n: self.info(n) for n in names}
        return names

    def ls(self, path: str, detail: bool = False, **kwargs: Any) -> Any:
        rel = self._rel(self._strip_protocol(path))
        base = rel + "/" if rel else ""
        entries: dict[str, dict[str, Any]] = {}
        for r in self._find_rels(rel, False):
            head = r[len(base):].split("/", 1)
            name = "/" + base + head[0]
            if len(head) == 1:
                entries[name] = {"name": name, "type": "file", "size": None}
            else:
                entries.setdefault(name, {"name": name, "type": "directory", "size": 0})
        if not entries and not self.exists(path):
            raise FileNotFoundError(path)
        return list(entries.values()) if detail else sorted(entries)

    # --- metadata ------------------------------------------------------------------------

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        rel = self._rel(self._strip_protocol(path))
        name = "/" + rel
        if not rel:
            if self.inner.exists(self.inner_root):
                return {"name": "/", "type": "directory", "size": 0}
            raise FileNotFoundError(path)
        target = self.object_path(rel)
        try:
            inner_info = self.inner.info(target)
        except FileNotFoundError:
            inner_info = None
        if inner_info is not None and inner_info.get("type") != "directory":
            size = inner_info.get("size")
            plain = plaintext_size(size, DEFAULT_SEGMENT_LOG2) if size is not None else None
            # report the plaintext size and never the wrapped store's md5/etag
            return {"name": name, "type": "file", "size": plain if plain is not None else size}
        if inner_info is not None or any(True for _ in self._find_rels(rel, False)):
            return {"name": name, "type": "directory", "size": 0}
        raise FileNotFoundError(path)

    def exists(self, path: str, **kwargs: Any) -> bool:
        rel = self._rel(self._strip_protocol(path))
        if not rel:
            return bool(self.inner.exists(self.inner_root))
        if self.inner.exists(self.object_path(rel)):
            return True
        # hidden names keep no directories: a directory (e.g. the run cache's "runs", which
        # `dvc pull --run-cache` probes first) exists when an object lies below it
        if self.hide_names and (OBJECT_PATH.search(rel) is None or rel.startswith("runs/")):
            return any(True for _ in self._find_rels(rel, False))
        return self.domains.erased(rel) is not None  # a tombstone stands in (erasure.md)

    def isfile(self, path: str) -> bool:
        try:
            return bool(self.info(path)["type"] == "file")
        except FileNotFoundError:
            return False

    def isdir(self, path: str) -> bool:
        try:
            return bool(self.info(path)["type"] == "directory")
        except FileNotFoundError:
            return False

    def checksum(self, path: str) -> str:
        raise NotImplementedError("secure remotes expose no checksums of their content")

    # --- directories and removal ------------------------------------------------------------

    def _ensure_root(self) -> None:
        """Before the first write: the root exists, and holds no objects stored under the
        other naming scheme (``hide_names`` changed: a push would store a second copy)."""
        if not self._root_made:
            with self._root_lock:
                if not self._root_made:
                    self._check_naming()
                    self.inner.makedirs(self.inner_root, exist_ok=True)
                    self._root_made = True

    def _check_naming(self) -> None:
        try:
            refuse_other_naming(self.inner, self.inner_root, self.hide_names)
        except DvcSecureError as exc:
            raise DvcSecureDvcError(exc) from None
        if self.hide_names:
            self.namer.warn_scheme1_write()

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        self._ensure_root()
        rel = self._rel(self._strip_protocol(path))
        if rel and not self.hide_names:
            self.inner.makedirs(self._join_inner(rel), exist_ok=True)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        self.makedirs(path, exist_ok=True)

    def rm_file(self, path: str) -> None:
        rel = self._rel(self._strip_protocol(path))
        if not rel:
            raise IsADirectoryError(path)
        if not self._pinned([path])[0]:
            return  # pinned by a sealed version: see rm()
        self._remove(rel)

    def _remove(self, rel: str) -> None:
        """Delete object ``rel`` (and a scheme-1 copy an unfinished migration left)."""
        self.inner.rm_file(self.object_path(rel))
        old = self.legacy_path(rel)
        if old is not None and self.inner.exists(old):
            self.inner.rm_file(old)

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def _pinned(self, paths: list[Any]) -> tuple[list[Any], list[tuple[str, str]]]:
        """Split ``paths`` into (deletable, pinned) by the objects sealed versions need."""
        if self.pins is None:
            return paths, []
        pins: dict[str, str] | None = None
        keep, pinned = [], []
        for p in paths:
            m = OBJECT_PATH.search(self._rel(self._strip_protocol(p)))
            if m is None:
                keep.append(p)
                continue
            if pins is None:
                pins = self.pins()
            label = pins.get(m.group(1) + m.group(2))
            if label is None:
                keep.append(p)
            else:
                pinned.append((str(p), label))
        return keep, pinned

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        paths, pinned = self._pinned(path if isinstance(path, list) else [path])
        if pinned:
            logger.warning(
                "dvc-secure kept %d object(s) that sealed versions still need (e.g. %s for %s); "
                "they stay recoverable. To delete sealed data on purpose (erasure, expired "
                "retention) see docs/verification.md#garbage-collection",
                len(pinned), pinned[0][0], pinned[0][1],
            )
        for p in paths:
            rel = self._rel(self._strip_protocol(p))
            target = self.object_path(rel) if rel else None
            if target is not None and self.inner.isfile(target):
                self._remove(rel)
            elif recursive:
                for r in list(self._find_rels(rel, False)):
                    self._remove(r)
            else:
                raise FileNotFoundError(p)

    def rmdir(self, path: str) -> None:
        if not self.hide_names:
            self.inner.rmdir(self._join_inner(self._rel(self._strip_protocol(path))))

    # --- data ------------------------------------------------------------------------------

    @service_hooks.failures_counted
    def upload_stream(self, source: IO[bytes], path: str, size: int | None = None,
                      domain: str | None = None) -> ObjectSeal:
        """Encrypt ``source`` and store it as ``path``; a failure leaves no partial object.

        ``size`` (the plaintext size, when known) lets the cleanup tell a partial upload from
        a complete object that was already there; ``domain``: a key domain (docs/erasure.md).
        """
        rel = self._rel(self._strip_protocol(path))
        if not rel:
            raise IsADirectoryError(path)
        keys = self.keys.get()
        reader = EncryptingReader(
            cast(BinaryIO, source),
            data_key=self.domains.data_key_for_upload(domain, rel),  # docs/erasure.md
            epoch=keys.keyset.current_epoch,
            object_id=rel.encode(),
            signer=keys.signer(),  # the seal's ciphertext digest: journal and upload record
        )
        target = self.write_path(rel)
        self._ensure_root()
        complete_size = ciphertext_size(size) if size is not None else None
        existed = self.inner.exists(target) if complete_size is None else None
        try:
            local = type(self.inner) is LocalFileSystem  # same steps, fewer syscalls
            (write_local_atomically if local else self.inner.upload_fobj)(cast(IO[bytes], reader), target)
        except BaseException:
            self._remove_partial(target, complete_size, existed)
            raise
        finally:
            reader.close()
        seal = reader.seal
        if seal is None:
            raise DvcSecureError(f"upload of '{rel}' ended before the object was complete")
        service_hooks.count("up", seal.plaintext_size)
        if seal.ciphertext_sha256 is not None:
            stored = StoredObject(self.storage_rel(target), seal.ciphertext_size,
                                  seal.ciphertext_sha256.hex())
            if self.journal is not None:
                self.journal.record(self.fsid, rel, stored)
            service_hooks.uploaded(self, stored)
        return seal

    def _remove_partial(self, target: str, complete_size: int | None, existed: bool | None) -> None:
        # Stores without atomic uploads may keep a prefix, which a later push would take
        # for a complete object (a pull rejects it). Never delete a complete object that
        # was there before this upload.
        try:
            info = self.inner.info(target)
        except FileNotFoundError:
            return
        except Exception:  # the upload error matters more than this check's
            logger.warning("dvc-secure: could not check for a partial upload at %s", target)
            return
        partial = info.get("size") != complete_size if complete_size is not None else not existed
        if partial:
            try:
                self.inner.rm_file(target)
            except Exception:  # the upload error matters more than this cleanup's
                logger.warning("dvc-secure: could not remove partial upload %s", target)

    def storage_rel(self, inner_path: str) -> str:
        root = self.inner_root.rstrip("/") + "/"
        return inner_path[len(root):] if inner_path.startswith(root) else inner_path

    def put_file(self, lpath: str, rpath: str, callback: Callback = DEFAULT_CALLBACK,
                 **kwargs: Any) -> None:
        try:
            f = open(lpath, "rb")  # noqa: SIM115 - closed by the with below
        except IsADirectoryError:
            self.makedirs(rpath, exist_ok=True)
            return
        with f:
            size = os.fstat(f.fileno()).st_size  # one open + fstat per object, no stat by name
            callback = per_file_progress(callback, size)
            callback.set_size(size)
            self.upload_stream(cast(IO[bytes], ProgressSource(f, callback)), rpath, size=size)

    @service_hooks.failures_counted
    def get_file(self, rpath: str, lpath: str, callback: Callback = DEFAULT_CALLBACK,
                 outfile: Any = None, **kwargs: Any) -> None:
        rel = self._rel(self._strip_protocol(rpath))
        keys = self.keys.get()
        target = self.object_path(rel)
        try:  # no separate info(): one request fewer per object on S3/SSH
            src = self.inner.open(target, "rb")
        except FileNotFoundError:
            raise self.domains.gone(rel, f"{rpath} is not on the secure remote") from None
        with src:
            size = stream_size(src)
            plain = plaintext_size(size, DEFAULT_SEGMENT_LOG2) if size is not None else None
            callback = per_file_progress(callback, plain)
            if plain is not None:
                callback.set_size(plain)
            directory = os.path.dirname(os.path.abspath(lpath))
            try:  # the directory is there for all but the first object of a shard
                fd, partial = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
            except FileNotFoundError:
                os.makedirs(directory, exist_ok=True)
                fd, partial = tempfile.mkstemp(dir=directory, prefix=PARTIAL_PREFIX)
            try:
                with os.fdopen(fd, "wb") as out:
                    seal = decrypt_checked(src, ProgressSink(out, callback), rel, keys, self.domains,
                                           plaintext_sha256=False)
                os.replace(partial, lpath)
            except BaseException:
                # never leave unauthenticated plaintext where DVC could pick it up
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
                service_hooks.download_failed(lpath)  # nothing to move into the cache
                raise
        service_hooks.count("down", seal.plaintext_size)

    def verify_object(self, path: str) -> ObjectSeal:
        """Download, authenticate and decrypt an object, keeping no plaintext (``--deep``)."""
        rel = self._rel(self._strip_protocol(path))
        keys = self.keys.get()
        with self.inner.open(self.object_path(rel), "rb") as src:
            return decrypt_checked(src, Discard(), rel, keys, self.domains)

    def stored_object(self, path: str) -> StoredObject | None:
        """Where and what the ciphertext of ``path`` is (from this clone's push journal, else
        by hashing the stored ciphertext once it authenticated); None if it is not stored."""
        rel = self._rel(self._strip_protocol(path))
        hit = self.journal.lookup(self.fsid, rel) if self.journal is not None else None
        target = self.object_path(rel)
        if hit is not None and hit.path == self.storage_rel(target):  # (not since renamed)
            return hit
        try:
            with self.inner.open(target, "rb") as f:  # not uploaded by us: authenticate it
                size, sha256 = authenticated_ciphertext(f, rel, self.storage_rel(target),
                                                        self.keys.get(), self.domains)
        except FileNotFoundError:
            return None
        obj = StoredObject(self.storage_rel(target), size, sha256)
        if self.journal is not None:
            self.journal.record(self.fsid, rel, obj)
        return obj

    def storage_path(self, rel_storage: str) -> str:
        """Absolute path in the wrapped storage of a path relative to the storage root."""
        return self._join_inner(rel_storage)

    def _open(self, path: str, mode: str = "rb", block_size: Any = None,
              autocommit: bool = True, cache_options: Any = None, **kwargs: Any) -> Any:
        if "r" in mode:
            rel = self._rel(self._strip_protocol(path))
            keys = self.keys.get()
            spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
            try:
                with self.domains.open_stored(rel) as src:  # a tombstone: ErasedError
                    decrypt_checked(src, spool, rel, keys, self.domains)
            except BaseException:
                spool.close()
                raise
            spool.seek(0)
            return spool
        if "w" in mode:
            return EncryptOnClose(self, path)
        raise ValueError(f"unsupported mode {mode!r} on a secure remote")

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        with self.open(path1, "rb") as src:
            self.upload_stream(src, path2)


