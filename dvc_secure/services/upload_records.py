"""Signed upload records on a secure remote: writing them after uploads, reading them for
``verify --remote`` (format: docs/spec/repair.md, model: core/records/upload.py).

Every process that stores ciphertexts through a secure remote — ``dvc push``, the pre-push
hook's push, ``dvc-secure repair``, sealing's manifest upload — ends by writing one record
per remote, signed by the identity that signed the objects, listing each stored object's
storage path, ciphertext SHA-256 and size. ``verify --remote`` (no key needed) accepts a
stored object whose bytes differ from the sidecar's pin when a record usable under this
clone's trusted keyring lists exactly those bytes at that path.
"""

from __future__ import annotations

import datetime as dt
import io
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_secure.core.records.upload import (
    UPLOAD_DIR,
    Attestations,
    UploadedObject,
    UploadRecord,
    UploadTrust,
    check_record,
    record_storage_path,
)
from dvc_secure.errors import DvcSecureError

if TYPE_CHECKING:
    from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
    from dvc_secure.core.keys.keyring import Keyring

RECORD_INVALID = "upload-record-invalid"


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_record(fs: SecureFsspec, objects: Iterable[Any], now: str | None = None,
                 remote_index: str | None = None) -> str | None:
    """Sign and store one record for ``objects`` (StoredObjects ``fs`` stored), with the
    keys the uploads used; returns its storage path (None: nothing to record).
    ``remote_index``: they are exactly that sealed index's objects (repair.md §3a)."""
    entries = [UploadedObject(o.path, o.sha256, o.size) for o in objects]
    if not entries:
        return None
    keys = fs.keys.get()
    record = UploadRecord.create(keys.keyring.keyring_id, keys.keyset.current_epoch,
                                 now or _now(), entries, remote_index).sign(keys.signer())
    data = record.to_bytes()
    rel = record_storage_path(record.file_digest)
    path = fs.storage_path(rel)
    if not fs.inner.exists(path):
        fs.inner.upload_fobj(io.BytesIO(data), path)
    return rel


def publish_pending(strict: bool = False) -> list[str]:
    """Write the records of every upload this process made and has not recorded yet.

    ``strict``: raise on failure (``dvc-secure repair``); otherwise warn (at the exit of
    ``dvc push``: the objects are stored, a missing record only makes ``verify --remote``
    ask for ``dvc-secure repair``)."""
    from dvc_secure.adapters.dvc.service_hooks import take_uploads

    by_fs: dict[int, tuple[Any, list[Any]]] = {}
    for fs, stored in take_uploads():
        by_fs.setdefault(id(fs), (fs, []))[1].append(stored)
    written = []
    for fs, objects in by_fs.values():
        try:
            rel = write_record(fs, objects)
        except Exception as exc:
            if strict:
                raise
            msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
            print(f"dvc-secure: warning: the upload record of {len(objects)} object(s) was not "
                  f"written ({msg}); 'dvc-secure repair' writes it", file=sys.stderr)
            continue
        if rel is not None:
            written.append(rel)
    return written


def trust_of(keyring: Keyring) -> UploadTrust:
    """The trust a keyring gives upload records: the same as it gives object signers."""
    from dvc_secure.core.keys.identity import key_fingerprint

    former = {key_fingerprint(pub): (pub, last)
              for pub, last in keyring.former_signer_epochs().items()}
    return UploadTrust(keyring.keyring_id, [e.number for e in keyring.epochs],
                       keyring.sealer_keys(), former)


def trusted_keyring(dvc_dir: Path) -> Keyring:
    """The newest keyring this clone trusts (no identity needed)."""
    from dvc_secure.adapters.local.repo_keyring import load_trusted_keyrings

    return load_trusted_keyrings(dvc_dir).newest


def load_attestations(fs: SecureFsspec, trust: UploadTrust) -> tuple[Attestations, list[str]]:
    """Usable records stored on ``fs``'s storage, and why the others were ignored."""
    inner = fs.inner
    root = fs.storage_path(UPLOAD_DIR)
    try:
        paths = sorted(str(p) for p in inner.find(root))
    except FileNotFoundError:
        paths = []
    accepted = Attestations()
    ignored: list[str] = []
    for path in paths:
        if not path.endswith(".json"):
            continue
        where = fs.storage_rel(path)
        try:
            with inner.open(path, "rb") as f:
                record = UploadRecord.from_bytes(f.read(), where)
        except FileNotFoundError:
            continue
        except DvcSecureError as exc:
            ignored.append(exc.message)
            continue
        problems = check_record(record, trust, where)
        if problems:
            ignored.append("; ".join(problems))
        else:
            accepted.add(record)
    return accepted, ignored
