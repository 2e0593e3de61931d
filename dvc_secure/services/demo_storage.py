"""What the storage provider sees, file by file: the demo's storage check.

Every file on the wrapped storage must be one of the kinds dvc-secure writes, and each
kind is checked for what it promises (docs/spec/hidden-names.md, object-format.md,
audit-log.md §5, the remote index in sidecar.md). A file of any other kind is a problem,
never skipped: the point is to prove that nothing else reaches the provider (so a left-over
partial upload or re-encryption temporary file fails the check too).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from dvc_secure.adapters.dvc.storage_names import join_long
from dvc_secure.core.audit.model import (
    EVENT_FORMAT,
    STORAGE_PREFIX,
    parse_storage_name,
    storage_name,
)
from dvc_secure.core.format.audit_box import open_event
from dvc_secure.core.format.names import NAMES_V1, reveal_name
from dvc_secure.core.format.object_format import HEADER_LEN, ObjectHeader
from dvc_secure.core.records.upload import UPLOAD_DIR, UploadRecord
from dvc_secure.core.sidecar.remote_index import INDEX_DIR, parse_index
from dvc_secure.errors import DvcSecureError

OBJECT, MANIFEST, RUN_CACHE, AUDIT_EVENT, REMOTE_INDEX, UPLOAD_RECORD = (
    "DVC object", "directory manifest", "run-cache entry", "audit event", "remote index",
    "upload record")
ENCRYPTED_KINDS = (OBJECT, MANIFEST, RUN_CACHE)
KINDS = (*ENCRYPTED_KINDS, AUDIT_EVENT, REMOTE_INDEX, UPLOAD_RECORD)

_DVC_OBJECT = re.compile(r"files/md5/[0-9a-f]{2}/[0-9a-f]{30}(?:\.dir)?")
_MANIFEST = re.compile(r"secure/manifests/[0-9a-f]{64}")
_INDEX = re.compile(re.escape(INDEX_DIR) + r"/([0-9a-f]{64})\.json")
_UPLOAD = re.compile(re.escape(UPLOAD_DIR) + r"/([0-9a-f]{64})\.json")


@dataclass(frozen=True)
class StoredFile:
    rel: str  # posix path relative to the storage root
    kind: str
    size: int
    what: str  # the revealed object path, the audit chain/seq or the index digest


@dataclass
class StorageSurvey:
    files: list[StoredFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def of_kind(self, *kinds: str) -> list[StoredFile]:
        return [f for f in self.files if f.kind in kinds]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.files:
            out[f.kind] = out.get(f.kind, 0) + 1
        return out


def survey_storage(storage: Path, *, name_key: bytes, data_keys: Mapping[int, bytes],
                   plaintext: Collection[bytes], md5s: Collection[str],
                   name_scheme: int = NAMES_V1) -> StorageSurvey:
    """Classify and check every file under ``storage``.

    ``plaintext``: byte strings of the data that must appear in no stored file;
    ``md5s``: DVC object ids that must appear in no storage name and no stored file."""
    survey = StorageSurvey()
    digests: dict[str, tuple[int, str]] = {}
    indexes: list[tuple[str, bytes, str]] = []
    uploads: list[tuple[str, bytes, str]] = []
    for path in sorted(p for p in storage.rglob("*") if p.is_file()):
        rel = path.relative_to(storage).as_posix()
        blob = path.read_bytes()
        digests[rel] = (len(blob), hashlib.sha256(blob).hexdigest())
        survey.problems += _leaks(rel, blob, plaintext, md5s)
        if rel.startswith(STORAGE_PREFIX + "/"):
            kind, what, problems = _audit_event(rel, blob, data_keys)
        elif rel.startswith("dvc-secure/"):
            match, upload = _INDEX.fullmatch(rel), _UPLOAD.fullmatch(rel)
            if match is not None:  # checked against the objects once all of them are known
                kind, what, problems = REMOTE_INDEX, match.group(1), []
                indexes.append((rel, blob, match.group(1)))
            elif upload is not None:
                kind, what, problems = UPLOAD_RECORD, upload.group(1), []
                uploads.append((rel, blob, upload.group(1)))
            else:
                kind, what, problems = "", "", [f"{rel}: unknown kind of dvc-secure file"]
        else:
            kind, what, problems = _encrypted_object(rel, blob, name_key, name_scheme)
        survey.problems += problems
        if kind:
            survey.files.append(StoredFile(rel, kind, len(blob), what))
    encrypted = {f.rel for f in survey.of_kind(*ENCRYPTED_KINDS)}
    for rel, blob, digest in indexes:
        survey.problems += _remote_index(rel, blob, digest, digests, encrypted)
    for rel, blob, digest in uploads:
        survey.problems += _upload_record(rel, blob, digest, digests, encrypted)
    return survey


def _leaks(rel: str, blob: bytes, plaintext: Collection[bytes], md5s: Collection[str]) -> list[str]:
    problems = []
    for oid in md5s:
        # the 30-digit tail too: DVC's own layout splits an id as xx/<30 digits>
        if oid in rel or oid[2:] in rel:
            problems.append(f"{rel}: its name shows the DVC object id (MD5) {oid}")
        if oid.encode() in blob or oid[2:].encode() in blob:
            problems.append(f"{rel}: its content shows the DVC object id (MD5) {oid}")
    problems += [f"{rel}: plaintext of the dataset found in it" for text in plaintext
                 if text in blob]
    return problems


def _encrypted_object(rel: str, blob: bytes, name_key: bytes,
                      scheme: int) -> tuple[str, str, list[str]]:
    hidden = join_long(rel)
    name = reveal_name(name_key, hidden, scheme) if hidden is not None else None
    if name is None:
        return "", "", [f"{rel}: unknown kind of file (not a hidden name this repository wrote)"]
    if _DVC_OBJECT.fullmatch(name):
        kind = OBJECT
    elif _MANIFEST.fullmatch(name):
        kind = MANIFEST
    elif name.startswith("runs/"):
        kind = RUN_CACHE
    else:
        return "", "", [f"{rel}: hidden name of an unexpected path ({name})"]
    try:
        ObjectHeader.parse(blob[:HEADER_LEN])
    except DvcSecureError as exc:
        return kind, name, [f"{rel} ({kind}): {exc.message}"]
    return kind, name, []


def _audit_event(rel: str, blob: bytes, data_keys: Mapping[int, bytes]) -> tuple[str, str, list[str]]:
    parsed = parse_storage_name(rel)
    if parsed is None or storage_name(*parsed) != rel:
        return "", "", [f"{rel}: unknown kind of file in the audit trail's directory"]
    what = f"chain {parsed[0][:8]}… event {parsed[1]}"

    def key(epoch: int) -> bytes:
        if epoch not in data_keys:
            raise DvcSecureError(f"names key epoch {epoch}, which this identity does not hold")
        return data_keys[epoch]

    try:
        event = open_event(blob, rel, key)  # proves it is encrypted, and to this name
    except DvcSecureError as exc:
        return AUDIT_EVENT, what, [f"{rel} (audit event): {exc.message}"]
    if event in blob or EVENT_FORMAT.encode() in blob:
        return AUDIT_EVENT, what, [f"{rel} (audit event): the event is readable without a key"]
    return AUDIT_EVENT, what, []


def _remote_index(rel: str, blob: bytes, digest: str, stored: Mapping[str, tuple[int, str]],
                  encrypted: Collection[str]) -> list[str]:
    # plaintext by design (CI proves presence without a key): it may list only what the
    # storage already shows, i.e. encrypted files that are really there, as they are
    try:
        entries = parse_index(blob, digest)
    except DvcSecureError as exc:
        return [f"{rel} (remote index): {exc.message}"]
    problems = []
    for entry in entries:
        if entry.path not in encrypted:
            problems.append(f"{rel} (remote index): lists {entry.path}, not an encrypted object here")
        elif stored[entry.path] != (entry.size, entry.sha256):
            problems.append(f"{rel} (remote index): {entry.path} differs from what it pins")
    return problems


def _upload_record(rel: str, blob: bytes, digest: str, stored: Mapping[str, tuple[int, str]],
                   encrypted: Collection[str]) -> list[str]:
    # plaintext by design (docs/spec/repair.md): content-addressed, and listing only what the
    # storage already shows; its signature is what 'verify --remote' checks
    if hashlib.sha256(blob).hexdigest() != digest:
        return [f"{rel} (upload record): its name is not the SHA-256 of its content"]
    try:
        record = UploadRecord.from_bytes(blob, rel)
    except DvcSecureError as exc:
        return [f"{rel} (upload record): {exc.message}"]
    problems = []
    for entry in record.objects:
        if entry.path not in encrypted:
            problems.append(f"{rel} (upload record): lists {entry.path}, not an encrypted object here")
        elif stored[entry.path][0] != entry.size:
            problems.append(f"{rel} (upload record): {entry.path} differs in size from the record")
    return problems
