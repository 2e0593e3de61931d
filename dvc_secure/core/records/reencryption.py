"""Re-encryption records: a signed, git-tracked list of stored objects that were re-encrypted
under a new key epoch (docs/spec/reencryption.md).

Pure model: parse, canonicalise, sign, verify, and answer "may the ciphertext pinned as
``old`` now legitimately be ``new``?". ``verify --remote`` uses it to accept an object whose
bytes changed because a writer re-encrypted it, and nothing else.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dvc_secure.core.format.primitives import SigningKeyPair, valid_signers
from dvc_secure.core.records import envelope
from dvc_secure.errors import ReencryptionError

RECORD_FORMAT = "dvc-secure-reencryption"
RECORD_VERSION = 1
SIGN_LABEL = b"dvc-secure/v1/reencryption-signature\x00"
RECORD_DIR = ".dvc/secure/reencrypted"  # relative to the repository root
_HEX64 = re.compile(r"[0-9a-f]{64}")
_FILE = re.compile(r"epoch-([1-9][0-9]{0,9})\.json")
_HINT = "restore the record from git history, or re-run the re-encryption to rewrite it"


def record_relpath(epoch: int) -> str:
    """Repository-relative path of the record for ``epoch``."""
    return f"{RECORD_DIR}/epoch-{epoch}.json"


def epoch_of_filename(name: str) -> int | None:
    """The epoch a record file name claims (``epoch-<N>.json``), None if it is no record."""
    m = _FILE.fullmatch(name)
    return int(m.group(1)) if m else None



def _bad(where: str, what: str) -> ReencryptionError:
    return ReencryptionError(f"re-encryption record {where}: {what}", hint=_HINT)


def _int(d: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise _bad(where, f"'{key}' must be an integer in {low}..{high}")
    return v


def _str(d: Mapping[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise _bad(where, f"'{key}' must be a non-empty string")
    return v


def _hex(d: Mapping[str, Any], key: str, where: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise _bad(where, f"'{key}' must be 64 lowercase hex digits")
    return v


@dataclass(frozen=True, order=True)
class ReencryptedObject:
    """One stored object: its ciphertext before and after re-encryption."""

    remote: str  # DVC remote name, as sidecars name it
    path: str  # storage path relative to the secure remote's storage root (hidden name)
    old_sha256: str
    old_size: int
    new_sha256: str
    new_size: int

    def to_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "path": self.path, "old_sha256": self.old_sha256,
                "old_size": self.old_size, "new_sha256": self.new_sha256,
                "new_size": self.new_size}

    @classmethod
    def from_dict(cls, d: Any, where: str) -> ReencryptedObject:
        if not isinstance(d, dict):
            raise _bad(where, "an object entry must be a JSON object")
        unknown = set(d) - {"remote", "path", "old_sha256", "old_size", "new_sha256", "new_size"}
        if unknown:
            raise _bad(where, f"an object entry has unknown fields {sorted(unknown)}")
        path = _str(d, "path", where)
        if path.startswith("/") or any(p in ("", ".", "..") for p in path.split("/")):
            raise _bad(where, f"object path '{path}' is not a clean relative path")
        entry = cls(remote=_str(d, "remote", where), path=path,
                    old_sha256=_hex(d, "old_sha256", where),
                    old_size=_int(d, "old_size", where, 0, (1 << 63) - 1),
                    new_sha256=_hex(d, "new_sha256", where),
                    new_size=_int(d, "new_size", where, 0, (1 << 63) - 1))
        if entry.old_sha256 == entry.new_sha256:
            raise _bad(where, f"object {path} maps a ciphertext digest to itself")
        return entry


@dataclass(frozen=True)
class ReencryptionRecord:
    keyring_id: str
    epoch: int
    created: str
    objects: tuple[ReencryptedObject, ...]
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
    def digest(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    def sign(self, key: SigningKeyPair) -> ReencryptionRecord:
        """A copy signed by ``key`` (replacing an earlier signature by the same key)."""
        signatures = envelope.add_signature(self.signatures, key,
                                            SIGN_LABEL + self.canonical_bytes())
        return ReencryptionRecord(self.keyring_id, self.epoch, self.created,
                              tuple(sorted(self.objects)), signatures, self.unknown)

    def with_objects(self, objects: Iterable[ReencryptedObject], created: str) -> ReencryptionRecord:
        """An unsigned copy listing the union of its objects and ``objects``."""
        merged = tuple(sorted(set(self.objects) | set(objects)))
        _check_unique(merged, "(merged)")
        return ReencryptionRecord(self.keyring_id, self.epoch, created, merged, (), self.unknown)

    def valid_signers(self, keys: Mapping[str, bytes]) -> list[str]:
        """Key ids among ``keys`` (key id -> Ed25519 public key) with a valid signature."""
        return valid_signers(self.signatures, keys, SIGN_LABEL + self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> ReencryptionRecord:
        doc, s = envelope.open_envelope(data, where, RECORD_FORMAT, _bad)
        if s.get("version") != RECORD_VERSION:
            raise ReencryptionError(
                f"re-encryption record {where}: version {s.get('version')!r} is not supported",
                hint="upgrade dvc-secure")
        keyring_id = envelope.keyring_id_of(s, where, _bad)
        # epoch 1 is where every keyring starts: nothing can be re-encrypted *to* it
        epoch = _int(s, "epoch", where, 2, (1 << 32) - 1)
        created, objects = envelope.created_and_objects(s, where, _bad)
        entries = tuple(ReencryptedObject.from_dict(o, where) for o in objects)
        _check_unique(entries, where)
        return cls(keyring_id=keyring_id, epoch=epoch, created=created,
                   objects=tuple(sorted(entries)),
                   signatures=envelope.signatures_of(doc, where, _bad),
                   unknown=envelope.unknown_fields(s))


def _check_unique(entries: Iterable[ReencryptedObject], where: str) -> None:
    seen: set[tuple[str, str, str]] = set()
    for e in entries:
        key = (e.remote, e.path, e.old_sha256)
        if key in seen:
            raise _bad(where, f"object {e.path} on '{e.remote}' is listed twice for the same "
                       "old ciphertext")
        seen.add(key)


class KeyringView:
    """What accepting a record needs from the keyring it is checked against."""

    def __init__(self, keyring_id: str, epochs: Iterable[int], sealer_keys: Mapping[str, bytes]) -> None:
        self.keyring_id = keyring_id
        self.epochs = frozenset(epochs)
        self.sealer_keys = dict(sealer_keys)


def check_record(record: ReencryptionRecord, keyring: KeyringView, claimed_epoch: int | None,
                 where: str) -> list[str]:
    """Why ``record`` may not be used (empty: it may). ``claimed_epoch``: from the file name."""
    problems = []
    if claimed_epoch is not None and claimed_epoch != record.epoch:
        problems.append(f"{where} names epoch {claimed_epoch} but records epoch {record.epoch}")
    if record.keyring_id != keyring.keyring_id:
        problems.append(f"{where} belongs to another keyring")
    if record.epoch not in keyring.epochs:
        problems.append(f"{where} is for epoch {record.epoch}, which the keyring does not have")
    if not record.valid_signers(keyring.sealer_keys):
        problems.append(f"{where} has no valid signature by a writer or admin of the keyring")
    return problems


class Replacements:
    """Accepted re-encryptions: (remote, storage path) -> old digest -> {(new digest, size)}."""

    def __init__(self, records: Iterable[ReencryptionRecord] = ()) -> None:
        self._map: dict[tuple[str, str], dict[str, set[tuple[str, int]]]] = {}
        self._epochs: dict[tuple[str, str, str], int] = {}  # (remote, path, old) -> epoch
        for record in records:
            self.add(record)

    def add(self, record: ReencryptionRecord) -> None:
        for o in record.objects:
            steps = self._map.setdefault((o.remote, o.path), {})
            steps.setdefault(o.old_sha256, set()).add((o.new_sha256, o.new_size))
            self._epochs.setdefault((o.remote, o.path, o.old_sha256), record.epoch)

    def __bool__(self) -> bool:
        return bool(self._map)

    def superseded_by(self, remote: str, path: str, sha256: str) -> int | None:
        """The epoch of a recorded re-encryption that replaced ciphertext ``sha256`` at
        ``path`` on ``remote`` (None: none did). That remote must then hold the successor:
        the old ciphertext there again is a rollback of the store to an epoch that revoked
        members may still open."""
        return self._epochs.get((remote, path, sha256))

    def accepts(self, remote: str, path: str, pinned_sha256: str, actual_sha256: str,
                actual_size: int) -> bool:
        """Does a chain of recorded re-encryptions lead from the pinned to the stored bytes?"""
        steps = self._map.get((remote, path), {})
        todo, seen = [pinned_sha256], {pinned_sha256}
        while todo:
            for digest, size in steps.get(todo.pop(), ()):
                if digest == actual_sha256 and size == actual_size:
                    return True
                if digest not in seen:  # cycles only come from forged records: stop there
                    seen.add(digest)
                    todo.append(digest)
        return False
