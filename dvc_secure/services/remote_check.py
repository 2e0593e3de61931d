"""``verify --remote`` and ``verify --deep``: is every sealed revision complete on its remote?

``--remote`` needs read access to the storage and no key: it fetches each output's remote
index (pinned by digest in the sidecar) and re-hashes every stored ciphertext against it.
``--deep`` needs a reader identity: it downloads, authenticates and decrypts every object
(keeping no plaintext) and checks each file's SHA-256 against the sealed manifest.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pygit2

from dvc_secure.adapters.dvc.remote_access import SecureRemotes
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.adapters.git.history import SnapshotReader, open_repository
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.records.reencryption import (
    RECORD_DIR,
    KeyringView,
    ReencryptionRecord,
    Replacements,
    check_record,
    epoch_of_filename,
    record_relpath,
)
from dvc_secure.core.records.upload import Attestations, UploadTrust
from dvc_secure.core.sidecar.model import SealedOutput, Sidecar
from dvc_secure.core.sidecar.remote_index import StoredObject, index_storage_path, parse_index
from dvc_secure.core.verification.engine import HistoryVerifier
from dvc_secure.core.verification.findings import (
    POLICY_FORK,
    POLICY_ROLLBACK,
    POLICY_UNAUTHORIZED,
    UNTRUSTED_ROOT,
    Finding,
)
from dvc_secure.errors import DvcSecureError
from dvc_secure.services.sealing import manifest_rel, object_rel
from dvc_secure.services.upload_records import load_attestations, trust_of, trusted_keyring

NOT_INDEXED = "output-not-indexed"
INDEX_MISSING = "remote-index-missing"
INDEX_BAD = "remote-index-corrupted"
OBJECT_MISSING = "remote-object-missing"
OBJECT_TRUNCATED = "remote-object-size-mismatch"
OBJECT_CORRUPTED = "remote-object-corrupted"
DEEP_FAILED = "deep-object-failed"
DEEP_MISMATCH = "deep-content-mismatch"
RECORD_INVALID = "reencryption-record-invalid"
_POLICY_BROKEN = {POLICY_UNAUTHORIZED, POLICY_ROLLBACK, POLICY_FORK, UNTRUSTED_ROOT}


def _record_blobs(repo: pygit2.Repository, commit: pygit2.Commit) -> list[tuple[str, str]]:
    """(file name, blob id) of the re-encryption records committed at ``commit``."""
    try:
        tree = commit.tree[RECORD_DIR]
    except KeyError:
        return []
    obj = repo[tree.id]
    if not isinstance(obj, pygit2.Tree):
        return []
    return [(e.name or "", str(e.id)) for e in obj if e.type_str == "blob"]


def load_replacements(root: Path) -> tuple[Replacements, list[Finding]]:
    """Re-encryption records (docs/spec/reencryption.md) that ``verify --remote`` may honour.

    A record counts only if some commit that has it also has a keyring whose policy chain
    from the start of history is intact (checked by the history engine, as for sidecars)
    and it is signed by a writer or admin of that keyring. Records are looked up on every
    branch, tag and remote-tracking ref, because they are committed after the revisions
    whose ciphertext they explain. Invalid records are findings, never silently used.
    """
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    tips: dict[str, pygit2.Commit] = {}
    for name in ["HEAD", *repo.references]:
        if name != "HEAD" and not name.startswith(("refs/heads/", "refs/tags/", "refs/remotes/")):
            continue
        try:
            commit = repo.revparse_single(name).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError):
            continue
        tips.setdefault(str(commit.id), commit)
    replacements = Replacements()
    if not tips or not any(_record_blobs(repo, c) for c in reader.ancestry(list(tips.values()))):
        return replacements, []
    verifier = HistoryVerifier()
    tainted: set[str] = set()
    had_trust: set[str] = set()
    accepted: set[str] = set()
    rejected: dict[str, tuple[str, str, str]] = {}  # blob -> (commit, path, why)
    parsed: dict[str, ReencryptionRecord | str] = {}
    for commit in reader.ancestry(list(tips.values())):
        snap = reader.snapshot(commit)
        cid = str(commit.id)
        found = verifier.verify(snap)
        parents = [str(p) for p in commit.parent_ids]
        if any(p in had_trust for p in parents) or snap.trust is not None:
            had_trust.add(cid)
        # a broken policy anywhere upstream (or a keyring deleted after one existed, which
        # would let a forged keyring start a new root) poisons every later commit
        if any(p in tainted for p in parents) or any(f.code in _POLICY_BROKEN for f in found) \
                or (snap.trust is None and cid in had_trust):
            tainted.add(cid)
        for name, blob in _record_blobs(repo, commit):
            if blob in accepted:
                continue
            path = f"{RECORD_DIR}/{name}"
            if blob not in parsed:
                try:
                    parsed[blob] = ReencryptionRecord.from_bytes(reader.read_blob(blob), path)
                except DvcSecureError as exc:
                    parsed[blob] = exc.message
            record = parsed[blob]
            trust = snap.trust
            if isinstance(record, str):
                why = record
            elif cid in tainted or not isinstance(trust, Keyring):
                why = f"{path} is committed where the trust policy is not intact"
            else:
                view = KeyringView(trust.keyring_id, [e.number for e in trust.epochs],
                                   trust.sealer_keys())
                problems = check_record(record, view, epoch_of_filename(name), path)
                if not problems:
                    accepted.add(blob)
                    rejected.pop(blob, None)
                    replacements.add(record)
                    continue
                why = "; ".join(problems)
            rejected[blob] = (cid, path, why)
    # report what the current refs carry (a bad record left in old history stays ignored)
    at_tips = {blob for c in tips.values() for _n, blob in _record_blobs(repo, c)}
    findings = [Finding(cid, path, RECORD_INVALID,
                        f"re-encryption record ignored: {why}",
                        "restore the record from git history, or have a writer re-run the "
                        "re-encryption and commit the record it writes")
                for blob, (cid, path, why) in rejected.items() if blob in at_tips]
    return replacements, findings


@dataclass(frozen=True)
class _Job:
    rev: str
    dataset: str
    output: str


def hash_at(fs: SecureFsspec, path: str) -> StoredObject | None:
    h = hashlib.sha256()
    size = 0
    try:
        with fs.inner.open(fs.storage_path(path), "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return None
    return StoredObject(path, size, h.hexdigest())


def relocated(fs: SecureFsspec, path: str) -> str | None:
    """Where ``fs`` stores the object a sealed remote index lists as ``path``, when the index
    was sealed under other hidden names (on another secure remote, or before ``migrate-names``):
    None without the name secret (keyless: only the sealed names are checked), for a name that
    is no object's, or when it is ``path`` itself."""
    if not fs.hide_names:
        return None
    try:
        rel = fs.namer.reveal_sealed(path)
        located = fs.storage_rel(fs.object_path(rel)) if rel is not None else None
    except DvcSecureError:
        return None
    return located if located != path else None


class RemoteChecker:
    """``remote_name``: check every sealed output on that secure remote (e.g. a backup)
    instead of the remote it was sealed for."""

    def __init__(self, dvc_dir: Path, jobs: int = 4, remote_name: str | None = None) -> None:
        self.dvc_dir = dvc_dir
        self.jobs = jobs
        self.remote_name = remote_name
        self._remotes = SecureRemotes(dvc_dir)
        self._hashed: dict[tuple[str, str], StoredObject | None] = {}
        self._replacements: tuple[Replacements, list[Finding]] | None = None
        self._attestations: dict[str, tuple[Attestations, list[str]]] = {}
        self._trust: UploadTrust | str | None = None

    def replacements(self) -> tuple[Replacements, list[Finding]]:
        """Honoured re-encryption records (loaded on the first changed object only)."""
        if self._replacements is None:
            self._replacements = load_replacements(self.dvc_dir.parent)
        return self._replacements

    def _fs(self, name: str) -> SecureFsspec:
        return self._remotes.get(name)

    def remote_fs(self, name: str) -> SecureFsspec:
        """The secure filesystem of remote ``name`` (opened once)."""
        return self._remotes.get(name)

    def remote_for(self, out: SealedOutput) -> str:
        return self.remote_name or out.remote

    def attestations(self, fs: SecureFsspec) -> tuple[Attestations, list[str]]:
        """Usable upload records on ``fs`` (loaded on its first changed object only)."""
        if fs.fsid not in self._attestations:
            if self._trust is None:
                try:
                    self._trust = trust_of(trusted_keyring(self.dvc_dir))
                except DvcSecureError as exc:
                    self._trust = f"the keyring is not trusted: {exc.message}"
            if isinstance(self._trust, str):
                self._attestations[fs.fsid] = (Attestations(), [self._trust])
            else:
                self._attestations[fs.fsid] = load_attestations(fs, self._trust)
        return self._attestations[fs.fsid]

    def object_problem(self, remote: str, fs: SecureFsspec, expected: StoredObject,
                       actual: StoredObject | None) -> tuple[str, str] | None:
        """(finding code, text) when the stored object is not the pinned one, nor a recorded
        re-encryption of it, nor a ciphertext a trusted writer recorded uploading there."""
        if actual is None:
            return OBJECT_MISSING, "is missing"
        superseded = self._superseded(remote, expected, actual)
        if superseded is not None:
            return OBJECT_CORRUPTED, (
                f"is the ciphertext that the committed re-encryption record {superseded} "
                "replaced (the store was rolled back to a superseded key epoch, which "
                f"revoked members may still open); fix: dvc-secure repair -r {remote} (pushes "
                "it again under the current key epoch from a clone whose cache has it)")
        if actual.sha256 == expected.sha256 and actual.size == expected.size:
            return None
        if self._reencrypted(remote, expected, actual):
            return None
        accepted, ignored = self.attestations(fs)
        # (actual.path differs from expected.path where the index lists the names of another
        # remote or those before a migration: hidden-names.md §9; records name stored paths)
        if accepted.accepts(actual.path, actual.sha256, actual.size):
            return None
        # pushed again, then re-encrypted: a recorded re-encryption of a recorded upload
        if any(self._reencrypted(remote, StoredObject(actual.path, 0, sha), actual)
               for sha in accepted.digests(actual.path)):
            return None
        note = (f" ({len(ignored)} upload record(s) on remote '{remote}' ignored, e.g.: "
                f"{ignored[0]})") if ignored else ""
        if actual.size != expected.size:
            return OBJECT_TRUNCATED, f"has {actual.size} bytes, sealed {expected.size}{note}"
        return OBJECT_CORRUPTED, ("does not hash to the sealed ciphertext nor to one a writer "
                                  f"recorded uploading (corrupted or replaced){note}")

    def here(self, fs: SecureFsspec, digest: str, entries: list[StoredObject]
             ) -> list[StoredObject]:
        """The objects of sealed index ``digest`` as ``fs`` stores them: where a trusted
        writer recorded them under this remote's own hidden names (a backup, a migrated
        remote: docs/spec/repair.md §3a), that record's list; else the sealed entries."""
        if not fs.hide_names or not entries:
            return entries
        accepted, _ = self.attestations(fs)
        objects = accepted.index_objects(digest, len(entries))
        if objects is None:
            return entries
        return [StoredObject(o.path, o.size, o.sha256) for o in objects]

    def stored(self, fs: SecureFsspec, path: str) -> StoredObject | None:
        return self._hash_stored(fs, path)

    def read_index(self, fs: SecureFsspec, digest: str) -> list[StoredObject]:
        """The remote index ``digest`` as stored on ``fs`` (FileNotFoundError, SidecarError)."""
        with fs.inner.open(fs.storage_path(index_storage_path(digest)), "rb") as f:
            return parse_index(f.read(), digest)

    # --- --remote ---------------------------------------------------------------------------

    def _hash_stored(self, fs: SecureFsspec, path: str) -> StoredObject | None:
        """The object a sealed index lists as ``path``, as stored on ``fs`` (where its hidden
        name differs from the index's, found with the name secret when there is one)."""
        key = (fs.fsid, path)
        if key not in self._hashed:
            found = hash_at(fs, path)
            if found is None:
                moved = relocated(fs, path)
                found = hash_at(fs, moved) if moved is not None else None
            self._hashed[key] = found
        return self._hashed[key]

    def check_remote(self, sealed: Iterable[tuple[str, Sidecar]]) -> list[Finding]:
        findings: list[Finding] = []
        work: list[tuple[_Job, SecureFsspec, StoredObject, str]] = []
        for rev, sc in sealed:
            for out in sc.outputs:
                job = _Job(rev, sc.metafile, out.path)
                if out.remote_index is None:
                    findings.append(Finding(rev, sc.metafile, NOT_INDEXED,
                                            f"output {out.path} of version {sc.version} was sealed "
                                            "offline: its remote ciphertext is not pinned",
                                            f"dvc push, then seal a new version: dvc-secure seal {sc.metafile}"))
                    continue
                remote = self.remote_for(out)
                fs = self._fs(remote)
                try:
                    entries = self.read_index(fs, out.remote_index)
                except FileNotFoundError:
                    findings.append(Finding(rev, sc.metafile, INDEX_MISSING,
                                            f"the remote index of {out.path} (version {sc.version}) "
                                            f"is missing from remote '{remote}'",
                                            f"dvc-secure repair -r {remote} (copies it from another "
                                            "secure remote that has it)"))
                    continue
                except DvcSecureError as exc:
                    findings.append(Finding(rev, sc.metafile, INDEX_BAD, exc.message,
                                            f"dvc-secure repair -r {remote}"))
                    continue
                work.extend((job, fs, e, remote) for e in self.here(fs, out.remote_index, entries))
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            results = list(pool.map(lambda w: (w, self._hash_stored(w[1], w[2].path)), work))
        reported: set[tuple[str, str, str]] = set()
        record_findings = False
        for (job, fs, expected, remote), actual in results:
            key = (job.rev, job.dataset, expected.path)
            if key in reported:
                continue
            if actual is not None and actual.sha256 != expected.sha256:
                record_findings = True
            problem = self.object_problem(remote, fs, expected, actual)
            if problem:
                reported.add(key)
                findings.append(Finding(job.rev, job.dataset, problem[0],
                                        f"stored object {expected.path} of output {job.output} "
                                        f"on remote '{remote}' {problem[1]}",
                                        f"dvc-secure repair -r {remote} (pushes it again from a "
                                        "clone whose cache has it, or says which remote has it)"))
        if record_findings:
            findings.extend(self.replacements()[1])
        return findings

    def _superseded(self, remote: str, expected: StoredObject, actual: StoredObject
                    ) -> str | None:
        """The record (file name) whose re-encryption replaced the stored ciphertext at its
        path on ``remote``, if any: a committed, honoured record pins its new ciphertext
        (docs/spec/reencryption.md); None also when the records cover another remote."""
        accepted, _ = self.replacements()
        if not accepted:
            return None
        for path in {expected.path, actual.path}:
            epoch = accepted.superseded_by(remote, path, actual.sha256)
            if epoch is not None:
                return record_relpath(epoch)
        return None

    def _reencrypted(self, remote: str, expected: StoredObject, actual: StoredObject) -> bool:
        """Is the stored object a recorded, signed re-encryption of the pinned one?"""
        accepted, _ = self.replacements()
        return any(accepted.accepts(remote, path, expected.sha256, actual.sha256, actual.size)
                   for path in {expected.path, actual.path})

    # --- --deep -------------------------------------------------------------------------------

    def _manifest(self, fs: SecureFsspec, out: SealedOutput) -> list[dict[str, object]]:
        local = self.dvc_dir / "cache" / "secure" / "manifests" / out.sha256
        data = local.read_bytes() if local.is_file() else None
        if data is None or hashlib.sha256(data).hexdigest() != out.sha256:
            with fs.open("/" + manifest_rel(out.sha256), "rb") as f:
                data = f.read()
        if hashlib.sha256(data).hexdigest() != out.sha256:
            raise DvcSecureError(f"manifest of {out.path} does not match its sealed digest")
        files = json.loads(data)["files"]
        return files if isinstance(files, list) else []

    def check_deep(self, sealed: Iterable[tuple[str, Sidecar]]) -> list[Finding]:
        findings: list[Finding] = []
        work: list[tuple[_Job, SecureFsspec, str, str | None]] = []  # job, fs, oid, expected sha
        for rev, sc in sealed:
            for out in sc.outputs:
                job = _Job(rev, sc.metafile, out.path)
                fs = self._fs(self.remote_for(out))
                if out.is_dir:
                    try:
                        files = self._manifest(fs, out)
                    except (DvcSecureError, FileNotFoundError, ValueError, KeyError) as exc:
                        findings.append(Finding(rev, sc.metafile, DEEP_FAILED,
                                                f"manifest of {out.path} (version {sc.version}) is "
                                                f"unavailable: {getattr(exc, 'message', exc)}",
                                                "re-seal from a clone that has the data"))
                        continue
                    work.append((job, fs, out.oid, None))
                    work.extend((job, fs, str(f["md5"]), str(f["sha256"])) for f in files)
                else:
                    work.append((job, fs, out.oid, out.sha256))

        seen: dict[tuple[str, str], tuple[str | None, str | None]] = {}

        def run(item: tuple[_Job, SecureFsspec, str, str | None]) -> tuple[str | None, str | None]:
            _job, fs, oid, _ = item
            key = (fs.fsid, oid)
            if key not in seen:
                try:
                    seal = fs.verify_object("/" + object_rel(oid))
                    seen[key] = (seal.payload_sha256().hex(), None)
                except FileNotFoundError:
                    seen[key] = (None, "is missing from the remote")
                except DvcSecureError as exc:
                    seen[key] = (None, exc.message)
            return seen[key]

        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            results = list(pool.map(run, work))
        for (job, _fs, oid, expected), (actual, error) in zip(work, results, strict=False):
            if error is not None:
                findings.append(Finding(job.rev, job.dataset, DEEP_FAILED,
                                        f"object {oid} of output {job.output} {error}",
                                        "push it again from a clone whose cache has it"))
            elif expected is not None and actual != expected:
                findings.append(Finding(job.rev, job.dataset, DEEP_MISMATCH,
                                        f"object {oid} of output {job.output} decrypts to content "
                                        "whose SHA-256 differs from the sealed one",
                                        "a writer pushed other content under this id: investigate "
                                        "its signer, then push the right data and re-seal"))
        return findings
