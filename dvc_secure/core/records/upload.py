"""Upload records: a writer's signed list of the ciphertexts it stored on a secure remote
(docs/spec/repair.md).

Pure model: parse, canonicalise, sign, check against a keyring's trust, and answer "is
this stored ciphertext one that a trusted writer uploaded under this storage path?".
``verify --remote`` uses it to accept an object whose bytes differ from the sidecar's pin
because it was pushed again (repair, a re-seeded or backup remote), and nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dvc_secure.core.format.primitives import SigningKeyPair, valid_signers
from dvc_secure.core.records import envelope
from dvc_secure.errors import UploadRecordError

RECORD_FORMAT = "dvc-secure-upload-record"
RECORD_VERSION = 1
REMOTE_INDEX = "remote_index"  # optional: the sealed index these objects stand for (§3a)
SIGN_LABEL = b"dvc-secure/v1/upload-record-signature\x00"
UPLOAD_DIR = "dvc-secure/uploads"  # relative to the secure remote's storage root
_HEX64 = re.compile(r"[0-9a-f]{64}")
_HINT = "ignore it; 'dvc-secure repair' pushes the objects again and writes a valid record"
MAX_SIZE = (1 << 63) - 1


def record_storage_path(digest: str) -> str:
    """Where a record whose file bytes hash to ``digest`` is stored (storage-root relative)."""
    return f"{UPLOAD_DIR}/{digest}.json"



def _bad(where: str, what: str) -> UploadRecordError:
    return UploadRecordError(f"upload record {where}: {what}", hint=_HINT)


def clean_path(path: str) -> bool:
    """A storage path as remote indexes list it: relative, no empty, '.' or '..' parts."""
    return bool(path) and not path.startswith("/") and not any(
        p in ("", ".", "..") for p in path.split("/"))


@dataclass(frozen=True, order=True)
class UploadedObject:
    """One stored ciphertext: where it lies in the storage and what its bytes are."""

    path: str  # relative to the secure remote's storage root (the hidden name)
    sha256: str  # of the ciphertext
    size: int  # ciphertext bytes

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> UploadedObject:
        if not isinstance(d, dict):
            raise _bad(where, "an object entry must be a JSON object")
        unknown = set(d) - {"path", "sha256", "size"}
        if unknown:
            raise _bad(where, f"an object entry has unknown fields {sorted(unknown)}")
        path = d.get("path")
        if not isinstance(path, str) or not clean_path(path):
            raise _bad(where, f"object path {path!r} is not a clean relative path")
        sha = d.get("sha256")
        if not isinstance(sha, str) or not _HEX64.fullmatch(sha):
            raise _bad(where, "'sha256' must be 64 lowercase hex digits")
        size = d.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE:
            raise _bad(where, f"'size' must be an integer in 0..{MAX_SIZE}")
        return cls(path, sha, size)


@dataclass(frozen=True)
class UploadRecord:
    keyring_id: str
    epoch: int  # the key epoch the listed objects were encrypted under
    created: str
    objects: tuple[UploadedObject, ...]
    signatures: tuple[tuple[str, str], ...] = ()
    unknown: tuple[tuple[str, Any], ...] = field(default=())

    def signed_dict(self) -> dict[str, Any]:
        return {**dict(self.unknown), "format": RECORD_FORMAT, "version": RECORD_VERSION,
                "keyring_id": self.keyring_id, "epoch": self.epoch, "created": self.created,
                "objects": [o.to_dict() for o in sorted(self.objects)]}

    def canonical_bytes(self) -> bytes:
        return envelope.canonical(self.signed_dict())

    def to_bytes(self) -> bytes:
        return envelope.file_bytes(self.signed_dict(), self.signatures)

    @property
    def file_digest(self) -> str:
        """SHA-256 of the file bytes: the record's storage name."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    def sign(self, key: SigningKeyPair) -> UploadRecord:
        signatures = envelope.add_signature(self.signatures, key,
                                            SIGN_LABEL + self.canonical_bytes())
        return UploadRecord(self.keyring_id, self.epoch, self.created,
                        tuple(sorted(self.objects)), signatures, self.unknown)

    def valid_signers(self, keys: Mapping[str, bytes]) -> list[str]:
        return valid_signers(self.signatures, keys, SIGN_LABEL + self.canonical_bytes())

    @property
    def remote_index(self) -> str | None:
        """The sealed remote index whose objects these exactly are, stored under this
        remote's own hidden names (docs/spec/repair.md §3a); None: a plain upload record."""
        value = dict(self.unknown).get(REMOTE_INDEX)
        return value if isinstance(value, str) else None

    @classmethod
    def create(cls, keyring_id: str, epoch: int, created: str,
               objects: Iterable[UploadedObject], remote_index: str | None = None
               ) -> UploadRecord:
        """An unsigned record; the same path listed twice keeps the last-written bytes."""
        by_path: dict[str, UploadedObject] = {}
        for o in objects:
            by_path[o.path] = o
        extra = ((REMOTE_INDEX, remote_index),) if remote_index is not None else ()
        return cls(keyring_id, epoch, created, tuple(sorted(by_path.values())), unknown=extra)

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> UploadRecord:
        doc, s = envelope.open_envelope(data, where, RECORD_FORMAT, _bad)
        version = s.get("version")
        if version != RECORD_VERSION or isinstance(version, bool):
            raise UploadRecordError(f"upload record {where}: version {version!r} is not supported",
                                    hint="upgrade dvc-secure")
        keyring_id = envelope.keyring_id_of(s, where, _bad)
        epoch = s.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch < (1 << 32):
            raise _bad(where, "'epoch' must be an integer in 1..2^32-1")
        created, objects = envelope.created_and_objects(s, where, _bad)
        entries = tuple(UploadedObject.from_dict(o, where) for o in objects)
        if len({e.path for e in entries}) != len(entries):
            raise _bad(where, "a storage path is listed twice")
        index = s.get(REMOTE_INDEX)
        if REMOTE_INDEX in s and (not isinstance(index, str) or not _HEX64.fullmatch(index)):
            raise _bad(where, f"'{REMOTE_INDEX}' must be 64 lowercase hex digits")
        return cls(keyring_id=keyring_id, epoch=epoch, created=created,
                   objects=tuple(sorted(entries)),
                   signatures=envelope.signatures_of(doc, where, _bad),
                   unknown=envelope.unknown_fields(s))


class UploadTrust:
    """What checking a record needs from the keyring: its id, epochs, and who may sign
    objects of which epoch (current writers/admins: any; former writers: up to their last)."""

    def __init__(self, keyring_id: str, epochs: Iterable[int], writers: Mapping[str, bytes],
                 former: Mapping[str, tuple[bytes, int]] | None = None) -> None:
        self.keyring_id = keyring_id
        self.epochs = frozenset(epochs)
        self.writers = dict(writers)
        self.former = dict(former or {})

    def keys_for_epoch(self, epoch: int) -> dict[str, bytes]:
        keys = {k: pub for k, (pub, last) in self.former.items() if epoch <= last}
        keys.update(self.writers)
        return keys


def check_record(record: UploadRecord, trust: UploadTrust, where: str) -> list[str]:
    """Why ``record`` may not be used (empty: it may). Its storage name is not trusted."""
    problems = []
    if record.keyring_id != trust.keyring_id:
        problems.append(f"{where} belongs to another keyring")
    if record.epoch not in trust.epochs:
        problems.append(f"{where} is for epoch {record.epoch}, which the keyring does not have")
    elif not record.valid_signers(trust.keys_for_epoch(record.epoch)):
        problems.append(f"{where} has no valid signature by a writer or admin trusted for "
                        f"epoch {record.epoch}")
    return problems


class Attestations:
    """Stored ciphertexts vouched for by usable upload records: path -> {(sha256, size)}."""

    def __init__(self, records: Iterable[UploadRecord] = ()) -> None:
        self._map: dict[str, set[tuple[str, int]]] = {}
        self._index: dict[str, list[tuple[str, tuple[UploadedObject, ...]]]] = {}
        for record in records:
            self.add(record)

    def add(self, record: UploadRecord) -> None:
        for o in record.objects:
            self._map.setdefault(o.path, set()).add((o.sha256, o.size))
        if record.remote_index is not None:
            self._index.setdefault(record.remote_index, []).append(
                (record.created, record.objects))

    def index_objects(self, digest: str, count: int) -> tuple[UploadedObject, ...] | None:
        """The objects of sealed remote index ``digest`` as a writer recorded storing them
        here under other names (the newest record listing exactly ``count``); None if none."""
        fits = sorted((c, objs) for c, objs in self._index.get(digest, ()) if len(objs) == count)
        return fits[-1][1] if fits else None

    def __bool__(self) -> bool:
        return bool(self._map)

    def accepts(self, path: str, sha256: str, size: int) -> bool:
        return (sha256, size) in self._map.get(path, ())

    def digests(self, path: str) -> list[str]:
        """Every recorded ciphertext digest of ``path`` (a re-encryption may start there)."""
        return sorted({sha for sha, _size in self._map.get(path, ())})
