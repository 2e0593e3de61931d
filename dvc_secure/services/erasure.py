"""Key domains, crypto-shredding and legal hold (docs/erasure.md).

``move_into_domain``: before ``seal --domain D`` pins the stored ciphertext, every object of
the datasets is re-uploaded from the local cache, encrypted under D's key, to every secure
remote of the repository. ``shred``: an admin-signed erasure record first (so a killed run
resumes with it), then D's key files destroyed on every secure remote, the domain's objects
deleted there, and this clone's cache purged. ``hold``/``release``: admin-signed records
that block shred and retention.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.adapters.dvc.domain_store import forget_domain, update_domain_map
from dvc_secure.adapters.dvc.remote_access import SecureRemotes
from dvc_secure.adapters.git.history import SnapshotReader, open_repository
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys, RepoKeys
from dvc_secure.core.format.domain_keys import check_domain_name
from dvc_secure.core.records.erasure import ErasureRecord, record_relpath
from dvc_secure.core.records.hold import HoldRecord, hold_relpath
from dvc_secure.core.sidecar.metafile import parse_outputs
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.findings import Finding
from dvc_secure.errors import (
    AccessDeniedError,
    DomainKeyMissingError,
    DvcSecureError,
    ErasureError,
    LegalHoldError,
)
from dvc_secure.services.current_revisions import current_tips, targets_of
from dvc_secure.services.sealing import CacheReader, DigestCache, object_rel

Progress = Callable[[str], None]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _admin(keys: RepoKeys, what: str) -> str:
    member = keys.keyring.member_for(keys.identity)
    if member is None or member.role != "admin" or keys.identity.signing is None:
        raise AccessDeniedError(
            f"{what} needs an admin of the keyring; you are "
            f"{'not a member' if member is None else repr(member.role)}",
            hint="ask an admin of this repository ('dvc-secure members')")
    return member.name


def secure_remote_names(root: Path) -> list[str]:
    names = dvc_remotes(root / ".dvc").secure_names()
    if not names:
        raise ErasureError("this repository has no secure:// remote",
                           hint="dvc-secure init --remote <storage>")
    return names


# --- records in the workspace -------------------------------------------------------------------


def load_erasure(root: Path, domain: str, keys: RepoKeys) -> tuple[ErasureRecord | None, list[str]]:
    """The domain's erasure record in the workspace and why it may not be used."""
    path = root / record_relpath(domain)
    if not path.is_file():
        return None, []
    record = ErasureRecord.from_bytes(path.read_bytes(), record_relpath(domain))
    ring = keys.keyring
    return record, record.problems(ring.keyring_id, ring.admin_keys(), ring.threshold, domain,
                                   record_relpath(domain))


def load_hold(root: Path, domain: str, keys: RepoKeys) -> tuple[HoldRecord | None, list[str]]:
    path = root / hold_relpath(domain)
    if not path.is_file():
        return None, []
    try:
        record = HoldRecord.from_bytes(path.read_bytes(), hold_relpath(domain))
    except DvcSecureError as exc:
        return None, [exc.message]
    ring = keys.keyring
    return record, record.problems(ring.keyring_id, ring.admin_keys(), 1, domain,
                                   hold_relpath(domain))


def check_not_held(root: Path, domain: str, keys: RepoKeys) -> None:
    record, problems = load_hold(root, domain, keys)
    if problems:
        raise LegalHoldError(
            f"{hold_relpath(domain)} cannot be verified ({'; '.join(problems)}): it is treated "
            f"as a legal hold on '{domain}'", hint="an admin re-issues or releases the hold: "
            f"dvc-secure hold {domain} --reason ... / --release")
    if record is not None and record.active:
        raise LegalHoldError(
            f"key domain '{domain}' is under legal hold since {record.created[:10]} "
            f"(by {record.by}: {record.reason}); nothing was shredded",
            hint=f"an admin releases it when the hold ends: dvc-secure hold {domain} --release "
            "--reason ...")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def set_hold(root: Path, domain: str, reason: str, active: bool) -> HoldRecord:
    """Place (or release) a legal hold: an admin-signed record at ``.dvc/secure/holds/``."""
    check_domain_name(domain)
    keys = LazyRepoKeys(str(root / ".dvc")).get()
    name = _admin(keys, "a legal hold")
    if not reason.strip():
        raise ErasureError("a hold needs a reason", hint="--reason 'litigation 2026-44'")
    record = HoldRecord.create(keyring_id=keys.keyring.keyring_id,
                               epoch=keys.keyring.current_epoch, created=_now(), domain=domain,
                               reason=reason, by=name, active=active)
    assert keys.identity.signing is not None
    record = record.sign(keys.identity.signing)
    _write(root / hold_relpath(domain), record.to_bytes())
    return record


# --- datasets of a domain ------------------------------------------------------------------------


@dataclass(frozen=True)
class DomainContents:
    datasets: dict[str, list[str]]  # metafile -> revisions (commit ids) that sealed it in D
    sidecars: list[Sidecar]


def domain_contents(root: Path, domain: str) -> DomainContents:
    """Every sealed revision, in all history reachable from HEAD and local branches, of
    datasets whose sidecar puts them in ``domain``."""
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    datasets: dict[str, set[str]] = {}
    found: dict[str, Sidecar] = {}
    for commit in reader.ancestry(current_tips(repo)):
        for path, blob in reader.files_at(commit).items():
            if not path.endswith(SIDECAR_SUFFIX):
                continue
            parsed = reader.parse_blob("sidecar", blob, path)
            sc = parsed.value
            if isinstance(sc, Sidecar) and sc.access.domain == domain:
                datasets.setdefault(sc.metafile, set()).add(str(commit.id))
                found.setdefault(sc.digest, sc)
    return DomainContents({m: sorted(r) for m, r in sorted(datasets.items())},
                          list(found.values()))


# --- seal --domain -------------------------------------------------------------------------------


def move_into_domain(root: Path, metafiles: list[str], domain: str,
                     progress: Progress | None = None) -> int:
    """Re-upload every object of ``metafiles`` from the local cache, encrypted under
    ``domain``'s key, to every secure remote; returns the number of uploads."""
    check_domain_name(domain)
    dvc_dir = root / ".dvc"
    keys = LazyRepoKeys(str(dvc_dir)).get()
    erased, _problems = load_erasure(root, domain, keys)
    if erased is not None:
        raise ErasureError(f"key domain '{domain}' was shredded ({erased.describe()}); a "
                           "shredded domain name is never reused", hint="choose a new --domain")
    keys.signer()  # a reader may not write
    digests = DigestCache(dvc_dir / "tmp" / "secure" / "digests.sqlite")
    cache = CacheReader(dvc_dir / "cache", digests)
    oids: set[str] = set()
    try:
        for metafile in metafiles:
            for out in parse_outputs((root / metafile).read_bytes(), metafile).values():
                oids.add(out.oid)
                if out.oid.endswith(".dir"):
                    oids.update(str(e["md5"]) for e in cache.dir_listing(out.oid))
    finally:
        digests.close()
    update_domain_map(dvc_dir, metafiles, domain)  # later pushes of new versions: into D too
    remotes = SecureRemotes(dvc_dir)
    count = 0
    for name in secure_remote_names(root):
        fs = remotes.get(name)
        for oid in sorted(oids):
            local = cache.object_path(oid)
            if not local.is_file():
                raise ErasureError(f"object {oid} of {', '.join(metafiles)} is not in the local "
                                   "cache, so it cannot be moved into the domain",
                                   hint="dvc pull the dataset first")
            with open(local, "rb") as f:
                fs.upload_stream(f, "/" + object_rel(oid), size=local.stat().st_size,
                                 domain=domain)
            count += 1
        if fs.journal is not None:
            fs.journal.flush()
        if progress:
            progress(f"{len(oids)} object(s) moved into key domain '{domain}' on '{name}'")
    from dvc_secure.services.upload_records import publish_pending

    # signed upload records: verify --remote accepts the new ciphertext where older sealed
    # versions pinned the old one (docs/spec/repair.md)
    publish_pending(strict=True)
    return count


# --- shred ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShredResult:
    record: ErasureRecord
    record_path: str
    destroyed: dict[str, int]  # remote -> key files destroyed
    deleted: dict[str, int]  # remote -> objects deleted
    purged: int  # cache files removed from this clone
    resumed: bool


def _build_record(root: Path, domain: str, reason: str, keys: RepoKeys, by: str,
                  remotes: SecureRemotes, names: list[str]) -> ErasureRecord:
    contents = domain_contents(root, domain)
    if not contents.datasets:
        raise ErasureError(f"no sealed dataset in any revision is in key domain '{domain}'",
                           hint="seal one with: dvc-secure seal <file.dvc> --domain " + domain)
    targets = targets_of(root / ".dvc", remotes, contents.sidecars)
    objects = {t.rel for t in targets}
    return ErasureRecord.create(keyring_id=keys.keyring.keyring_id,
                                epoch=keys.keyring.current_epoch, created=_now(), domain=domain,
                                reason=reason, by=by, datasets=contents.datasets,
                                objects=objects, remotes=names)


def shred(root: Path, domain: str, reason: str, progress: Progress | None = None) -> ShredResult:
    check_domain_name(domain)
    dvc_dir = root / ".dvc"
    keys = LazyRepoKeys(str(dvc_dir)).get()
    by = _admin(keys, "shred")
    check_not_held(root, domain, keys)
    remotes = SecureRemotes(dvc_dir)
    names = secure_remote_names(root)
    record, problems = load_erasure(root, domain, keys)
    if record is not None and not record.valid_signers(keys.keyring.admin_keys()):
        record = None  # no admin signed it: never sign someone else's text; rebuild it
    resumed = record is not None
    if record is None:
        if not reason.strip():
            raise ErasureError("shred needs a reason", hint="--reason 'erasure request 17'")
        record = _build_record(root, domain, reason, keys, by, remotes, names)
    assert keys.identity.signing is not None
    if problems or not resumed:
        record = record.sign(keys.identity.signing)
    _write(root / record_relpath(domain), record.to_bytes())  # first: a killed run resumes
    ring = keys.keyring
    still = record.problems(ring.keyring_id, ring.admin_keys(), ring.threshold, domain,
                            record_relpath(domain))
    if still:
        raise ErasureError(
            f"erasure of '{domain}' is pending: {'; '.join(still)}. Nothing was destroyed yet",
            hint=f"another admin runs 'dvc-secure shred {domain}' in a clone with "
            f"{record_relpath(domain)}, then commits it")
    destroyed: dict[str, int] = {}
    deleted: dict[str, int] = {}
    unreachable = []
    for name in record.remotes:
        fs = remotes.get(name)
        try:
            reachable = fs.inner.exists(fs.inner_root)
        except Exception:  # any backend error means: not reachable now
            reachable = False
        if not reachable:
            unreachable.append(name)
            continue
        destroyed[name] = fs.domains.destroy(domain)
        deleted[name] = _delete_objects(fs, record.objects)
        if progress:
            progress(f"'{name}': {destroyed[name]} domain key file(s) destroyed, "
                     f"{deleted[name]} object(s) deleted")
    if unreachable:
        done = ", ".join(f"'{n}'" for n in destroyed) or "none"
        raise ErasureError(
            f"secure remote(s) {', '.join(repr(n) for n in unreachable)} cannot be reached: the "
            f"key of '{domain}' was not destroyed there yet (done: {done}); the erasure is "
            "incomplete", hint=f"make them reachable and run 'dvc-secure shred {domain}' again: "
            f"it resumes with the same record ({record_relpath(domain)})")
    forget_domain(dvc_dir, domain)  # later pushes must not recreate the domain's keys
    purged = _purge_cache(dvc_dir, record.objects)
    return ShredResult(record, record_relpath(domain), destroyed, deleted, purged, resumed)


def _delete_objects(fs: object, rels: frozenset[str]) -> int:
    n = 0
    for rel in sorted(rels):
        target = fs.object_path(rel)  # type: ignore[attr-defined]
        try:
            fs.inner.rm_file(target)  # type: ignore[attr-defined]
            n += 1
        except FileNotFoundError:
            continue
    return n


def _purge_cache(dvc_dir: Path, rels: frozenset[str]) -> int:
    n = 0
    for rel in rels:
        if rel.startswith("files/md5/"):
            paths = [dvc_dir / "cache" / rel, dvc_dir / "cache" / rel.removeprefix("files/md5/")]
        elif rel.startswith("secure/manifests/"):
            paths = [dvc_dir / "cache" / rel]
        else:
            continue
        for p in paths:
            if p.is_file():
                p.chmod(0o600)
                p.unlink()
                n += 1
    return n


DOMAIN_KEY_MISSING = "domain-key-missing"


def domain_key_findings(root: Path, sealed: list[tuple[str, Sidecar]],
                        erased: set[str]) -> tuple[list[Finding], list[Finding]]:
    """verify --remote: every sealed output of a domain that was not erased needs its
    domain key file on its remote ((failures, notices); no identity here: a notice)."""
    remotes = SecureRemotes(root / ".dvc")
    fail: list[Finding] = []
    info: list[Finding] = []
    checked: set[tuple[str, str, int]] = set()
    for rev, sc in sealed:
        domain = sc.access.domain
        if domain is None or domain in erased:
            continue
        for out in sc.outputs:
            key = (out.remote, domain, out.key_epoch)
            if key in checked:
                continue
            checked.add(key)
            try:
                remotes.get(out.remote).domains.data_key(domain, out.key_epoch)
                fail.extend(_outside_domain(root, remotes, rev, sc, domain))
            except DomainKeyMissingError as exc:
                fail.append(Finding(rev, sc.metafile, DOMAIN_KEY_MISSING,
                                    f"{sc.metafile} on '{out.remote}': {exc.message}",
                                    "no valid erasure record explains it: restore the domain "
                                    "key file from another secure remote or a backup of the "
                                    "storage, then run 'dvc-secure verify --remote' again"))
            except DvcSecureError as exc:  # no identity (keyless CI): cannot open key files
                info.append(Finding(rev, sc.metafile, "domain-key-not-checked",
                                    f"domain key of '{domain}' not checked: {exc.message}", ""))
    return fail, info


OUTSIDE_DOMAIN = "object-outside-domain"


def _outside_domain(root: Path, remotes: SecureRemotes, rev: str, sc: Sidecar,
                    domain: str) -> list[Finding]:
    """Objects of a domain dataset stored under another key (e.g. pushed by a clone without
    the domain map): a shred could not erase them."""
    out = []
    for t in targets_of(root / ".dvc", remotes, [sc]):
        if t.rel.startswith("secure/manifests/"):
            continue  # names and digests, no content: under the repository key (erasure.md)
        fs = remotes.get(t.remote)
        try:
            got, key = fs.domains.stored_key(fs.object_path(t.rel), t.rel)
        except FileNotFoundError:
            continue  # remote-object-missing is the remote check's finding
        if key is not None and got != domain:
            out.append(Finding(rev, sc.metafile, OUTSIDE_DOMAIN,
                               f"{t.rel} of {sc.metafile} on '{t.remote}' is stored under "
                               f"{'the repository key' if got is None else repr(got)}, not in "
                               f"key domain '{domain}': a shred would not erase it",
                               f"move it: dvc-secure seal {sc.metafile} --domain {domain}"))
    return out


def pulled_by(root: Path, metafiles: list[str]) -> list[tuple[str, str, str]]:
    """(member, last pull time, host) of every member the audit trail shows pulling one of
    ``metafiles`` (or everything, with no targets): whom the DPO asks about local copies."""
    from dvc_secure.services.audit_recorder import event_row, read_log

    wanted = set(metafiles)
    seen: dict[tuple[str, str], str] = {}
    for ev in read_log(root, remote=None).view.events:
        if ev.action != "pull":
            continue
        if ev.datasets != ["all"] and not wanted & {d.removesuffix(".dvc") + ".dvc"
                                                    for d in ev.datasets}:
            continue
        row = event_row(ev, {})
        key = (str(row["actor"]), str(row["client"]["host"]))
        seen[key] = max(seen.get(key, ""), str(row["time"]))
    return sorted((actor, when, host) for (actor, host), when in seen.items())
