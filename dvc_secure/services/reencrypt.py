"""Re-encrypt the objects of current revisions under the keyring's current epoch.

After ``revoke``/``rotate`` a new key epoch exists, but objects already on the remote stay
readable by anyone who held an older epoch key. This shell walks the sealed outputs at
HEAD and at the tip of every local branch, and replaces each object whose header names an
older epoch by a fresh encryption under the current epoch (docs/reencryption.md):

  stream-download -> decrypt + verify -> re-encrypt + sign -> upload to a temporary name ->
  read back and verify -> journal (write-ahead) -> atomic rename over the old object.

Every object is at every moment either its old or its new ciphertext, both readable with
the keyring (old epochs stay in it). A journal in the git directory makes a rerun resume;
the signed record under ``.dvc/secure/reencrypted/`` lets ``verify --remote`` accept the
changed ciphertext (docs/spec/reencryption.md).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, cast

import pygit2

from dvc_secure.adapters.dvc.remote_access import SecureRemotes
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.adapters.git.history import open_repository
from dvc_secure.adapters.local.reencrypt_state import finish_reencryption, start_reencryption
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys, RepoKeys
from dvc_secure.core.format.object_format import (
    EncryptingReader,
    ObjectSeal,
    read_header,
)
from dvc_secure.core.format.object_reader import decrypt_object
from dvc_secure.core.keys.keyring import SIGNING_ROLES
from dvc_secure.core.records.reencryption import (
    ReencryptedObject,
    ReencryptionRecord,
    record_relpath,
)
from dvc_secure.core.sidecar.model import Sidecar
from dvc_secure.core.sidecar.remote_index import StoredObject, index_storage_path, parse_index
from dvc_secure.errors import (
    AccessDeniedError,
    DvcSecureError,
    ReencryptionError,
    ReencryptionInterruptedError,
)
from dvc_secure.services.current_revisions import (
    Target,
    current_sidecars,
    pinned_epochs,
    targets_of,
)
from dvc_secure.services.object_pipe import BoundedPipe, Discard, HashingReader

TMP_DIR = "dvc-secure/reencrypt-tmp"  # beside the objects, in the wrapped storage; ours alone

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ReencryptResult:
    """Counts of one run; ``record_path`` is the record to commit (None: nothing changed)."""

    epoch: int
    total: int
    reencrypted: int
    already_current: int
    missing: int
    record_path: Path | None


# --- what "current revisions" need -------------------------------------------------------------


# --- streaming plumbing -------------------------------------------------------------------------


# --- the progress journal --------------------------------------------------------------------------


class Journal:
    """Objects this repository re-encrypted for one epoch (write-ahead, one JSON line each,
    fsynced before the rename). Lives in the git directory: local, never committed."""

    def __init__(self, path: Path, keyring_id: str) -> None:
        self.path = path
        self.keyring_id = keyring_id
        self.done: dict[tuple[str, str], ReencryptedObject] = {}  # (remote, rel) -> entry
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            lines = []
        for line in lines:
            try:
                d = json.loads(line)
                if d.get("keyring_id") != keyring_id:
                    continue
                entry = ReencryptedObject.from_dict(d["object"], str(path))
                self.done[(entry.remote, str(d["rel"]))] = entry
            except (ValueError, KeyError, TypeError, AttributeError, DvcSecureError):
                continue  # a torn last line from a killed run: that object is simply redone

    def add(self, rel: str, entry: ReencryptedObject) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"keyring_id": self.keyring_id, "rel": rel, "object": entry.to_dict()},
                          sort_keys=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        self.done[(entry.remote, rel)] = entry


def journal_path(repo: pygit2.Repository, epoch: int) -> Path:
    return Path(repo.path) / "dvc-secure" / f"reencrypt-epoch-{epoch}.jsonl"


# --- one object ------------------------------------------------------------------------------------


def _trusted_signer(keys: RepoKeys, public: bytes, epoch: int) -> bool:
    """Current writers always; removed writers for the epochs they could write in."""
    return keys.is_trusted_signer(public, epoch)


class _Reencryptor:
    def __init__(self, keys: RepoKeys) -> None:
        self.keys = keys
        self.epoch = keys.keyring.current_epoch
        self.data_key = keys.keyset.key_for_epoch(self.epoch)
        self.signer = keys.signer()

    def header_epoch(self, fs: SecureFsspec, target: str) -> int | None:
        """The epoch in the stored header (reads 78 bytes); None if the object is missing."""
        try:
            with fs.inner.open(target, "rb") as f:
                return read_header(f).epoch
        except FileNotFoundError:
            return None

    def _check_content(self, t: Target, old: ObjectSeal, pipe: BoundedPipe) -> None:
        """The old object's writer must be trusted *or* its content must be what a sealer
        sealed (a revoked writer's objects stay valid through the sealed digests)."""
        if _trusted_signer(self.keys, old.signer, old.epoch):
            sealed_ok = True
        elif t.plaintext_sha256 is not None:
            sealed_ok = old.payload_sha256().hex() == t.plaintext_sha256
        else:
            oid = t.rel.removeprefix("files/md5/").replace("/", "").removesuffix(".dir")
            sealed_ok = pipe.md5 is not None and pipe.md5.hexdigest() == oid
        if not sealed_ok:
            raise ReencryptionError(
                f"object {t.rel} on '{t.remote}' is signed by a key that is not a writer's and "
                "its content cannot be matched to a sealed digest; it was not re-encrypted",
                hint="run 'dvc-secure verify --deep' to investigate; re-push the object from a "
                "clean cache, then resume")
        if t.plaintext_sha256 is not None and old.payload_sha256().hex() != t.plaintext_sha256:
            raise ReencryptionError(
                f"object {t.rel} on '{t.remote}' decrypts to content whose SHA-256 differs from "
                "the sealed one; it was not re-encrypted",
                hint="run 'dvc-secure verify --deep'; push the right data, then resume")

    def reencrypt(self, fs: SecureFsspec, t: Target, target: str) -> tuple[ReencryptedObject, str]:
        """Upload the re-encryption of ``target`` to a temporary name, verified; returns the
        record entry and that temporary path (the caller journals, then renames)."""
        tmp = fs.storage_path(f"{TMP_DIR}/reencrypt-{os.urandom(12).hex()}")
        rel_id = t.rel.encode()
        old_keys, new_key = fs.domains.object_keys(target, t.rel)  # key domains: erasure.md
        pipe = BoundedPipe(md5=t.rel.endswith(".dir") and t.plaintext_sha256 is None)
        old_result: list[ObjectSeal] = []
        try:
            with fs.inner.open(target, "rb") as raw:
                old_bytes = HashingReader(raw)

                def decrypt() -> None:
                    try:
                        old_result.append(decrypt_object(
                            cast(BinaryIO, old_bytes), pipe, object_id=rel_id,
                            key_for_epoch=old_keys,
                            # checked after the fact: see _check_content
                            is_trusted_signer=lambda _public, _epoch: True))
                        pipe.close()
                    except BaseException as exc:
                        pipe.close(exc)

                worker = threading.Thread(target=decrypt, name="dvc-secure-reencrypt", daemon=True)
                worker.start()
                enc = EncryptingReader(cast(BinaryIO, pipe), data_key=new_key,
                                       epoch=self.epoch, object_id=rel_id, signer=self.signer)
                try:
                    fs.inner.makedirs(fs.storage_path(TMP_DIR), exist_ok=True)
                    fs.inner.upload_fobj(cast(IO[bytes], enc), tmp)
                finally:
                    pipe.aborted.set()
                    worker.join()
                    enc.close()
            if pipe.error is not None or not old_result:
                err = pipe.error
                msg = getattr(err, "message", None) or type(err).__name__
                raise ReencryptionError(
                    f"object {t.rel} on '{t.remote}' failed verification and was not "
                    f"re-encrypted: {msg}",
                    hint="run 'dvc-secure verify --deep'; re-push it from a clean cache, then "
                    "resume") from None
            old = old_result[0]
            new = enc.seal
            if new is None or new.ciphertext_sha256 is None:
                raise ReencryptionError(f"re-encryption of {t.rel} ended early",
                                        hint="resume the re-encryption")
            self._check_content(t, old, pipe)
            self._verify_upload(fs, tmp, rel_id, new, old, new_key)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.inner.rm_file(tmp)
            raise
        return ReencryptedObject(
            remote=t.remote, path=fs.storage_rel(target),
            old_sha256=old_bytes.sha.hexdigest(), old_size=old_bytes.size,
            new_sha256=new.ciphertext_sha256.hex(), new_size=new.ciphertext_size), tmp

    def _verify_upload(self, fs: SecureFsspec, tmp: str, rel_id: bytes, new: ObjectSeal,
                       old: ObjectSeal, key: bytes) -> None:
        """Read the uploaded copy back once: its bytes and its content must be ours."""
        with fs.inner.open(tmp, "rb") as raw:
            stored = HashingReader(raw)
            check = decrypt_object(cast(BinaryIO, stored), Discard(), object_id=rel_id,
                                   key_for_epoch=lambda _epoch: key,
                                   is_trusted_signer=lambda public, _epoch: public == self.signer.public)
        assert new.ciphertext_sha256 is not None
        if (stored.sha.digest() != new.ciphertext_sha256 or stored.size != new.ciphertext_size
                or check.plaintext_sha256 != old.plaintext_sha256 or check.epoch != self.epoch):
            raise ReencryptionError(
                "the uploaded re-encrypted object does not read back as written (storage "
                "error); the old object was left in place",
                hint="resume the re-encryption")


# --- the run ---------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _require_writer(keys: RepoKeys) -> None:
    member = keys.keyring.member_for(keys.identity)
    if member is None or member.role not in SIGNING_ROLES:
        role = member.role if member else "not a member"
        raise AccessDeniedError(
            f"re-encryption signs every new object, so it needs a writer or admin identity "
            f"(yours: {role})",
            hint="run it as the admin who rotated the key, or ask an admin for "
            "'dvc-secure grant <recipient> --role writer'")


def _write_record(root: Path, record: ReencryptionRecord) -> Path:
    path = root / record_relpath(record.epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(record.to_bytes())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _existing_record(root: Path, keys: RepoKeys, epoch: int) -> ReencryptionRecord | None:
    path = root / record_relpath(epoch)
    try:
        record = ReencryptionRecord.from_bytes(path.read_bytes(), str(path))
    except FileNotFoundError:
        return None
    if record.keyring_id != keys.keyring.keyring_id or record.epoch != epoch:
        raise ReencryptionError(f"{path} belongs to another keyring or epoch",
                                hint="move it away, then resume; it is rewritten from the journal")
    if not record.valid_signers(keys.keyring.sealer_keys()):
        # never re-sign entries nobody trusted vouched for: start from the journal only
        raise ReencryptionError(f"{path} carries no valid writer signature",
                                hint="restore it from git ('git checkout -- <path>') or delete "
                                "it; a rerun rewrites it from the journal")
    return record


def _pinned(fs: SecureFsspec, sidecars: list[Sidecar], remote: str,
            pin_epochs: dict[str, int], current: int) -> dict[str, tuple[str, int]]:
    """storage path -> (ciphertext digest, size) pinned by an output sealed under an older
    epoch."""
    out: dict[str, tuple[str, int]] = {}
    for sc in sidecars:
        for o in sc.outputs:
            if o.remote != remote or o.remote_index is None or pin_epochs[o.remote_index] >= current:
                continue
            try:
                with fs.inner.open(fs.storage_path(index_storage_path(o.remote_index)), "rb") as f:
                    entries = parse_index(f.read(), o.remote_index)
            except (FileNotFoundError, DvcSecureError):
                continue  # verify --remote reports it; nothing to re-encrypt from here
            for e in entries:
                out.setdefault(e.path, (e.sha256, e.size))
    return out


def _adopt(fs: SecureFsspec, r: _Reencryptor, t: Target, target: str,
           pinned: tuple[str, int]) -> ReencryptedObject | None:
    """An object at the current epoch that a sidecar pins with other bytes and no journal
    line explains (the journal was lost after a rename): verify it and vouch for it."""
    with fs.inner.open(target, "rb") as raw:
        stored = HashingReader(raw)
        seal = decrypt_object(cast(BinaryIO, stored), Discard(), object_id=t.rel.encode(),
                              key_for_epoch=fs.domains.object_keys(target, t.rel)[0],
                              is_trusted_signer=r.keys.is_trusted_signer)
    actual = stored.sha.hexdigest()
    pinned_sha, pinned_size = pinned
    if actual == pinned_sha:
        return None
    if t.plaintext_sha256 is not None and seal.payload_sha256().hex() != t.plaintext_sha256:
        raise ReencryptionError(f"object {t.rel} on '{t.remote}' does not hold the sealed content",
                                hint="run 'dvc-secure verify --deep'")
    return ReencryptedObject(t.remote, fs.storage_rel(target), pinned_sha, pinned_size, actual,
                             stored.size)


def reencrypt_current_revisions(repo_root: Path, *, progress: Progress | None = None) -> ReencryptResult:
    """Re-encrypt every object of the sealed outputs at HEAD and the local branch tips whose
    header names an epoch older than the keyring's current one; resumable; writes and
    returns the signed record to commit (``.dvc/secure/reencrypted/epoch-<N>.json``)."""
    root = Path(repo_root)
    dvc_dir = root / ".dvc"
    keys = LazyRepoKeys(str(dvc_dir)).get()
    _require_writer(keys)
    r = _Reencryptor(keys)
    epoch = r.epoch
    start_reencryption(root, keys.keyring.keyring_id, epoch, "dvc-secure reencrypt")
    try:
        result = _run(root, dvc_dir, keys, r, progress)
    except KeyboardInterrupt:
        raise ReencryptionInterruptedError(
            f"re-encryption under key epoch {epoch} was interrupted; every object is still "
            "readable (each is either its old or its new ciphertext)",
            hint="resume it with 'dvc-secure reencrypt' (re-running the same 'rotate/revoke "
            f"--reencrypt' also resumes epoch {epoch}, it never starts another one); then "
            "commit .dvc/secure") from None
    finish_reencryption(root, epoch)
    return result


def _run(root: Path, dvc_dir: Path, keys: RepoKeys, r: _Reencryptor,
         progress: Progress | None) -> ReencryptResult:
    epoch = r.epoch
    repo = open_repository(root)
    journal = Journal(journal_path(repo, epoch), keys.keyring.keyring_id)
    remotes = SecureRemotes(dvc_dir)
    sidecars = current_sidecars(root)
    targets = targets_of(dvc_dir, remotes, sidecars)
    pin_epochs = pinned_epochs(sidecars)
    pins: dict[str, dict[str, tuple[str, int]]] = {}
    total = len(targets)
    reencrypted = already = missing = 0
    adopted: list[ReencryptedObject] = []
    if progress is not None:
        progress(0, total)
    for done, t in enumerate(targets, 1):
        fs = remotes.get(t.remote)
        target = fs.object_path(t.rel)
        try:
            have = r.header_epoch(fs, target)
        except DvcSecureError as exc:
            raise ReencryptionError(f"object {t.rel} on '{t.remote}' is not a valid object: "
                                    f"{exc.message}", hint="run 'dvc-secure verify --remote'") from None
        if have is None:
            missing += 1
        elif have == epoch:
            already += 1
            if (t.remote, t.rel) not in journal.done:
                if t.remote not in pins:
                    pins[t.remote] = _pinned(fs, sidecars, t.remote, pin_epochs, epoch)
                pinned = pins[t.remote].get(fs.storage_rel(target))
                if pinned is not None:
                    entry = _adopt(fs, r, t, target, pinned)
                    if entry is not None:
                        adopted.append(entry)
        elif have > epoch:
            raise ReencryptionError(
                f"object {t.rel} on '{t.remote}' is at epoch {have}, newer than this keyring's "
                f"current epoch {epoch}", hint="git pull the newest keyring, then resume")
        else:
            entry, tmp = r.reencrypt(fs, t, target)
            journal.add(t.rel, entry)  # write-ahead: a kill after the rename still knows it
            try:
                _replace(fs, tmp, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    fs.inner.rm_file(tmp)
                raise
            if fs.journal is not None:
                # later seals pin the ciphertext from the push journal: give it the new bytes
                fs.journal.record(fs.fsid, t.rel, StoredObject(entry.path, entry.new_size,
                                                               entry.new_sha256))
            reencrypted += 1
        if progress is not None:
            progress(done, total)
    for name in sorted({t.remote for t in targets}):
        fs = remotes.get(name)
        if fs.journal is not None:
            fs.journal.flush()
        _clean_tmp(fs)
    record_path = _finish_record(root, keys, epoch, [*journal.done.values(), *adopted])
    return ReencryptResult(epoch=epoch, total=total, reencrypted=reencrypted,
                           already_current=already, missing=missing, record_path=record_path)


def _replace(fs: SecureFsspec, tmp: str, target: str) -> None:
    """Atomically put the verified temporary object in the place of the old one."""
    if getattr(fs.inner, "protocol", None) == "local":
        # one rename(2) (DVC's local mv takes two steps through a third name)
        os.replace(tmp, target)
    else:
        # sftp: posix-rename where offered; object stores: server-side copy, then delete
        fs.inner.mv(tmp, target)


def _clean_tmp(fs: SecureFsspec) -> None:
    """Remove temporary objects (and upload partials) that killed runs left; the
    directory holds nothing else and nobody reads it."""
    try:
        leftovers = list(fs.inner.find(fs.storage_path(TMP_DIR)))
    except FileNotFoundError:
        return
    for path in leftovers:
        with contextlib.suppress(FileNotFoundError):
            fs.inner.rm_file(path)


def _finish_record(root: Path, keys: RepoKeys, epoch: int,
                   entries: list[ReencryptedObject]) -> Path | None:
    existing = _existing_record(root, keys, epoch)
    if existing is None and not entries:
        return None
    base = existing or ReencryptionRecord(keys.keyring.keyring_id, epoch, "", ())
    merged = base.with_objects(entries, _now())
    if existing is not None and set(merged.objects) == set(existing.objects):
        return root / record_relpath(epoch)  # unchanged: keep its bytes (and signature)
    return _write_record(root, merged.sign(keys.signer()))


def _objects(result: ReencryptResult) -> Iterator[str]:
    yield f"{result.reencrypted} re-encrypted"
    yield f"{result.already_current} already at epoch {result.epoch}"
    if result.missing:
        yield f"{result.missing} missing from the remote"


def summary(result: ReencryptResult) -> str:
    """One line for the CLI."""
    line = f"{result.total} object(s) of current revisions: " + ", ".join(_objects(result))
    if result.record_path is not None:
        line += f"; commit {result.record_path.as_posix()}"
    return line
