"""``dvc-secure verify`` (offline level) and ``dvc-secure log``: the shells that feed git
history to the verification engine and collect what it finds."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pygit2

from dvc_secure.adapters.git.history import (
    KEYRING_PATH,
    SnapshotReader,
    normalise_metafile,
    open_repository,
    sidecar_history,
)
from dvc_secure.adapters.git.verify_cache import VerifyCache
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.core.verification.engine import HistoryVerifier, expired_member_findings
from dvc_secure.core.verification.findings import (
    INFORMATIONAL,
    KEYRING_REMOVED,
    UNTRUSTED_ROOT,
    Finding,
)


@dataclass
class VerifyReport:
    revisions: list[str] = field(default_factory=list)  # verified revisions
    findings: list[Finding] = field(default_factory=list)  # failures
    # informational findings (e.g. revisions from before dvc-secure was adopted)
    notices: list[Finding] = field(default_factory=list)
    before_adoption: list[str] = field(default_factory=list)  # revisions outside the range
    datasets: dict[str, set[str]] = field(default_factory=dict)  # rev -> metafiles checked
    # the verifier and reader after the walk: hooks verify a staged snapshot on top of them
    verifier: HistoryVerifier | None = field(default=None, repr=False, compare=False)
    reader: SnapshotReader | None = field(default=None, repr=False, compare=False)
    # (first revision, sidecar) of every distinct sidecar in the verified revisions
    sealed: list[tuple[str, Sidecar]] = field(default_factory=list, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.findings


def _all_tips(repo: pygit2.Repository) -> list[pygit2.Commit]:
    tips = []
    for name in repo.references:
        if not (name.startswith("refs/heads/") or name.startswith("refs/tags/")
                or name.startswith("refs/remotes/")):
            continue
        try:
            tips.append(repo.references[name].peel(pygit2.Commit))
        except (ValueError, pygit2.GitError):
            continue
    return tips


def _trust_at(reader: SnapshotReader, commit: pygit2.Commit) -> Keyring | None:
    blob = reader.files_at(commit).get(KEYRING_PATH)
    if blob is None:
        return None
    parsed = reader.parse_blob("keyring", blob, KEYRING_PATH)
    return parsed.value if isinstance(parsed.value, Keyring) else None


def _ancestor_of_a_tip(repo: pygit2.Repository, rev: str, tips: list[pygit2.Commit]) -> bool:
    oid = pygit2.Oid(hex=rev)
    return any(tip.id == oid or repo.descendant_of(tip.id, oid) for tip in tips)


def verify_history(root: Path, rev: str | None = None, all_revisions: bool = False,
                   remote: bool = False, deep: bool = False, jobs: int = 4,
                   use_cache: bool = True, root_policy: str | None = None,
                   exclude: list[str] | None = None,
                   remote_name: str | None = None,
                   as_of: dt.date | None = None) -> VerifyReport:
    """``exclude`` (commit ids, with a single ``rev``): verify every commit reachable from
    ``rev`` but from none of them, e.g. what a push adds (pre-push hook). ``remote_name``:
    the remote levels check that secure remote instead of each output's sealed one.
    ``as_of``: the date that decides whether grants have expired (default: today, UTC,
    by this clock)."""
    today = as_of or dt.datetime.now(dt.timezone.utc).date()
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    base_commit: pygit2.Commit | None = None
    if all_revisions:
        tips = _all_tips(repo)
        targets = None
    elif rev and ".." in rev:
        base, _, head = rev.partition("..")
        tip = reader.resolve(head or "HEAD")
        tips = [tip]
        base_commit = reader.resolve(base) if base else None
        stop = {str(base_commit.id)} if base_commit is not None else set()
        targets = {str(c.id) for c in reader.ancestry([tip], stop)}
    else:
        tip = reader.resolve(rev or "HEAD")
        tips = [tip]
        targets = {str(tip.id)} if exclude is None else \
            {str(c.id) for c in reader.ancestry([tip], set(exclude))}
    report = VerifyReport()
    if not tips:
        return report
    def new_verifier() -> HistoryVerifier:
        # a walk of all history cannot tell when a sidecar arrived: no arrival check
        return HistoryVerifier(root_policy, today=today, arrivals=not all_revisions)

    verifier = new_verifier()
    # the cache only skips history *outside* the requested revisions; --all-revisions and
    # the remote levels need every sidecar, so they always walk everything
    # (and a pinned root needs the walk to start at the root)
    cache = VerifyCache(Path(repo.path)) if use_cache and targets is not None and not (
        remote or deep or root_policy) else None
    hide: set[str] = set()
    if cache is not None and cache.states:
        for cached_rev, state in cache.states.items():
            # only a cached *ancestor* of a tip may stand in for its history: git's revwalk
            # hides every ancestor of a hidden commit, so hiding a descendant of the
            # revision asked for (or an unrelated commit) would hide what must be checked
            if (targets is None or cached_rev not in targets) and cached_rev in repo \
                    and _ancestor_of_a_tip(repo, cached_rev, tips):
                verifier.seed(cached_rev, state)
                hide.add(cached_rev)
        verifier.seed_known(cache.known)
    commits = reader.ancestry(tips, hide)
    if hide and targets and not targets & {str(c.id) for c in commits}:
        hide = set()  # never report "verified" over zero of the revisions asked for
        verifier = HistoryVerifier(root_policy)
        commits = reader.ancestry(tips)
    if hide:
        # every parent must be either walked now or seeded from the cache; otherwise
        # (e.g. a merge of a branch the cache never saw) walk the whole history
        have = set(verifier.states) | {str(c.id) for c in commits}
        if any(str(p) not in have for c in commits for p in c.parent_ids):
            verifier = new_verifier()
            commits = reader.ancestry(tips)
    for parent in {str(p) for c in commits for p in c.parent_ids} - {str(c.id) for c in commits}:
        # seeded from the cache: the engine also needs the policy in force there, to check
        # a policy change in the first new commit against it
        if parent in verifier.states and parent not in verifier.trusts:
            verifier.trusts[parent] = _trust_at(reader, reader.resolve(parent))
    sealed: dict[str, tuple[str, Sidecar]] = {}
    processed: list[str] = []
    for commit in commits:
        snap = reader.snapshot(commit)
        found = verifier.verify(snap)
        cid = str(commit.id)
        processed.append(cid)
        if targets is not None and cid not in targets:
            # a history that does not start from the pinned root taints every revision
            report.findings.extend(f for f in found if f.code == UNTRUSTED_ROOT)
        if targets is None or cid in targets:
            if not verifier.states[cid].adopted:
                report.before_adoption.append(cid)
                report.notices.extend(found)
                continue
            report.revisions.append(cid)
            report.findings.extend(f for f in found if f.code not in INFORMATIONAL)
            report.notices.extend(f for f in found if f.code in INFORMATIONAL)
            report.datasets[cid] = set(snap.metafiles)
            for mf in snap.metafiles.values():
                if mf.sidecar is not None and mf.sidecar.digest not in sealed:
                    sealed[mf.sidecar.digest] = (cid, mf.sidecar)
    # (--all-revisions: old tags and branches from before adoption are legitimate tips)
    report.findings.extend(_unadopted_tips(reader, verifier, tips, base_commit,
                                           None if all_revisions else root_policy))
    if cache is not None and processed:
        keep = [str(p) for t in tips for p in t.parent_ids] + [str(t.id) for t in tips]
        cache.save(verifier, [r for r in keep if r in verifier.states])
    if exclude is None:
        # (not for pre-push, which passes ``exclude``: an expiry must not block a writer's
        # push; rotating is an admin's job, and 'verify' tells them)
        report.findings.extend(_expired_members(reader, tips, today))
    if remote or deep:
        from dvc_secure.services.remote_check import RemoteChecker

        checker = RemoteChecker(root / ".dvc", jobs=jobs, remote_name=remote_name)
        if remote:
            report.findings.extend(checker.check_remote(sealed.values()))
        if deep:
            report.findings.extend(checker.check_deep(sealed.values()))
    from dvc_secure.services.retention import verify_retention  # docs/erasure.md

    verify_retention(root, list(sealed.values()), today, report.findings, report.notices,
                     remote=remote or deep)
    report.verifier, report.reader = verifier, reader
    report.sealed = list(sealed.values())
    return report


def _unadopted_tips(reader: SnapshotReader, verifier: HistoryVerifier,
                    tips: list[pygit2.Commit], base: pygit2.Commit | None,
                    root_policy: str | None) -> list[Finding]:
    """A tip from before adoption is fine on its own (an old tag, an old branch), but not
    when the range's base had the keyring (the keyring and the sidecars were dropped, e.g.
    by a rewritten or reset history) nor when the root policy is pinned for a gate that
    checks this one tip or range."""
    base_adopted = base is not None and (
        KEYRING_PATH in reader.files_at(base)
        or (str(base.id) in verifier.states and verifier.states[str(base.id)].adopted))
    out = []
    for tip in tips:
        state = verifier.states.get(str(tip.id))
        if state is None or state.adopted:
            continue
        if base_adopted:
            assert base is not None
            out.append(Finding(str(tip.id), KEYRING_PATH, KEYRING_REMOVED,
                               f"the range starts at {str(base.id)[:10]}, which holds the "
                               "keyring, but ends at a revision with no dvc-secure history at "
                               "all (history rewritten or reset to before adoption?)",
                               "push a history that descends from the adopted one"))
        elif root_policy is not None:
            out.append(Finding(str(tip.id), KEYRING_PATH, UNTRUSTED_ROOT,
                               "the root trust policy is pinned, but this history has no "
                               "keyring at all (history rewritten?)",
                               "fetch the genuine history; only change the pinned root on "
                               "purpose"))
    return out


def _expired_members(reader: SnapshotReader, tips: list[pygit2.Commit],
                     day: dt.date) -> list[Finding]:
    """Members of the tips' keyrings whose grant expired but who hold the current epoch."""
    out: list[Finding] = []
    seen: set[str] = set()
    for tip in tips:
        ring = _trust_at(reader, tip)
        if ring is None or ring.digest in seen:
            continue
        seen.add(ring.digest)
        expired = [(m.name, m.role, m.expires or "") for m in ring.expired_members(day)
                   if ring.holds_current_epoch(m)]
        out += expired_member_findings(str(tip.id), ring.current_epoch, expired)
    return out


@dataclass(frozen=True)
class LogEntry:
    commit: str
    sidecar: Sidecar
    signer: str


def dataset_log(root: Path, target: str, rev: str = "HEAD") -> list[LogEntry]:
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    metafile = normalise_metafile(target)
    entries = []
    for commit, sc in sidecar_history(reader, reader.resolve(rev), metafile):
        signer = sc.signer_keyid
        kr_blob = reader.files_at(commit).get(".dvc/secure/keyring.json")
        if kr_blob is not None:
            parsed = reader.parse_blob("keyring", kr_blob, ".dvc/secure/keyring.json")
            if isinstance(parsed.value, Keyring):
                member = parsed.value.member_by_keyid(sc.signer_keyid)
                if member is not None:
                    signer = f"{member.name} ({sc.signer_keyid})"
        entries.append(LogEntry(str(commit.id), sc, signer))
    return entries


def sealed_objects(root: Path, read_dir_listing: Callable[[str], list[dict[str, str]]]) -> dict[str, str]:
    """Every DVC object id that a sealed version on any branch or tag needs, mapped to a
    description of the first such version ("data.dvc v3"). Used to pin objects against
    ``dvc gc -c``."""
    repo = open_repository(root)
    reader = SnapshotReader(repo)
    tips = _all_tips(repo)
    pinned: dict[str, str] = {}
    if not tips:
        return pinned
    seen: set[str] = set()
    for commit in reader.ancestry(tips):
        for path, blob in reader.files_at(commit).items():
            if not path.endswith(SIDECAR_SUFFIX) or blob in seen:
                continue
            seen.add(blob)
            parsed = reader.parse_blob("sidecar", blob, path)
            if not isinstance(parsed.value, Sidecar):
                continue
            sc = parsed.value
            label = f"{sc.metafile} v{sc.version}"
            for out in sc.outputs:
                pinned.setdefault(out.oid, label)
                if out.is_dir:
                    for entry in read_dir_listing(out.oid):
                        oid = entry.get("md5")
                        if isinstance(oid, str):
                            pinned.setdefault(oid, label)
    return pinned
