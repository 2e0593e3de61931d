"""pre-commit (and pre-merge-commit): seal staged, changed DVC metafiles whose outputs are
not sealed yet and stage the sidecars; then verify the staged state (the index, with
HEAD and MERGE_HEAD as parents) on top of HEAD's verified history; block key material,
identities, large plaintext files, and confidential or restricted datasets whose remote
is not a ``secure://`` remote. pre-push: verify every pushed revision (this catches
reverts and merges that roll data back) and make sure the objects of every newly sealed
output are on its secure remote (pushing them with ``dvc push`` when they are not).

Every problem says what is wrong and the one command that fixes it. DVC is only imported
when the remote has to be read: by pre-push, and by sealing when this clone's push
journal cannot pin the stored ciphertext (see ``sealing``).

pre-commit is on every commit's critical path, so its usual case reads git through
``git`` plumbing (no pygit2), starts from HEAD's chain state in the verify cache and
re-checks only the datasets whose metafile or sidecar differ from HEAD or lack a
passed-check record (``adapters.git.verify_cache``); merges, policy changes and a HEAD
without a cached state take the full path (``verify_history`` through pygit2).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from dvc_secure.adapters.dvc.config_file import DvcRemotes, dvc_remotes
from dvc_secure.adapters.git import plumbing
from dvc_secure.adapters.git.plumbing import EMPTY_TREE, ObjectReader, RawChange, WorkTree
from dvc_secure.adapters.git.snapshots import KEYRING_PATH, SnapshotBuilder
from dvc_secure.adapters.git.verify_cache import (
    CheckCache,
    CheckedInfo,
    VerifyCache,
    check_key,
    staged_key,
)
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.metafile import is_metafile
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX
from dvc_secure.core.verification.engine import HistoryVerifier, MetafileState, Snapshot
from dvc_secure.core.verification.findings import UNBOUND, UNSEALED, Finding, failing
from dvc_secure.errors import DvcSecureError, GitCommandError, NotPushedError
from dvc_secure.services.hook_checks.content_scan import git_config, scan_blobs
from dvc_secure.services.hook_checks.problems import (
    EXIT_OK,
    PROTECTED,
    Problem,
    finding_problem,
    git,
    quote_path,
    report,
)

_COMMIT_ID = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")

if TYPE_CHECKING:  # pygit2 is imported by pre-push and pre-commit's full path only
    import pygit2

    from dvc_secure.adapters.git.history import SnapshotReader



# --- content scans --------------------------------------------------------------------------


# --- pre-commit ----------------------------------------------------------------------------


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def _before(files: dict[str, str], diff: Iterable[RawChange]) -> dict[str, str]:
    """The relevant files before ``diff``, given those after it."""
    out = dict(files)
    for c in diff:
        if not plumbing.relevant(c.path):
            continue
        if c.old is None:
            out.pop(c.path, None)
        else:
            out[c.path] = c.old
    return out


def _metafiles(files: dict[str, str]) -> list[str]:
    return sorted(p for p in files if is_metafile(p))


def _checked_info(mf: MetafileState) -> CheckedInfo:
    assert mf.sidecar is not None
    return (mf.sidecar.access.classification,
            [(out, mf.remotes.get(out)) for out in sorted(mf.outputs)])


def _worktree_differs(root: Path, path: str, blob_id: str) -> bool:
    try:
        data = (root / path).read_bytes()
    except OSError:
        return True
    return plumbing.object_id(data, len(blob_id)) != blob_id


def _seal(wt: WorkTree, objects: ObjectReader, config: dict[str, list[str]],
          targets: list[str]) -> list[Problem]:
    from dvc_secure.services.sealing import seal_metafiles

    root = wt.root
    problems = []
    for target in targets:  # one by one: one unpushed dataset must not hide the others
        try:
            # pin from the push journal; the remote index is uploaded by pre-push
            results = seal_metafiles(root, [target], defer_upload=True,
                                     git=(wt, objects, config))
            changed = [r for r in results if r.changed]
            if changed:
                from dvc_secure.services.audit_recorder import record_event

                head = objects.commit("HEAD")
                # queued locally (no network in a hook); uploaded by the next push or pull
                record_event(root, "seal", datasets=[r.metafile for r in changed],
                             revision=head[0] if head else None,
                             details={"versions": {r.metafile: r.version for r in changed},
                                      "via": "pre-commit"},
                             interactive=False)
        except NotPushedError:
            problems.append(Problem(target, "its data is not on the secure remote yet, so it "
                                    "cannot be sealed; push it, then commit again",
                                    f"dvc push {quote_path(target)}"))
        except DvcSecureError as exc:
            problems.append(Problem(target, f"could not seal: {exc.message}",
                                    exc.hint or f"dvc-secure seal {quote_path(target)}"))
    return problems


def _remote_problems(datasets: Iterable[tuple[str, CheckedInfo]],
                     remotes: DvcRemotes) -> list[Problem]:
    """Confidential or restricted outputs whose remote does not encrypt."""
    problems = []
    secure = remotes.secure_names()
    good = secure[0] if secure else None
    for name, (classification, outputs) in sorted(datasets, key=lambda d: d[0]):
        if classification not in PROTECTED:
            continue
        for out, declared in outputs:
            remote = declared or remotes.default
            if remotes.is_secure(remote):
                continue
            where = f"remote '{remote}' ({remotes.url(remote) or 'undefined'})" if remote \
                else "no default remote"
            if good is None:
                fix = "dvc-secure init --remote <storage>"
            elif declared:
                fix = f"dvc add {quote_path(out)} --to-remote -r {good} (or set 'remote: {good}' in {name})"
            else:
                fix = f"dvc remote default {good}"
            problems.append(Problem(name, f"output {out} is classified "
                                    f"{classification} but would go to {where}, which "
                                    "does not encrypt", fix))
    return problems


class _StagedCheck:
    """Verifies the staged state (the index, with HEAD and MERGE_HEAD as parents)."""

    def __init__(self, wt: WorkTree, objects: ObjectReader, head: str | None,
                 head_tree: str, head_parents: list[str], merging: bool = False) -> None:
        self.merging = merging  # run as pre-merge-commit
        self.wt, self.root, self.objects = wt, wt.root, objects
        self.head, self.head_tree, self.head_parents = head, head_tree, head_parents
        self.cache = VerifyCache(wt.git_dir)
        self.label: str | None = None  # of the last staged snapshot verified
        self.checks = CheckCache(wt.git_dir)
        self.builder = SnapshotBuilder(self._blob, self.checks.keyrings)
        self.fast: HistoryVerifier | None = None
        self.slow: tuple[HistoryVerifier, SnapshotReader, pygit2.Repository] | None = None
        self.skipped: dict[str, CheckedInfo] = {}  # datasets not re-checked (fast path)

    def _blob(self, oid: str) -> bytes:
        data = self.objects.blob(oid)
        return data if data is not None else b""  # a missing blob: a parse error, reported

    def merge_heads(self) -> list[str]:
        path = self.wt.git_dir / "MERGE_HEAD"
        if not path.is_file():
            if not self.merging:
                return []
            # pre-merge-commit: git writes MERGE_HEAD only after the hook passed, but names
            # every merged head in a GITHEAD_<commit id> environment variable
            return sorted(k[len("GITHEAD_"):] for k in os.environ
                          if k.startswith("GITHEAD_") and _COMMIT_ID.fullmatch(k[len("GITHEAD_"):]))
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    # --- HEAD's chain state ---------------------------------------------------------------

    def seed_fast(self, head_files: dict[str, str]) -> bool:
        """Start from HEAD's chain state without pygit2; False: take the full path."""
        assert self.head is not None
        cache = self.cache
        verifier = HistoryVerifier(today=_today())
        verifier.seed_known(cache.known)
        staged = cache.staged.get(staged_key(self.head_tree, self.head_parents))
        if self.head in cache.states:
            verifier.seed(self.head, cache.states[self.head])
        elif staged is not None:
            # HEAD was committed from a staged tree this hook verified on the same parents
            verifier.seed(self.head, staged[0])
            verifier.seed_known(staged[1])
            cache.save(verifier, [self.head])  # committed now: its sidecars are history
        else:
            # HEAD itself was never verified (committed without the hook, or evicted):
            # verify it on top of its parent's cached state, or from scratch at the root
            if len(self.head_parents) > 1:
                return False
            only: list[str] | None = None
            carried: list[str] = []
            if self.head_parents:
                parent = self.head_parents[0]
                parent_state = cache.states.get(parent)
                if parent_state is None:  # committed from a staged tree the hook verified?
                    info = self.objects.commit(parent)
                    hit = cache.staged.get(staged_key(info[1], info[2])) if info else None
                    if hit is not None:
                        parent_state = hit[0]
                        verifier.seed_known(hit[1])
                delta = plumbing.tree_diff(self.root, parent, self.head)
                if parent_state is None or delta is None or \
                        any(c.path == KEYRING_PATH for c in delta):
                    return False
                verifier.seed(parent, parent_state)
                touched = {c.path for c in delta}
                only = [p for p in _metafiles(head_files)
                        if p in touched or p + SIDECAR_SUFFIX in touched]
                carried = [p for p in _metafiles(head_files) if p not in only]
                verifier.trusts[parent] = self._trust(head_files)
            snap = self.builder.snapshot_from_files(self.head, tuple(self.head_parents),
                                                    head_files, only)
            self.record(snap, head_files, verifier.verify(snap, carried))
            cache.save(verifier, [*self.head_parents, self.head])
        verifier.trusts[self.head] = self._trust(head_files)
        self.fast = verifier
        return True

    def _trust(self, files: dict[str, str]) -> Keyring | None:
        parsed = self.builder.parse_blob("keyring", files[KEYRING_PATH], KEYRING_PATH)
        return parsed.value if isinstance(parsed.value, Keyring) else None

    # --- the staged snapshot ----------------------------------------------------------------

    def verify(self, files: dict[str, str], head_files: dict[str, str],
               label: str) -> tuple[Snapshot, list[Finding]]:
        if self.fast is not None:
            assert self.head is not None
            keyring = files[KEYRING_PATH]
            only, carried, self.skipped = [], [], {}
            for path in _metafiles(files):
                blob, sc = files[path], files.get(path + SIDECAR_SUFFIX)
                hit = None
                if sc is not None and blob == head_files.get(path) \
                        and sc == head_files.get(path + SIDECAR_SUFFIX):
                    # identical to HEAD, and these exact bytes passed the checks before
                    hit = self.checks.get(check_key(path, blob, sc, keyring))
                if hit is None:
                    only.append(path)
                else:
                    carried.append(path)
                    self.skipped[path] = hit
            snap = self.builder.snapshot_from_files(label, (self.head,), files, only)
            findings = self.fast.verify(snap, carried)
            self.label = label
        else:
            snap, findings = self._verify_full(files, label)
        self.record(snap, files, findings)
        return snap, findings

    def _verify_full(self, files: dict[str, str], label: str) -> tuple[Snapshot, list[Finding]]:
        """The full path: HEAD's history verified through pygit2 (cache-assisted)."""
        import pygit2

        from dvc_secure.adapters.git.history import SnapshotReader, open_repository

        if self.slow is None:
            repo = open_repository(self.root)
            if self.head is not None:
                from dvc_secure.services.history_check import verify_history

                rep = verify_history(self.root, rev=self.head)
                assert rep.verifier is not None and rep.reader is not None
                self.slow = (rep.verifier, rep.reader, repo)
            else:
                self.slow = (HistoryVerifier(today=_today()), SnapshotReader(repo), repo)
        verifier, reader, repo = self.slow
        parents = ([self.head] if self.head is not None else []) + self.merge_heads()
        for p in parents:
            if p not in verifier.trusts and p in repo:
                # a parent seeded from the cache: give the policy check its trust
                c = repo.get(p)
                if isinstance(c, pygit2.Commit):
                    verifier.trusts[p] = reader.snapshot(c).trust
        snap = reader.snapshot_from_files(label, tuple(parents), files)
        self.checks.add_keyrings(reader.newly_verified_keyrings)
        self.label = label
        return snap, verifier.verify(snap)

    def record(self, snap: Snapshot, files: dict[str, str], findings: list[Finding]) -> None:
        """Remember the (metafile, sidecar, keyring) contents that passed every check."""
        self.checks.add_keyrings(self.builder.newly_verified_keyrings)
        keyring = files.get(KEYRING_PATH)
        if snap.trust is None or keyring is None or \
                any(f.dataset not in snap.metafiles for f in findings):
            return  # no trust, or a snapshot-wide finding: record nothing
        failed = {f.dataset for f in findings}
        for name, mf in snap.metafiles.items():
            sc = files.get(name + SIDECAR_SUFFIX)
            if name not in failed and mf.sidecar is not None and sc is not None:
                self.checks.add(check_key(name, files[name], sc, keyring), _checked_info(mf))

    def remember(self, tree: str) -> None:
        """Keep the chain state of the verified staged tree for the next commit's hook."""
        verifier = self.fast if self.fast is not None else self.slow[0] if self.slow else None
        if verifier is None or self.label is None:
            return
        parents = ([self.head] if self.head is not None else []) + self.merge_heads()
        self.cache.save(verifier, [], staged=(staged_key(tree, parents), self.label))

    def protection(self, snap: Snapshot) -> list[tuple[str, CheckedInfo]]:
        """Classification and declared remotes of every sealed dataset of the staged state."""
        out = [(name, _checked_info(mf)) for name, mf in snap.metafiles.items()
               if mf.sidecar is not None]
        return out + [(n, info) for n, info in self.skipped.items() if n not in snap.metafiles]


def pre_commit(start: Path, hook: str = "pre-commit") -> int:
    wt = plumbing.discover(start)
    if wt is None:
        return EXIT_OK
    objects = ObjectReader(wt.root)
    try:
        return _pre_commit(wt, objects, merging=hook == "pre-merge-commit")
    except GitCommandError as exc:
        # a check that could not run must block, never pass (fail closed)
        return report("pre-commit", [Problem("", exc.message, exc.hint or "git status")],
                      "commit")
    finally:
        objects.close()


def _head(root: Path, objects: ObjectReader) -> tuple[str | None, str, list[str]]:
    """(HEAD's commit id, tree, parents); (None, "", []) before the first commit."""
    head = plumbing.head_commit_id(root)
    if head is None:
        return None, "", []
    info = objects.commit(head)
    if info is None:
        raise GitCommandError(
            f"HEAD ({head[:12]}) names a commit that git cannot read: the staged state "
            "could not be compared with it, so it was not checked",
            hint="repair the repository ('git fsck'), then commit again")
    return info


def _pre_commit(wt: WorkTree, objects: ObjectReader, merging: bool = False) -> int:
    root = wt.root
    head, head_tree, head_parents = _head(root, objects)
    diff = plumbing.staged_diff(root, head or EMPTY_TREE)
    config = git_config(root) if diff else {}
    problems = scan_blobs(objects, diff, config)
    if not (root / ".dvc").is_dir():
        return _finish(wt, None, problems)
    files, unmerged = plumbing.staged_files(root)
    head_files = _before(files, diff)
    if KEYRING_PATH not in files and KEYRING_PATH not in head_files:
        return _finish(wt, None, problems)  # dvc-secure not initialised here
    check = _StagedCheck(wt, objects, head, head_tree, head_parents, merging)
    if head is not None and not unmerged and not check.merge_heads() \
            and KEYRING_PATH in files and files.get(KEYRING_PATH) == head_files.get(KEYRING_PATH):
        check.seed_fast(head_files)
    snap, findings = check.verify(files, head_files, "(staged)")

    changed = {c.path for c in diff if c.status != "D"}
    to_seal = sorted({f.dataset for f in findings
                      if f.code in (UNSEALED, UNBOUND) and f.dataset in changed})
    if to_seal:
        partial = [t for t in to_seal if _worktree_differs(root, t, files[t])]
        problems += [Problem(t, "the working-tree copy differs from the staged one: the seal "
                             "must cover exactly what is committed", f"git add {quote_path(t)}")
                     for t in partial]
        ready = [t for t in to_seal if t not in partial]
        seal_problems = _seal(wt, objects, config, ready) if ready else []
        problems += seal_problems
        failed = {p.path for p in seal_problems}
        sealed = [t + SIDECAR_SUFFIX for t in ready if t not in failed]
        if sealed:
            proc = git(["add", "--", *sealed], root)
            if proc.returncode != 0:
                problems.append(Problem(", ".join(sealed), f"could not stage the new sidecar(s): "
                                        f"{proc.stderr.strip()}", f"git add {' '.join(sealed)}"))
            print(f"dvc-secure pre-commit: sealed and staged {', '.join(sealed)}", file=sys.stderr)
            files = plumbing.staged_files(root)[0]
            snap, findings = check.verify(files, head_files, "(staged, sealed)")
        skip = set(to_seal) - set(ready) | failed
        findings = [f for f in findings if not (f.dataset in skip and f.code in (UNSEALED, UNBOUND))]
    problems += [finding_problem(f) for f in failing(findings)]  # never block on a note
    problems += _remote_problems(check.protection(snap), dvc_remotes(root / ".dvc"))
    return _finish(wt, check, problems)


def _finish(wt: WorkTree, check: _StagedCheck | None, problems: list[Problem]) -> int:
    if check is not None:
        check.checks.save()
    if not problems:
        _remember_verified(wt, check)
    return report("pre-commit", problems, "commit")


def _remember_verified(wt: WorkTree, check: _StagedCheck | None) -> None:
    """Record the verified staged tree, so prepare-commit-msg need not check it again, and
    its chain state, so the next commit's hook need not verify this commit again."""
    tree = plumbing.write_tree(wt.root)
    if tree is None:
        return
    if check is not None:
        check.remember(tree)
    try:
        marker = wt.git_dir / "dvc-secure" / "verified-tree"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{tree}\n", encoding="utf-8")
    except OSError:
        pass


# --- pre-push ------------------------------------------------------------------------------


