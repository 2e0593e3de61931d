"""pre-push: every sealed output of the pushed commits is on its secure remote (pushes what is missing)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_secure.adapters.dvc.config_file import dvc_remotes
from dvc_secure.adapters.git.snapshots import KEYRING_PATH
from dvc_secure.core.sidecar.model import SIDECAR_SUFFIX, Sidecar
from dvc_secure.errors import DvcSecureError
from dvc_secure.services.hook_checks.problems import (
    EXIT_OK,
    ZERO,
    Problem,
    open_repository_at,
    quote_path,
    report,
)

if TYPE_CHECKING:  # pygit2 is imported by pre-push and pre-commit's full path only
    import pygit2

    from dvc_secure.adapters.git.history import SnapshotReader


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


def resolve(repo: pygit2.Repository, rev: str) -> str | None:
    import pygit2

    try:
        return str(repo.revparse_single(rev).peel(pygit2.Commit).id)
    except (KeyError, ValueError, pygit2.GitError):
        return None


def remote_tips(repo: pygit2.Repository) -> list[str]:
    tips = []
    for name in repo.references:
        if name.startswith("refs/remotes/"):
            sha = resolve(repo, name)
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


def new_outputs(reader: SnapshotReader, revs: list[str], bases: list[str]) -> list[NewOutput]:
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


class Presence:
    """Are the stored objects of a sealed output on its secure remote? (DVC imported here)"""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._remotes: Any = None
        self._bound: set[str] = set()

    def fs(self, name: str) -> Any:
        if self._remotes is None:  # imported here: DVC stays off the pre-commit fast path
            from dvc_secure.adapters.dvc.remote_access import SecureRemotes

            self._remotes = SecureRemotes(self.root / ".dvc")
        fs = self._remotes.get(name)
        if name not in self._bound:
            from dvc_secure.services.sealing import bind_journal

            self._bound.add(name)
            bind_journal(self.root / ".dvc", name, fs)  # lets the next commit seal without DVC
        return fs

    def publish_index(self, remote: str, digest: str) -> None:
        """Upload the remote index the pre-commit hook built from the push journal."""
        import hashlib
        import io

        from dvc_secure.core.sidecar.remote_index import index_storage_path
        from dvc_secure.services.sealing import pending_index_path

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

    @staticmethod
    def _renamed(fs: Any, path: str) -> bool:
        """Is the object stored under this remote's own name for it (sealed before a
        migration of its hidden names, docs/spec/hidden-names.md §9)?"""
        from dvc_secure.services.remote_check import relocated

        moved = relocated(fs, path)
        return moved is not None and bool(fs.inner.exists(fs.storage_path(moved)))

    def missing(self, item: NewOutput) -> list[str]:
        """Storage paths (or object ids) of this output that the remote does not have."""
        from dvc_secure.core.sidecar.remote_index import index_storage_path, parse_index
        from dvc_secure.services.sealing import object_rel

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
                    if not inner.exists(fs.storage_path(e.path))  # type: ignore[attr-defined]
                    and not self._renamed(fs, e.path)]
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


def dvc_push(root: Path, args: list[str]) -> subprocess.CompletedProcess[str]:
    print(f"dvc-secure pre-push: dvc push {' '.join(args)}", file=sys.stderr)
    from dvc_secure.adapters.local.env_secrets import child_env

    # our own DVC child needs the identity taken from this process's environment
    return subprocess.run([sys.executable, "-m", "dvc", "push", *args], cwd=root, text=True,
                          capture_output=True, env=child_env())


def pre_push(start: Path, remote_name: str, stdin_text: str) -> int:
    opened = open_repository_at(start)
    if opened is None:
        return EXIT_OK
    repo, root = opened
    refs = parse_push_lines(stdin_text) or refs_from_pre_commit_env()
    if not (root / ".dvc").is_dir():
        return EXIT_OK
    from dvc_secure.services.history_check import verify_history

    problems: list[Problem] = []
    new: list[NewOutput] = []
    for ref in refs:
        if ref.local_sha == ZERO:
            continue  # a deletion pushes no data
        local = resolve(repo, ref.local_sha)
        if local is None:  # never skip what cannot be read: block (fail closed)
            problems.append(Problem(ref.local_ref, f"the pushed commit {ref.local_sha[:12]} "
                                    "cannot be read from git, so it was not verified",
                                    "repair the repository ('git fsck'), then push again"))
            continue
        base = resolve(repo, ref.remote_sha) if ref.remote_sha != ZERO else None
        bases = [base] if base is not None else remote_tips(repo)
        rep = verify_history(root, rev=local, exclude=bases)
        if rep.revisions and not any(KEYRING_PATH in rep.reader.files_at(  # type: ignore[union-attr]
                repo.get(r)) for r in rep.revisions):  # type: ignore[arg-type]
            continue  # dvc-secure not used on this branch
        if rep.before_adoption:
            print(f"dvc-secure pre-push: {len(rep.before_adoption)} commit(s) from before "
                  "dvc-secure was adopted are pushed unverified (unsealed-before-adoption)",
                  file=sys.stderr)
        dest = ref.remote_ref.removeprefix("refs/heads/") or remote_name
        for f in rep.findings:
            problems.append(Problem(f"{f.rev[:10]} {f.dataset}".strip(),
                                    f"{f.message} (pushing to {dest})", f.fix))
        assert rep.reader is not None
        new += new_outputs(rep.reader, rep.revisions, bases)
    if problems:
        return report("pre-push", problems, "push")
    return report("pre-push", ensure_on_remote(root, new), "push")


def ensure_on_remote(root: Path, new: list[NewOutput]) -> list[Problem]:
    if not new:
        return []
    remotes = dvc_remotes(root / ".dvc")
    problems = []
    for item in new:
        effective = item.declared_remote or remotes.default
        for name in sorted({sealed_remote(item), effective}, key=str):
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
    presence = Presence(root)
    try:
        todo = [i for i in new if presence.missing(i)]
        if not todo:
            return []
        metafiles = sorted({i.metafile for i in todo})
        remotes_used = sorted({sealed_remote(i) for i in todo})
        upload_manifests(root, todo)
        for remote in remotes_used:
            targets = sorted({i.metafile for i in todo if sealed_remote(i) == remote})
            dvc_push(root, ["-r", remote, *targets])
        still = [(i, presence.missing(i)) for i in todo]
        if any(m for _, m in still):
            # older revisions in the range: their objects are not in the workspace version
            for remote in remotes_used:
                targets = sorted({i.metafile for i, m in still
                                  if m and sealed_remote(i) == remote})
                if targets:
                    dvc_push(root, ["-r", remote, "--all-commits", *targets])
            still = [(i, presence.missing(i)) for i in todo]
    except DvcSecureError as exc:
        return [Problem("", f"could not check the secure remote: {exc.message}",
                        exc.hint or "dvc push")]
    for item, gone in still:
        if gone:
            problems.append(Problem(
                item.metafile, f"{len(gone)} stored object(s) of output {item.output} (version "
                f"{item.sidecar.version}, {item.rev[:10]}) are not on remote "
                f"'{sealed_remote(item)}' and could not be pushed (not in the local cache?)",
                f"dvc push -r {sealed_remote(item)} --all-commits {quote_path(item.metafile)}"))
    if not problems:
        print(f"dvc-secure pre-push: pushed the data of {', '.join(metafiles)}; every sealed "
              "object of the pushed revisions is on its remote", file=sys.stderr)
    return problems


def upload_manifests(root: Path, items: list[NewOutput]) -> None:
    """Directory manifests are uploaded by sealing, not by ``dvc push``: restore them."""
    from dvc_secure.services.sealing import RemoteIndexer

    indexer = RemoteIndexer(root / ".dvc")
    for item in items:
        out = next(o for o in item.sidecar.outputs if o.path == item.output)
        local = root / ".dvc" / "cache" / "secure" / "manifests" / out.sha256
        if out.is_dir and local.is_file():
            indexer.upload_manifest(out.remote, out.sha256, local.read_bytes())


def sealed_remote(item: NewOutput) -> str:
    return next(o.remote for o in item.sidecar.outputs if o.path == item.output)
