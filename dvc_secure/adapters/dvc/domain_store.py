"""Domain key files on one secure remote (docs/spec/domain-key.md): create, read, destroy.

Domain secrets are held in memory by this object only (one per opened remote, so per
process); nothing is written to the cache, ``.dvc/tmp`` or any other local file, so a
shred cannot leave a copy behind on this machine.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import posixpath
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_secure.core.format.domain_keys import (
    DOMAIN_DIR,
    derive_domain_data_key,
    domain_tag,
    header_authenticates,
    key_file_epoch,
    key_file_name,
    new_domain_secret,
    open_key_file,
    seal_key_file,
)
from dvc_secure.core.format.object_format import HEADER_LEN, ObjectHeader
from dvc_secure.core.records.paths import ERASURE_RECORD_DIR as RECORD_DIR
from dvc_secure.core.sidecar.metafile import parse_outputs
from dvc_secure.errors import DomainKeyMissingError, DvcSecureError, ErasedError

logger = logging.getLogger(__name__)
if TYPE_CHECKING:  # the record model is imported only where records exist
    from dvc_secure.core.records.erasure import ErasureRecord

_EPOCH_FILE = re.compile(r"epoch-([1-9][0-9]{0,9})\.key$")


def valid_erasure_records(dvc_dir: Path | str | None, keyring: Any) -> list[ErasureRecord]:
    """The erasure records in the workspace that enough admins of ``keyring`` signed."""
    if not dvc_dir:
        return []
    from dvc_secure.core.records.erasure import ErasureRecord

    out = []
    folder = Path(dvc_dir).parent / RECORD_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            record = ErasureRecord.from_bytes(path.read_bytes(), str(path))
        except (OSError, DvcSecureError):
            continue
        if not record.problems(keyring.keyring_id, keyring.admin_keys(), keyring.threshold,
                               path.stem, str(path)):
            out.append(record)
    return out


DOMAIN_MAP = "secure/domains.json"  # relative to .dvc/


def domain_map(dvc_dir: Path | str | None) -> dict[str, str]:
    """Object identity -> key domain, for the outputs of the metafiles the domain map names
    (directory listings read from the local cache); empty without a map."""
    if not dvc_dir:
        return {}
    path = Path(dvc_dir) / DOMAIN_MAP
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    out: dict[str, str] = {}
    root = Path(dvc_dir).parent
    for metafile, domain in sorted(doc.items()) if isinstance(doc, dict) else []:
        try:
            outputs = parse_outputs((root / metafile).read_bytes(), metafile).values()
        except (OSError, DvcSecureError):
            continue
        for out_ in outputs:
            oids = [out_.oid]
            if out_.oid.endswith(".dir"):
                listing = Path(dvc_dir) / "cache" / _object_rel(out_.oid)
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                    oids += [str(e["md5"]) for e in json.loads(listing.read_bytes())]
            out.update({_object_rel(o): str(domain) for o in oids})
    return out


def _object_rel(oid: str) -> str:
    return f"files/md5/{oid[:2]}/{oid[2:]}"


def update_domain_map(dvc_dir: Path, metafiles: list[str], domain: str) -> Path:
    path = dvc_dir / DOMAIN_MAP
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = {}
    doc.update(dict.fromkeys(metafiles, domain))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


_LISTING_COMMANDS = frozenset({"push", "status", "gc", "diff", "ls", "data"})


def _dvc_command() -> str | None:
    """The DVC subcommand this process runs (``python -m dvc push ...`` -> "push")."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    prog = os.path.basename(sys.argv[0]) if sys.argv else ""
    is_dvc = prog in ("dvc", "dvc.exe") or sys.argv[0].endswith(os.path.join("dvc", "__main__.py"))
    return words[0] if is_dvc and words else None


def _fixed(key: bytes) -> Callable[[int], bytes]:
    return lambda _epoch: key


def forget_domain(dvc_dir: Path, domain: str) -> None:
    """Remove ``domain`` from the domain map (after a shred)."""
    path = dvc_dir / DOMAIN_MAP
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    kept = {m: d for m, d in doc.items() if d != domain} if isinstance(doc, dict) else {}
    path.write_text(json.dumps(kept, indent=2, sort_keys=True) + "\n", encoding="utf-8")


class DomainStore:
    """The domain key files of one secure remote (``fs``: a SecureFsspec)."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, int], bytes] = {}
        self._listed: dict[int, list[tuple[str, bytes]]] = {}
        self._records: list[ErasureRecord] | None = None
        self._map: dict[str, str] | None = None

    def _dir(self, domain: str) -> str:
        name_key = self.fs.keys.get().name_key
        return str(self.fs.storage_path(f"{DOMAIN_DIR}/{domain_tag(name_key, domain)}"))

    def _path(self, domain: str, epoch: int) -> str:
        return posixpath.join(self._dir(domain), key_file_name(epoch))

    def _read(self, path: str) -> bytes | None:
        try:
            with self.fs.inner.open(path, "rb") as f:
                return bytes(f.read())
        except FileNotFoundError:
            return None

    def data_key(self, domain: str, epoch: int, create: bool = False) -> bytes:
        """The data key for objects of ``domain`` in key epoch ``epoch``. ``create``: make the
        domain's key file for this epoch on this remote if it does not exist yet."""
        with self._lock:
            hit = self._keys.get((domain, epoch))
            if hit is not None:
                return hit
            keys = self.fs.keys.get()
            epoch_key = keys.keyset.key_for_epoch(epoch)
            path = self._path(domain, epoch)
            blob = self._read(path)
            if blob is None and create and self._was_erased(domain):
                raise DomainKeyMissingError(
                    f"key domain '{domain}' was shredded; nothing is encrypted into it again",
                    hint=f"remove '{domain}' from .dvc/{DOMAIN_MAP}, or seal into a new domain")
            if blob is None:
                if not create:
                    raise DomainKeyMissingError(
                        f"key domain '{domain}' has no key for epoch {epoch} on this secure "
                        "remote: it was shredded, or its key file was deleted from the storage",
                        hint="see .dvc/secure/erasures/ for an erasure record; run "
                        "'dvc-secure verify --remote'")
                blob = seal_key_file(epoch_key, epoch, domain, new_domain_secret())
                self.fs.inner.makedirs(self._dir(domain), exist_ok=True)
                self.fs.inner.upload_fobj(io.BytesIO(blob), path)
                blob = self._read(path) or blob  # a concurrent creator may have won: use its
            got, got_epoch, secret = open_key_file(blob, epoch_key, path)
            if got != domain or got_epoch != epoch:
                raise DomainKeyMissingError(
                    f"the key file of domain '{domain}' (epoch {epoch}) on the storage belongs to "
                    "another domain or epoch: it was replaced", hint="run 'dvc-secure verify --remote'")
            key = derive_domain_data_key(epoch_key, secret, domain, epoch)
            self._keys[(domain, epoch)] = key
            return key

    def domain_of(self, rel: str) -> str | None:
        """The key domain a new upload of ``rel`` goes into, by the repository's domain map
        (``.dvc/secure/domains.json``: metafile -> domain, kept by ``seal --domain``)."""
        if self._map is None:
            self._map = domain_map(getattr(self.fs.keys, "dvc_dir", None))
        return self._map.get(rel)

    def data_key_for_upload(self, domain: str | None, rel: str = "") -> bytes:
        """The key a new object is encrypted with: the current epoch's, or its domain key."""
        keys = self.fs.keys.get()
        epoch = keys.keyset.current_epoch
        domain = domain or self.domain_of(rel)
        if domain is None:
            return bytes(keys.keyset.key_for_epoch(epoch))
        return self.data_key(domain, epoch, create=True)

    def candidates(self, epoch: int) -> list[bytes]:
        """Every domain data key of ``epoch`` this remote holds (listed once per process)."""
        return [key for _domain, key in self._named(epoch)]

    def _named(self, epoch: int) -> list[tuple[str, bytes]]:
        with self._lock:
            if epoch in self._listed:
                return self._listed[epoch]
        keys = self.fs.keys.get()
        found: list[tuple[str, bytes]] = []
        try:
            paths = list(self.fs.inner.find(self.fs.storage_path(DOMAIN_DIR)))
        except FileNotFoundError:
            paths = []
        for path in paths:
            m = _EPOCH_FILE.search(str(path))
            if m is None or int(m.group(1)) != epoch:
                continue
            blob = self._read(str(path))
            try:
                if blob is None or key_file_epoch(blob, str(path)) != epoch:
                    continue
                epoch_key = keys.keyset.key_for_epoch(epoch)
                domain, _e, secret = open_key_file(blob, epoch_key, str(path))
            except DvcSecureError as exc:
                logger.warning("dvc-secure: ignoring domain key file: %s", exc.message)
                continue
            found.append((domain, derive_domain_data_key(epoch_key, secret, domain, epoch)))
        with self._lock:
            self._listed[epoch] = found
        return found

    def stored_key(self, target: str, rel: str) -> tuple[str | None, bytes | None]:
        """(key domain or None for the repository key, the key whose header MAC verifies) of
        the stored object ``target``; (None, None) when no key this clone has opens it."""
        keys = self.fs.keys.get()
        with self.fs.inner.open(target, "rb") as f:
            head = f.read(HEADER_LEN)
        try:
            epoch = ObjectHeader.parse(head).epoch
            default = keys.keyset.key_for_epoch(epoch)
        except DvcSecureError:
            return None, None
        if header_authenticates(head, rel.encode(), default):
            return None, default
        for domain, key in self._named(epoch):
            if header_authenticates(head, rel.encode(), key):
                return domain, key
        return None, None

    def object_keys(self, target: str, rel: str) -> tuple[Callable[[int], bytes], bytes]:
        """For re-encryption of the stored object ``target`` (identity ``rel``): the key
        source that opens it, and the key its new encryption under the current epoch uses
        (its key domain's, or the repository's)."""
        keys = self.fs.keys.get()
        domain, key = self.stored_key(target, rel)
        if domain is None or key is None:
            return keys.keyset.key_for_epoch, self.data_key_for_upload(None)  # reader decides
        return _fixed(key), self.data_key_for_upload(domain)

    def has_any(self) -> bool:
        try:
            return bool(list(self.fs.inner.find(self.fs.storage_path(DOMAIN_DIR))))
        except FileNotFoundError:
            return False

    def _was_erased(self, domain: str) -> bool:
        dvc_dir = getattr(self.fs.keys, "dvc_dir", None)
        if not dvc_dir:
            return False
        return (Path(dvc_dir).parent / RECORD_DIR / f"{domain}.json").is_file()

    def erased(self, rel: str) -> ErasureRecord | None:
        """The valid erasure record that lists object ``rel``, if any (read once)."""
        if self._records is None:
            dvc_dir = getattr(self.fs.keys, "dvc_dir", None)
            if not dvc_dir or not (Path(dvc_dir).parent / RECORD_DIR).is_dir():
                self._records = []
            else:
                try:
                    self._records = valid_erasure_records(dvc_dir, self.fs.keys.get().keyring)
                except DvcSecureError:  # no keyring or identity here: no tombstones
                    return None
        return next((r for r in self._records if rel in r.objects), None)

    def open_stored(self, rel: str) -> Any:
        """The stored object ``rel`` opened for reading; ErasedError for a tombstone, except
        in a ``dvc push``/``status``/``gc``, which read a remote ``.dir`` only to learn what
        is there: for them an erased listing is simply absent (nothing to upload)."""
        try:
            return self.fs.inner.open(self.fs.object_path(rel), "rb")
        except FileNotFoundError:
            error = self.gone(rel, f"{rel} is not on the secure remote")
            if isinstance(error, ErasedError) and _dvc_command() in _LISTING_COMMANDS:
                raise FileNotFoundError(error.message) from None
            raise error from None

    def gone(self, rel: str, message: str) -> Exception:
        """What a read of the missing object ``rel`` raises: ErasedError for a tombstone."""
        record = self.erased(rel)
        return FileNotFoundError(message) if record is None else self._erased_error(rel, record)

    @staticmethod
    def _erased_error(rel: str, record: ErasureRecord) -> ErasedError:
        return ErasedError(
            f"'{rel}' belongs to key domain '{record.domain}', {record.describe()}: its key "
            "was destroyed on every secure remote, so it cannot be read; nothing was written",
            hint="this data was erased on purpose; see docs/erasure.md")

    def missing(self, rel: str, epoch: int) -> DvcSecureError | None:
        """Why no key opens object ``rel``."""
        record = self.erased(rel)
        if record is not None:
            return self._erased_error(rel, record)
        return DomainKeyMissingError(
            f"'{rel}' does not authenticate under the repository key of epoch {epoch} nor under "
            "any key domain's key on this remote, and no valid erasure record names it: its "
            "domain key file was deleted or replaced on the storage (or its domain was shredded "
            "after the revision checked out here, or the object was swapped); nothing was written",
            hint="check out the newest revision ('git pull') for erasure records; otherwise "
            "run 'dvc-secure verify --remote' and restore the key file from the other remote")

    def destroy(self, domain: str) -> int:
        """Delete every key file of ``domain`` on this remote; returns how many were deleted."""
        folder = self._dir(domain)
        try:
            paths = list(self.fs.inner.find(folder))
        except FileNotFoundError:
            paths = []
        for path in paths:
            self.fs.inner.rm_file(path)
        if getattr(self.fs.inner, "protocol", None) == "local" and os.path.isdir(folder):
            for sub in sorted(Path(folder).rglob("*"), reverse=True):
                sub.rmdir() if sub.is_dir() else sub.unlink()
            os.rmdir(folder)
        with self._lock:
            self._keys = {k: v for k, v in self._keys.items() if k[0] != domain}
            self._listed.clear()
        return len(paths)

    def exists(self, domain: str) -> bool:
        try:
            return bool(list(self.fs.inner.find(self._dir(domain))))
        except FileNotFoundError:
            return False
