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
import hashlib
import json
import os
import queue
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, BinaryIO, TextIO, cast

import pygit2

from dvc_secure.dvc_adapter.remote_access import SecureRemotes
from dvc_secure.dvc_adapter.secure_fs import SecureFsspec
from dvc_secure.errors import AccessDeniedError, DvcSecureError, ReencryptionError
from dvc_secure.format.object_format import (
    EncryptingReader,
    ObjectSeal,
    decrypt_object,
    read_header,
)
from dvc_secure.git_adapter.history import SnapshotReader, open_repository
from dvc_secure.keys.keyring import SIGNING_ROLES
from dvc_secure.reencryption_record import (
    ReencryptedObject,
    ReencryptionRecord,
    record_relpath,
)
from dvc_secure.sealing import manifest_rel, object_rel
from dvc_secure.secure_store import LazyRepoKeys, RepoKeys
from dvc_secure.sidecar.model import SIDECAR_SUFFIX, SealedOutput, Sidecar
from dvc_secure.sidecar.remote_index import StoredObject, index_storage_path, parse_index

TMP_DIR = "dvc-secure/reencrypt-tmp"  # beside the objects, in the wrapped storage; ours alone
_CHUNK = 1 << 20
_PIPE_DEPTH = 4  # chunks in flight between the decrypting and the encrypting side

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


@dataclass(frozen=True)
class _Target:
    remote: str
    rel: str  # object identity: path relative to the secure remote root
    plaintext_sha256: str | None  # sealed digest of the content, when the sidecar has one


# --- what "current revisions" need -------------------------------------------------------------


def current_tips(repo: pygit2.Repository) -> list[pygit2.Commit]:
    """HEAD and the tip of every local branch (each commit once)."""
    tips: dict[str, pygit2.Commit] = {}
    names = ["HEAD", *(n for n in repo.references if n.startswith("refs/heads/"))]
    for name in names:
        try:
            commit = repo.revparse_single(name).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            continue  # unborn HEAD or a dangling ref
        tips.setdefault(str(commit.id), commit)
    return list(tips.values())


def current_sidecars(root: Path) -> list[Sidecar]:
    """Every distinct sidecar committed at HEAD or a local branch tip."""
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    found: dict[str, Sidecar] = {}
    for tip in current_tips(repo):
        for path, blob in sorted(reader.files_at(tip).items()):
            if not path.endswith(SIDECAR_SUFFIX):
                continue
            parsed = reader.parse_blob("sidecar", blob, path)
            if isinstance(parsed.value, Sidecar):
                found.setdefault(parsed.value.digest, parsed.value)
    return list(found.values())


def read_manifest(dvc_dir: Path, fs: SecureFsspec, out: SealedOutput) -> list[dict[str, object]]:
    """The sealed manifest of a directory output (local copy, else decrypted from the
    remote), checked against its sealed digest."""
    local = dvc_dir / "cache" / "secure" / "manifests" / out.sha256
    data = local.read_bytes() if local.is_file() else None
    if data is None or hashlib.sha256(data).hexdigest() != out.sha256:
        with fs.open("/" + manifest_rel(out.sha256), "rb") as f:
            data = f.read()  # a manifest: one JSON line per file, not object content
    if hashlib.sha256(data).hexdigest() != out.sha256:
        raise ReencryptionError(f"the manifest of {out.path} does not match its sealed digest",
                                hint="run 'dvc-secure verify --deep' to find the damage")
    files = json.loads(data).get("files")
    return files if isinstance(files, list) else []


def _targets(dvc_dir: Path, remotes: SecureRemotes, sidecars: list[Sidecar]) -> list[_Target]:
    found: dict[tuple[str, str], _Target] = {}

    def add(remote: str, rel: str, sha: str | None) -> None:
        prev = found.get((remote, rel))
        if prev is None or prev.plaintext_sha256 is None:
            found[(remote, rel)] = _Target(remote, rel, sha)

    for sc in sidecars:
        for out in sc.outputs:
            if not out.is_dir:
                add(out.remote, object_rel(out.oid), out.sha256)
                continue
            add(out.remote, object_rel(out.oid), None)
            add(out.remote, manifest_rel(out.sha256), out.sha256)
            for entry in read_manifest(dvc_dir, remotes.get(out.remote), out):
                add(out.remote, object_rel(str(entry["md5"])), str(entry["sha256"]))
    return sorted(found.values(), key=lambda t: (t.remote, t.rel))


def _pinned_epochs(sidecars: list[Sidecar]) -> dict[str, int]:
    """remote_index digest -> lowest key epoch an output pinned with it was sealed under."""
    out: dict[str, int] = {}
    for sc in sidecars:
        for o in sc.outputs:
            if o.remote_index is not None:
                out[o.remote_index] = min(o.key_epoch, out.get(o.remote_index, o.key_epoch))
    return out


# --- streaming plumbing -------------------------------------------------------------------------


class _HashingReader:
    """Read-through SHA-256 and size of a byte stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


class _Pipe:
    """A bounded in-memory pipe from a decrypting thread (``write``) to the encryptor
    (``read``), so no plaintext touches the disk and memory stays at a few chunks."""

    def __init__(self, md5: bool = False) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=_PIPE_DEPTH)
        self._buf = b""
        self._eof = False
        self.error: BaseException | None = None
        self.aborted = threading.Event()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def write(self, data: bytes) -> None:
        if self.md5 is not None:
            self.md5.update(data)
        while data:
            piece, data = data[:_CHUNK], data[_CHUNK:]
            self._put(piece)

    def _put(self, item: bytes | None) -> None:
        while True:
            if self.aborted.is_set():
                raise ReencryptionError("re-encryption of the object was aborted")
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self, error: BaseException | None = None) -> None:
        self.error = error
        with contextlib.suppress(ReencryptionError):
            self._put(None)

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            item = self._q.get()
            if item is None:
                self._eof = True
                if self.error is not None:
                    # the reader side (upload) must fail, so no object is completed
                    raise ReencryptionError("the old object failed verification while it "
                                            "was being re-encrypted")
                break
            self._buf += item
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


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

    def _check_content(self, t: _Target, old: ObjectSeal, pipe: _Pipe) -> None:
        """The old object's writer must be trusted *or* its content must be what a sealer
        sealed (a revoked writer's objects stay valid through the sealed digests)."""
        if _trusted_signer(self.keys, old.signer, old.epoch):
            sealed_ok = True
        elif t.plaintext_sha256 is not None:
            sealed_ok = old.plaintext_sha256.hex() == t.plaintext_sha256
        else:
            oid = t.rel.removeprefix("files/md5/").replace("/", "").removesuffix(".dir")
            sealed_ok = pipe.md5 is not None and pipe.md5.hexdigest() == oid
        if not sealed_ok:
            raise ReencryptionError(
                f"object {t.rel} on '{t.remote}' is signed by a key that is not a writer's and "
                "its content cannot be matched to a sealed digest; it was not re-encrypted",
                hint="run 'dvc-secure verify --deep' to investigate; re-push the object from a "
                "clean cache, then resume")
        if t.plaintext_sha256 is not None and old.plaintext_sha256.hex() != t.plaintext_sha256:
            raise ReencryptionError(
                f"object {t.rel} on '{t.remote}' decrypts to content whose SHA-256 differs from "
                "the sealed one; it was not re-encrypted",
                hint="run 'dvc-secure verify --deep'; push the right data, then resume")

    def reencrypt(self, fs: SecureFsspec, t: _Target, target: str) -> tuple[ReencryptedObject, str]:
        """Upload the re-encryption of ``target`` to a temporary name, verified; returns the
        record entry and that temporary path (the caller journals, then renames)."""
        tmp = fs.storage_path(f"{TMP_DIR}/reencrypt-{os.urandom(12).hex()}")
        rel_id = t.rel.encode()
        pipe = _Pipe(md5=t.rel.endswith(".dir") and t.plaintext_sha256 is None)
        old_result: list[ObjectSeal] = []
        try:
            with fs.inner.open(target, "rb") as raw:
                old_bytes = _HashingReader(raw)

                def decrypt() -> None:
                    try:
                        old_result.append(decrypt_object(
                            cast(BinaryIO, old_bytes), pipe, object_id=rel_id,
                            key_for_epoch=self.keys.keyset.key_for_epoch,
                            # checked after the fact: see _check_content
                            is_trusted_signer=lambda _public, _epoch: True))
                        pipe.close()
                    except BaseException as exc:
                        pipe.close(exc)

                worker = threading.Thread(target=decrypt, name="dvc-secure-reencrypt", daemon=True)
                worker.start()
                enc = EncryptingReader(cast(BinaryIO, pipe), data_key=self.data_key,
                                       epoch=self.epoch, object_id=rel_id, signer=self.signer,
                                       digest_ciphertext=True)
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
            self._verify_upload(fs, tmp, rel_id, new, old)
        except BaseException:
            with contextlib.suppress(Exception):
                fs.inner.rm_file(tmp)
            raise
        return ReencryptedObject(
            remote=t.remote, path=fs._storage_rel(target),
            old_sha256=old_bytes.sha.hexdigest(), old_size=old_bytes.size,
            new_sha256=new.ciphertext_sha256.hex(), new_size=new.ciphertext_size), tmp

    def _verify_upload(self, fs: SecureFsspec, tmp: str, rel_id: bytes, new: ObjectSeal,
                       old: ObjectSeal) -> None:
        """Read the uploaded copy back once: its bytes and its content must be ours."""
        with fs.inner.open(tmp, "rb") as raw:
            stored = _HashingReader(raw)
            check = decrypt_object(cast(BinaryIO, stored), _Discard(), object_id=rel_id,
                                   key_for_epoch=self.keys.keyset.key_for_epoch,
                                   is_trusted_signer=lambda public, _epoch: public == self.signer.public)
        assert new.ciphertext_sha256 is not None
        if (stored.sha.digest() != new.ciphertext_sha256 or stored.size != new.ciphertext_size
                or check.plaintext_sha256 != old.plaintext_sha256 or check.epoch != self.epoch):
            raise ReencryptionError(
                "the uploaded re-encrypted object does not read back as written (storage "
                "error); the old object was left in place",
                hint="resume the re-encryption")


class _Discard:
    def write(self, data: bytes) -> None:
        pass


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


def _adopt(fs: SecureFsspec, r: _Reencryptor, t: _Target, target: str,
           pinned: tuple[str, int]) -> ReencryptedObject | None:
    """An object at the current epoch that a sidecar pins with other bytes and no journal
    line explains (the journal was lost after a rename): verify it and vouch for it."""
    with fs.inner.open(target, "rb") as raw:
        stored = _HashingReader(raw)
        seal = decrypt_object(cast(BinaryIO, stored), _Discard(), object_id=t.rel.encode(),
                              key_for_epoch=r.keys.keyset.key_for_epoch,
                              is_trusted_signer=r.keys.is_trusted_signer)
    actual = stored.sha.hexdigest()
    pinned_sha, pinned_size = pinned
    if actual == pinned_sha:
        return None
    if t.plaintext_sha256 is not None and seal.plaintext_sha256.hex() != t.plaintext_sha256:
        raise ReencryptionError(f"object {t.rel} on '{t.remote}' does not hold the sealed content",
                                hint="run 'dvc-secure verify --deep'")
    return ReencryptedObject(t.remote, fs._storage_rel(target), pinned_sha, pinned_size, actual,
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
    repo = open_repository(root)
    journal = Journal(journal_path(repo, epoch), keys.keyring.keyring_id)
    remotes = SecureRemotes(dvc_dir)
    sidecars = current_sidecars(root)
    targets = _targets(dvc_dir, remotes, sidecars)
    pin_epochs = _pinned_epochs(sidecars)
    pins: dict[str, dict[str, tuple[str, int]]] = {}
    total = len(targets)
    reencrypted = already = missing = 0
    adopted: list[ReencryptedObject] = []
    if progress is not None:
        progress(0, total)
    for done, t in enumerate(targets, 1):
        fs = remotes.get(t.remote)
        target = fs._object_path(t.rel)
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
                pinned = pins[t.remote].get(fs._storage_rel(target))
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


def text_progress(stream: TextIO | None = None) -> Progress:
    """A progress callback printing one updating line ("re-encrypting: 3/10 objects")."""
    out = stream or sys.stderr

    def show(done: int, total: int) -> None:
        end = "\n" if done >= total else ""
        out.write(f"\rre-encrypting objects under the new key epoch: {done}/{total}{end}")
        out.flush()

    return show


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


def main(argv: list[str] | None = None) -> int:
    """``python -m dvc_secure.reencrypt [repo]``: the same as ``rotate --reencrypt``'s last step."""
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    try:
        result = reencrypt_current_revisions(root, progress=text_progress())
    except DvcSecureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
