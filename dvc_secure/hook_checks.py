"""The checks behind dvc-secure's git hooks (``dvc-secure hook NAME``).

pre-commit (and pre-merge-commit): seal staged, changed DVC metafiles whose outputs are
not sealed yet and stage the sidecars; then verify the staged state (the index, with
HEAD and MERGE_HEAD as parents) on top of HEAD's verified history; block key material,
identities, large plaintext files, and confidential or restricted datasets whose remote
is not a ``secure://`` remote. pre-push: verify every pushed revision (this catches
reverts and merges that roll data back) and make sure the objects of every newly sealed
output are on its secure remote (pushing them with ``dvc push`` when they are not).

Every problem says what is wrong and the one command that fixes it. DVC is only imported
when sealing or when the remote has to be read.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pygit2

from dvc_secure.errors import DvcSecureError
from dvc_secure.git_adapter.history import KEYRING_PATH, SnapshotReader
from dvc_secure.sidecar.metafile import is_metafile
from dvc_secure.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.verification.engine import (
    UNBOUND,
    UNSEALED,
    Finding,
    HistoryVerifier,
    Snapshot,
)

EXIT_OK, EXIT_BLOCKED, EXIT_USAGE = 0, 1, 2
ZERO = "0" * 40
DEFAULT_MAX_FILE_SIZE = 1 << 20
SECURE_SCHEME = "secure"
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
    found = pygit2.discover_repository(str(start))
    if found is None:
        return None
    repo = pygit2.Repository(found)
    if repo.is_bare or not repo.workdir:
        return None
    return repo, Path(repo.workdir)


def _head(repo: pygit2.Repository) -> pygit2.Commit | None:
    if repo.head_is_unborn:
        return None
    return repo.head.peel(pygit2.Commit)


# --- DVC config (read without importing DVC: hooks must start fast) -----------------------


def _parse_dvc_config(path: Path, into: dict[str, dict[str, str]]) -> None:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    section = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip().strip("'")
            section = re.sub(r'\s+', " ", section).replace('"', "")
            into.setdefault(section, {})
        elif section is not None and "=" in line:
            key, _, value = line.partition("=")
            into[section][key.strip().lower()] = value.strip().strip("'\"")


@dataclass(frozen=True)
class DvcRemotes:
    default: str | None
    urls: dict[str, str]

    def url(self, name: str) -> str | None:
        url = self.urls.get(name)
        parsed = urlparse(url or "")
        if url and parsed.scheme == "remote":  # remote://other/sub cross-reference
            base = self.urls.get(parsed.netloc)
            return f"{base.rstrip('/')}{parsed.path}" if base else None
        return url

    def is_secure(self, name: str | None) -> bool:
        url = self.url(name) if name else None
        parsed = urlparse(url or "")
        return parsed.scheme == SECURE_SCHEME and bool(parsed.netloc)

    def secure_names(self) -> list[str]:
        return sorted(n for n in self.urls if self.is_secure(n))


def dvc_remotes(dvc_dir: Path) -> DvcRemotes:
    """``core.remote`` and remote URLs from DVC's config levels (system, global, repo, local)."""
    env = os.environ
    system = Path(env.get("DVC_SYSTEM_CONFIG_DIR", "/etc/xdg/dvc"))
    glob = Path(env.get("DVC_GLOBAL_CONFIG_DIR") or Path(
        env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "dvc")
    conf: dict[str, dict[str, str]] = {}
    for path in (system / "config", glob / "config", dvc_dir / "config", dvc_dir / "config.local"):
        _parse_dvc_config(path, conf)
    urls = {sec[len("remote "):]: opts["url"] for sec, opts in conf.items()
            if sec.startswith("remote ") and "url" in opts}
    return DvcRemotes(conf.get("core", {}).get("remote") or None, urls)


# --- the index (staged state) --------------------------------------------------------------


def _index(repo: pygit2.Repository, root: Path) -> pygit2.Index:
    """The index git is committing: $GIT_INDEX_FILE during `git commit -a` / partial commits."""
    path = os.environ.get("GIT_INDEX_FILE")
    if path:
        return pygit2.Index(str(Path(root, path)))
    index: pygit2.Index = repo.index
    index.read()
    return index


def _relevant(path: str) -> bool:
    parts = path.split("/")
    if ".git" in parts:
        return False
    if ".dvc" in parts[:-1]:
        return path == KEYRING_PATH
    return is_metafile(path) or path.endswith(SIDECAR_SUFFIX)


def _index_files(index: pygit2.Index) -> dict[str, str]:
    return {e.path: str(e.id) for e in index if _relevant(e.path)}


@dataclass(frozen=True)
class StagedChange:
    status: str  # A, M, D, T
    path: str


def staged_changes(root: Path, has_head: bool) -> list[StagedChange]:
    base = "HEAD" if has_head else "4b825dc642cb6eb9a060e54bf8d69288fbee4904"  # empty tree
    proc = _git(["diff", "--cached", "--name-status", "-z", "--no-renames", base], root)
    if proc.returncode != 0:
        return []
    fields = proc.stdout.split("\0")
    return [StagedChange(fields[i][:1], fields[i + 1])
            for i in range(0, len(fields) - 1, 2) if fields[i]]


# --- content scans --------------------------------------------------------------------------


def _max_file_size(repo: pygit2.Repository) -> int:
    try:
        return int(repo.config.get_int("dvc-secure.maxFileSize"))
    except (KeyError, ValueError, pygit2.GitError):
        return DEFAULT_MAX_FILE_SIZE


def _allowed(repo: pygit2.Repository, path: str) -> bool:
    """Paths exempted from the content scans: ``git config --add dvc-secure.allow GLOB``."""
    import fnmatch

    try:
        patterns = [str(p) for p in repo.config.get_multivar("dvc-secure.allow") if p]
    except (KeyError, pygit2.GitError):
        return False
    return any(fnmatch.fnmatch(path, p) for p in patterns)


def scan_blobs(repo: pygit2.Repository, index: pygit2.Index,
               changes: Iterable[StagedChange]) -> list[Problem]:
    """Key material, identities and large plaintext files among the staged additions."""
    problems: list[Problem] = []
    limit = _max_file_size(repo)
    for ch in changes:
        if ch.status == "D":
            continue
        try:
            entry = index[ch.path]
        except KeyError:
            continue
        blob = repo.get(entry.id)
        if not isinstance(blob, pygit2.Blob):
            continue  # a submodule
        if _allowed(repo, ch.path):
            continue
        size = blob.size
        if size <= _SCAN_LIMIT and _KEY_RE.search(blob.data):
            problems.append(_key_problem(ch.path, bytes(blob.data)))
            continue
        special = _relevant(ch.path) or ch.path.endswith((".gitignore", ".dvcignore"))
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


def _verify_staged(repo: pygit2.Repository, root: Path, head: pygit2.Commit | None,
                   files: dict[str, str], label: str,
                   seeded: tuple[HistoryVerifier, SnapshotReader] | None
                   ) -> tuple[Snapshot, list[Finding], tuple[HistoryVerifier, SnapshotReader]]:
    if seeded is None:
        if head is not None:
            from dvc_secure.history_check import verify_history

            rep = verify_history(root, rev=str(head.id))
            assert rep.verifier is not None and rep.reader is not None
            seeded = (rep.verifier, rep.reader)
        else:
            seeded = (HistoryVerifier(), SnapshotReader(repo))
    verifier, reader = seeded
    parents = [str(head.id)] if head is not None else []
    merge_head = Path(repo.path) / "MERGE_HEAD"
    if merge_head.is_file():
        parents += [line.strip() for line in merge_head.read_text().splitlines() if line.strip()]
    for p in parents:
        if p not in verifier.trusts and p in repo:
            # a parent seeded from the cache: give the policy check its trust
            c = repo.get(p)
            if isinstance(c, pygit2.Commit):
                verifier.trusts[p] = reader.snapshot(c).trust
    snap = reader.snapshot_from_files(label, tuple(parents), files)
    return snap, verifier.verify(snap), seeded


def _worktree_differs(root: Path, path: str, blob_id: str) -> bool:
    try:
        data = (root / path).read_bytes()
    except OSError:
        return True
    return str(pygit2.hash(data)) != blob_id


def _seal(root: Path, targets: list[str]) -> list[Problem]:
    from dvc_secure.sealing import NotPushedError, seal_metafiles

    problems = []
    for target in targets:  # one by one: one unpushed dataset must not hide the others
        try:
            seal_metafiles(root, [target])
        except NotPushedError:
            problems.append(Problem(target, "its data is not on the secure remote yet, so it "
                                    "cannot be sealed; push it, then commit again",
                                    f"dvc push {_q(target)}"))
        except DvcSecureError as exc:
            problems.append(Problem(target, f"could not seal: {exc.message}",
                                    exc.hint or f"dvc-secure seal {_q(target)}"))
    return problems


def _remote_problems(snap: Snapshot, remotes: DvcRemotes) -> list[Problem]:
    problems = []
    secure = remotes.secure_names()
    good = secure[0] if secure else None
    for name, mf in sorted(snap.metafiles.items()):
        sc = mf.sidecar
        if sc is None or sc.access.classification not in PROTECTED:
            continue
        for out in sorted(mf.outputs):
            declared = mf.remotes.get(out)
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
                                    f"{sc.access.classification} but would go to {where}, which "
                                    "does not encrypt", fix))
    return problems


def pre_commit(start: Path) -> int:
    opened = _open(start)
    if opened is None:
        return EXIT_OK
    repo, root = opened
    head = _head(repo)
    index = _index(repo, root)
    changes = staged_changes(root, head is not None)
    problems = scan_blobs(repo, index, changes)
    if not (root / ".dvc").is_dir():
        return _finish(repo, index, problems)
    files = _index_files(index)
    head_files = SnapshotReader(repo).files_at(head) if head is not None else {}
    if KEYRING_PATH not in files and KEYRING_PATH not in head_files:
        return _finish(repo, index, problems)  # dvc-secure not initialised here
    snap, findings, seeded = _verify_staged(repo, root, head, files, "(staged)", None)

    changed = {c.path for c in changes if c.status != "D"}
    to_seal = sorted({f.dataset for f in findings
                      if f.code in (UNSEALED, UNBOUND) and f.dataset in changed})
    if to_seal:
        partial = [t for t in to_seal if _worktree_differs(root, t, files[t])]
        problems += [Problem(t, "the working-tree copy differs from the staged one: the seal "
                             "must cover exactly what is committed", f"git add {_q(t)}")
                     for t in partial]
        ready = [t for t in to_seal if t not in partial]
        seal_problems = _seal(root, ready) if ready else []
        problems += seal_problems
        failed = {p.path for p in seal_problems}
        sealed = [t + SIDECAR_SUFFIX for t in ready if t not in failed]
        if sealed:
            proc = _git(["add", "--", *sealed], root)
            if proc.returncode != 0:
                problems.append(Problem(", ".join(sealed), f"could not stage the new sidecar(s): "
                                        f"{proc.stderr.strip()}", f"git add {' '.join(sealed)}"))
            print(f"dvc-secure pre-commit: sealed and staged {', '.join(sealed)}", file=sys.stderr)
            index = _index(repo, root)
            files = _index_files(index)
            snap, findings, seeded = _verify_staged(repo, root, head, files, "(staged, sealed)",
                                                    seeded)
        skip = set(to_seal) - set(ready) | failed
        findings = [f for f in findings if not (f.dataset in skip and f.code in (UNSEALED, UNBOUND))]
    problems += [_finding_problem(f) for f in findings]
    problems += _remote_problems(snap, dvc_remotes(root / ".dvc"))
    return _finish(repo, index, problems)


def _finish(repo: pygit2.Repository, index: pygit2.Index, problems: list[Problem]) -> int:
    if not problems:
        _remember_verified(repo, index)
    return report("pre-commit", problems, "commit")


def _remember_verified(repo: pygit2.Repository, index: pygit2.Index) -> None:
    """Record the verified staged tree, so prepare-commit-msg need not check it again."""
    try:
        tree = index.write_tree(repo)
        marker = Path(repo.path) / "dvc-secure" / "verified-tree"
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{tree}\n", encoding="utf-8")
    except (OSError, pygit2.GitError):
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

    def fs(self, name: str) -> Any:
        if self._remotes is None:  # imported here: DVC stays off the pre-commit fast path
            from dvc_secure.dvc_adapter.remote_access import SecureRemotes

            self._remotes = SecureRemotes(self.root / ".dvc")
        return self._remotes.get(name)

    def missing(self, item: NewOutput) -> list[str]:
        """Storage paths (or object ids) of this output that the remote does not have."""
        from dvc_secure.sealing import object_rel
        from dvc_secure.sidecar.remote_index import index_storage_path, parse_index

        out = next(o for o in item.sidecar.outputs if o.path == item.output)
        fs = self.fs(out.remote)
        inner = fs.inner  # type: ignore[attr-defined]
        if out.remote_index is not None:
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
