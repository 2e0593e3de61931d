"""The checks behind dvc-secure's git hooks (``dvc-secure hook NAME``).

pre-commit (and pre-merge-commit): seal staged, changed DVC metafiles whose outputs are
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
passed-check record (``git_adapter.verify_cache``); merges, policy changes and a HEAD
without a cached state take the full path (``verify_history`` through pygit2).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_secure.dvc_config_file import DvcRemotes, dvc_remotes
from dvc_secure.errors import DvcSecureError
from dvc_secure.git_adapter import plumbing
from dvc_secure.git_adapter.plumbing import EMPTY_TREE, ObjectReader, RawChange, WorkTree
from dvc_secure.git_adapter.snapshots import KEYRING_PATH, SnapshotBuilder
from dvc_secure.git_adapter.verify_cache import (
    CheckCache,
    CheckedInfo,
    VerifyCache,
    check_key,
    staged_key,
)
from dvc_secure.keys.keyring import Keyring
from dvc_secure.sidecar.metafile import is_metafile
from dvc_secure.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.verification.engine import (
    UNBOUND,
    UNSEALED,
    Finding,
    HistoryVerifier,
    MetafileState,
    Snapshot,
)

if TYPE_CHECKING:  # pygit2 is imported by pre-push and pre-commit's full path only
    import pygit2

    from dvc_secure.git_adapter.history import SnapshotReader

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
ZERO = "0" * 40
DEFAULT_MAX_FILE_SIZE = 1 << 20
PROTECTED = ("confidential", "restricted")
_KEY_RE = re.compile(
    rb"(AGE-SECRET-KEY-1|DVC-SECURE-SIGNING-KEY-1)[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{40,}",
    re.IGNORECASE)
_SCAN_LIMIT = 64 << 20


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    fix: str


def report(hook: str, problems: list[Problem], action: str) -> int:
    """Print the problems (what, then the fix); exit code 1 if there are any."""
    if not problems:
        return EXIT_OK
    print(f"dvc-secure {hook}: {action} blocked ({len(problems)} problem(s))", file=sys.stderr)
    for p in problems:
        where = f"{p.path}: " if p.path else ""
        print(f"  {where}{p.message}\n    fix: {p.fix}", file=sys.stderr)
    return EXIT_BLOCKED


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True)


def _open(start: Path) -> tuple[pygit2.Repository, Path] | None:
    import pygit2

    found = pygit2.discover_repository(str(start))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    if repo.is_bare or not repo.workdir:
        return None
    return repo, Path(repo.workdir)


# --- content scans --------------------------------------------------------------------------


def _max_file_size(config: dict[str, list[str]]) -> int:
    values = config.get("dvc-secure.maxfilesize")
    try:
        return plumbing.config_int(values[-1]) if values else DEFAULT_MAX_FILE_SIZE
    except ValueError:
        return DEFAULT_MAX_FILE_SIZE


def _allowed(patterns: list[str], path: str) -> bool:
    """Paths exempted from the content scans: ``git config --add dvc-secure.allow GLOB``."""
    import fnmatch

    return any(fnmatch.fnmatch(path, p) for p in patterns)


def git_config(root: Path) -> dict[str, list[str]]:
    """The config values the hooks read (dvc-secure.*, and user.* for sealing): one process."""
    return plumbing.config_values(root, r"^(dvc-secure|user)\.")


def scan_blobs(objects: ObjectReader, changes: Iterable[RawChange],
               config: dict[str, list[str]]) -> list[Problem]:
    """Key material, identities and large plaintext files among the staged additions."""
    problems: list[Problem] = []
    todo = [c for c in changes if c.new is not None]
    if not todo:
        return problems
    limit = _max_file_size(config)
    patterns = [p for p in config.get("dvc-secure.allow", []) if p]
    for ch in todo:
        if _allowed(patterns, ch.path):
            continue
        assert ch.new is not None
        got = objects.get(ch.new)
        if got is None or got[1] != "blob":
            continue  # a submodule
        data = got[2]
        size = len(data)
        if size <= _SCAN_LIMIT and _KEY_RE.search(data):
            problems.append(_key_problem(ch.path, data))
            continue
        special = plumbing.relevant(ch.path) or ch.path.endswith((".gitignore", ".dvcignore"))
        if limit > 0 and size > limit and not special:
            problems.append(Problem(
                ch.path,
                f"{size} bytes of plaintext data staged straight into git (limit {limit}; "
                "git config dvc-secure.maxFileSize)",
                f"git rm --cached -q {_q(ch.path)} && dvc add {_q(ch.path)}"))
    return problems


def _key_problem(path: str, data: bytes) -> Problem:
    from dvc_secure.keys.identity import Identity

    kind = "secret key material"
    try:
        Identity.from_text(data.decode("utf-8"), path)
        kind = "a plaintext dvc-secure identity (private keys)"
    except (DvcSecureError, UnicodeDecodeError):
        pass
    return Problem(path, f"{kind} staged for commit: anyone with read access to the repository "
                   "could decrypt and sign; if it was ever pushed, rotate it",
                   f"git rm --cached -q {_q(path)}")


def _q(path: str) -> str:
    import shlex

    return shlex.quote(path)


# --- pre-commit ----------------------------------------------------------------------------


def _finding_problem(f: Finding) -> Problem:
    return Problem(f.dataset, f.message, f.fix)


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
    from dvc_secure.sealing import NotPushedError, seal_metafiles

    root = wt.root
    problems = []
    for target in targets:  # one by one: one unpushed dataset must not hide the others
        try:
            # pin from the push journal; the remote index is uploaded by pre-push
            results = seal_metafiles(root, [target], defer_upload=True,
                                     git=(wt, objects, config))
            changed = [r for r in results if r.changed]
            if changed:
                from dvc_secure.audit.recorder import record_event

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
                                    f"dvc push {_q(target)}"))
        except DvcSecureError as exc:
            problems.append(Problem(target, f"could not seal: {exc.message}",
                                    exc.hint or f"dvc-secure seal {_q(target)}"))
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
                fix = f"dvc add {_q(out)} --to-remote -r {good} (or set 'remote: {good}' in {name})"
            else:
                fix = f"dvc remote default {good}"
            problems.append(Problem(name, f"output {out} is classified "
                                    f"{classification} but would go to {where}, which "
                                    "does not encrypt", fix))
    return problems


class _StagedCheck:
    """Verifies the staged state (the index, with HEAD and MERGE_HEAD as parents)."""

    def __init__(self, wt: WorkTree, objects: ObjectReader, head: str | None,
                 head_tree: str, head_parents: list[str]) -> None:
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
            return []
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    # --- HEAD's chain state ---------------------------------------------------------------

    def seed_fast(self, head_files: dict[str, str]) -> bool:
        """Start from HEAD's chain state without pygit2; False: take the full path."""
        assert self.head is not None
        cache = self.cache
        verifier = HistoryVerifier()
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

        from dvc_secure.git_adapter.history import SnapshotReader, open_repository

        if self.slow is None:
            repo = open_repository(self.root)
            if self.head is not None:
                from dvc_secure.history_check import verify_history

                rep = verify_history(self.root, rev=self.head)
                assert rep.verifier is not None and rep.reader is not None
                self.slow = (rep.verifier, rep.reader, repo)
            else:
                self.slow = (HistoryVerifier(), SnapshotReader(repo), repo)
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


def pre_commit(start: Path) -> int:
    wt = plumbing.discover(start)
    if wt is None:
        return EXIT_OK
    objects = ObjectReader(wt.root)
    try:
        return _pre_commit(wt, objects)
    finally:
        objects.close()


def _pre_commit(wt: WorkTree, objects: ObjectReader) -> int:
    root = wt.root
    info = objects.commit("HEAD")
    head, head_tree, head_parents = info if info is not None else (None, "", [])
    diff = plumbing.staged_diff(root, head or EMPTY_TREE) or []
    config = git_config(root) if diff else {}
    problems = scan_blobs(objects, diff, config)
    listed = plumbing.staged_files(root) if (root / ".dvc").is_dir() else None
    if listed is None:
        return _finish(wt, None, problems)
    files, unmerged = listed
    head_files = _before(files, diff)
    if KEYRING_PATH not in files and KEYRING_PATH not in head_files:
        return _finish(wt, None, problems)  # dvc-secure not initialised here
    check = _StagedCheck(wt, objects, head, head_tree, head_parents)
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
                             "must cover exactly what is committed", f"git add {_q(t)}")
                     for t in partial]
        ready = [t for t in to_seal if t not in partial]
        seal_problems = _seal(wt, objects, config, ready) if ready else []
        problems += seal_problems
        failed = {p.path for p in seal_problems}
        sealed = [t + SIDECAR_SUFFIX for t in ready if t not in failed]
        if sealed:
            proc = _git(["add", "--", *sealed], root)
            if proc.returncode != 0:
                problems.append(Problem(", ".join(sealed), f"could not stage the new sidecar(s): "
                                        f"{proc.stderr.strip()}", f"git add {' '.join(sealed)}"))
            print(f"dvc-secure pre-commit: sealed and staged {', '.join(sealed)}", file=sys.stderr)
            relisted = plumbing.staged_files(root)
            if relisted is not None:
                files = relisted[0]
            snap, findings = check.verify(files, head_files, "(staged, sealed)")
        skip = set(to_seal) - set(ready) | failed
        findings = [f for f in findings if not (f.dataset in skip and f.code in (UNSEALED, UNBOUND))]
    problems += [_finding_problem(f) for f in findings]
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


@dataclass(frozen=True)
class PushedRef:
    local_ref: str
    local_sha: str
    remote_ref: str
    remote_sha: str


def parse_push_lines(text: str) -> list[PushedRef]:
    refs = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4:
            refs.append(PushedRef(*parts))
    return refs


def refs_from_pre_commit_env() -> list[PushedRef]:
    """The pre-commit framework gives the range in variables instead of on stdin."""
    to_ref = os.environ.get("PRE_COMMIT_TO_REF")
    if not to_ref:
        return []
    return [PushedRef(os.environ.get("PRE_COMMIT_LOCAL_BRANCH", to_ref), to_ref,
                      os.environ.get("PRE_COMMIT_REMOTE_BRANCH", ""),
                      os.environ.get("PRE_COMMIT_FROM_REF") or ZERO)]


def _resolve(repo: pygit2.Repository, rev: str) -> str | None:
    import pygit2

    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def _remote_tips(repo: pygit2.Repository) -> list[str]:
    tips = []
    for name in repo.references:
        if name.startswith("refs/remotes/"):
            sha = _resolve(repo, name)
            if sha is not None:
                tips.append(sha)
    return sorted(set(tips))


@dataclass(frozen=True)
class NewOutput:
    rev: str
    metafile: str
    sidecar: Sidecar
    output: str
    declared_remote: str | None


def _new_outputs(reader: SnapshotReader, revs: list[str], bases: list[str]) -> list[NewOutput]:
    import pygit2

    repo = reader.repo
    old: set[str] = set()
    for b in bases:
        c = repo.get(b)
        if isinstance(c, pygit2.Commit):
            old |= {blob for p, blob in reader.files_at(c).items() if p.endswith(SIDECAR_SUFFIX)}
    out: list[NewOutput] = []
    seen: set[str] = set()
    for rev in revs:
        commit = repo.get(rev)
        assert isinstance(commit, pygit2.Commit)
        snap = reader.snapshot(commit)
        files = reader.files_at(commit)
        for name, mf in snap.metafiles.items():
            blob = files.get(name + SIDECAR_SUFFIX)
            sc = mf.sidecar
            if sc is None or blob is None or blob in old or blob in seen:
                continue
            seen.add(blob)
            out.extend(NewOutput(rev, name, sc, o.path, mf.remotes.get(o.path))
                       for o in sc.outputs)
    return out


class _Presence:
    """Are the stored objects of a sealed output on its secure remote? (DVC imported here)"""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._remotes: Any = None
        self._bound: set[str] = set()

    def fs(self, name: str) -> Any:
        if self._remotes is None:  # imported here: DVC stays off the pre-commit fast path
            from dvc_secure.dvc_adapter.remote_access import SecureRemotes

            self._remotes = SecureRemotes(self.root / ".dvc")
        fs = self._remotes.get(name)
        if name not in self._bound:
            from dvc_secure.sealing import bind_journal

            self._bound.add(name)
            bind_journal(self.root / ".dvc", name, fs)  # lets the next commit seal without DVC
        return fs

    def publish_index(self, remote: str, digest: str) -> None:
        """Upload the remote index the pre-commit hook built from the push journal."""
        import hashlib
        import io

        from dvc_secure.sealing import pending_index_path
        from dvc_secure.sidecar.remote_index import index_storage_path

        local = pending_index_path(self.root / ".dvc", digest)
        try:
            data = local.read_bytes()
        except OSError:
            return
        if hashlib.sha256(data).hexdigest() != digest:
            return  # damaged: leave it; the index is reported missing below
        fs = self.fs(remote)
        path = fs.storage_path(index_storage_path(digest))
        if not fs.inner.exists(path):
            fs.inner.upload_fobj(io.BytesIO(data), path)
        local.unlink(missing_ok=True)

    def missing(self, item: NewOutput) -> list[str]:
        """Storage paths (or object ids) of this output that the remote does not have."""
        from dvc_secure.sealing import object_rel
        from dvc_secure.sidecar.remote_index import index_storage_path, parse_index

        out = next(o for o in item.sidecar.outputs if o.path == item.output)
        fs = self.fs(out.remote)
        inner = fs.inner  # type: ignore[attr-defined]
        if out.remote_index is not None:
            self.publish_index(out.remote, out.remote_index)
            index_path = fs.storage_path(index_storage_path(out.remote_index))  # type: ignore[attr-defined]
            try:
                with inner.open(index_path, "rb") as f:
                    entries = parse_index(f.read(), out.remote_index)
            except FileNotFoundError:
                return [index_storage_path(out.remote_index)]
            return [e.path for e in entries
                    if not inner.exists(fs.storage_path(e.path))]  # type: ignore[attr-defined]
        oids = [out.oid]
        if out.is_dir:
            listing = self.root / ".dvc" / "cache" / "files" / "md5" / out.oid[:2] / out.oid[2:]
            try:
                import json

                oids += sorted({str(e["md5"]) for e in json.loads(listing.read_bytes())})
            except (OSError, ValueError, KeyError, TypeError):
                pass
        return [oid for oid in oids
                if not fs.exists("/" + object_rel(oid))]  # type: ignore[attr-defined]


def _dvc_push(root: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    print(f"dvc-secure pre-push: dvc push {' '.join(args)}", file=sys.stderr)
    return subprocess.run([sys.executable, "-m", "dvc", "push", *args], cwd=root, text=True,
                          capture_output=True)


def pre_push(start: Path, remote_name: str, stdin_text: str) -> int:
    opened = _open(start)
    if opened is None:
        return EXIT_OK
    repo, root = opened
    refs = parse_push_lines(stdin_text) or refs_from_pre_commit_env()
    if not (root / ".dvc").is_dir():
        return EXIT_OK
    from dvc_secure.history_check import verify_history

    problems: list[Problem] = []
    new: list[NewOutput] = []
    for ref in refs:
        if ref.local_sha == ZERO:
            continue  # a deletion pushes no data
        local = _resolve(repo, ref.local_sha)
        if local is None:
            continue
        base = _resolve(repo, ref.remote_sha) if ref.remote_sha != ZERO else None
        bases = [base] if base is not None else _remote_tips(repo)
        rep = verify_history(root, rev=local, exclude=bases)
        if rep.revisions and not any(KEYRING_PATH in rep.reader.files_at(  # type: ignore[union-attr]
                repo.get(r)) for r in rep.revisions):  # type: ignore[arg-type]
            continue  # dvc-secure not used on this branch
        dest = ref.remote_ref.removeprefix("refs/heads/") or remote_name
        for f in rep.findings:
            problems.append(Problem(f"{f.rev[:10]} {f.dataset}".strip(),
                                    f"{f.message} (pushing to {dest})", f.fix))
        assert rep.reader is not None
        new += _new_outputs(rep.reader, rep.revisions, bases)
    if problems:
        return report("pre-push", problems, "push")
    return report("pre-push", _ensure_on_remote(root, new), "push")


def _ensure_on_remote(root: Path, new: list[NewOutput]) -> list[Problem]:
    if not new:
        return []
    remotes = dvc_remotes(root / ".dvc")
    problems = []
    for item in new:
        effective = item.declared_remote or remotes.default
        for name in sorted({_sealed_remote(item), effective}, key=str):
            if not remotes.is_secure(name):
                secure = remotes.secure_names()
                problems.append(Problem(
                    item.metafile, f"output {item.output} (version {item.sidecar.version}) would be "
                    f"pushed to '{name}' ({remotes.url(name) if name else 'no default remote'}), "
                    "which is not a secure:// remote: refusing to push its data in plaintext",
                    f"dvc remote default {secure[0]}" if secure
                    else "dvc-secure init --remote <storage>"))
    if problems:
        return problems
    presence = _Presence(root)
    try:
        todo = [i for i in new if presence.missing(i)]
        if not todo:
            return []
        metafiles = sorted({i.metafile for i in todo})
        remotes_used = sorted({_sealed_remote(i) for i in todo})
        _upload_manifests(root, todo)
        for remote in remotes_used:
            targets = sorted({i.metafile for i in todo if _sealed_remote(i) == remote})
            _dvc_push(root, ["-r", remote, *targets])
        still = [(i, presence.missing(i)) for i in todo]
        if any(m for _, m in still):
            # older revisions in the range: their objects are not in the workspace version
            for remote in remotes_used:
                targets = sorted({i.metafile for i, m in still
                                  if m and _sealed_remote(i) == remote})
                if targets:
                    _dvc_push(root, ["-r", remote, "--all-commits", *targets])
            still = [(i, presence.missing(i)) for i in todo]
    except DvcSecureError as exc:
        return [Problem("", f"could not check the secure remote: {exc.message}",
                        exc.hint or "dvc push")]
    for item, gone in still:
        if gone:
            problems.append(Problem(
                item.metafile, f"{len(gone)} stored object(s) of output {item.output} (version "
                f"{item.sidecar.version}, {item.rev[:10]}) are not on remote "
                f"'{_sealed_remote(item)}' and could not be pushed (not in the local cache?)",
                f"dvc push -r {_sealed_remote(item)} --all-commits {_q(item.metafile)}"))
    if not problems:
        print(f"dvc-secure pre-push: pushed the data of {', '.join(metafiles)}; every sealed "
              "object of the pushed revisions is on its remote", file=sys.stderr)
    return problems


def _upload_manifests(root: Path, items: list[NewOutput]) -> None:
    """Directory manifests are uploaded by sealing, not by ``dvc push``: restore them."""
    from dvc_secure.sealing import RemoteIndexer

    indexer = RemoteIndexer(root / ".dvc")
    for item in items:
        out = next(o for o in item.sidecar.outputs if o.path == item.output)
        local = root / ".dvc" / "cache" / "secure" / "manifests" / out.sha256
        if out.is_dir and local.is_file():
            indexer.upload_manifest(out.remote, out.sha256, local.read_bytes())


def _sealed_remote(item: NewOutput) -> str:
    return next(o.remote for o in item.sidecar.outputs if o.path == item.output)
