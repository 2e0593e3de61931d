"""The keyring versions in a clone's git history (read through pygit2, slow path only).

Feeds the trust loader (``repo_keyring``) and ``dvc-secure doctor``: every version on any
ref, the versions in HEAD's own ancestry (the history whose policy may never go down),
the keyring committed at HEAD, and which versions chain validly back to version 1.

A repository that provably has no commit yet (``git init`` without a commit: no ref at
all, HEAD unborn) has no history to read, so its first use does not import pygit2 (~30 ms
of CPU). Anything the check does not fully understand (worktrees, reftable, a detached
HEAD, packed refs) is left to pygit2.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dvc_secure.adapters.git.unborn import without_commits
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import KeyringError

KEYRING_GIT_PATH = ".dvc/secure/keyring.json"


@dataclass(frozen=True)
class Seen:
    """A keyring version and one commit that holds it."""

    keyring: Keyring
    commit: str


def _open(root: Path) -> Any:
    import pygit2  # slow path only: the fast path must not pay for this import

    try:
        return pygit2.Repository(str(root))
    except (pygit2.GitError, KeyError):
        return None


def _tips(repo: Any, head_only: bool) -> list[Any]:
    import pygit2

    if head_only:
        try:
            return [repo.head.peel(pygit2.Commit).id]
        except (pygit2.GitError, KeyError, ValueError):
            return []
    tips = []
    for name in repo.references:
        try:
            tips.append(repo.references[name].peel(pygit2.Commit).id)
        except (ValueError, pygit2.GitError, KeyError):
            continue
    return tips


def _walk(root: Path, head_only: bool) -> dict[str, Seen]:
    if without_commits(root):
        return {}  # nothing committed: no keyring version in any history
    import pygit2

    repo = _open(root)
    if repo is None:
        return {}
    found: dict[str, Seen] = {}
    seen_blobs: set[str] = set()
    walked: set[str] = set()
    stack = _tips(repo, head_only)
    while stack:
        oid = stack.pop()
        if str(oid) in walked:
            continue
        walked.add(str(oid))
        commit = repo[oid]
        if not isinstance(commit, pygit2.Commit):
            continue
        stack.extend(commit.parent_ids)
        try:
            entry = commit.tree[KEYRING_GIT_PATH]
        except KeyError:
            continue
        if str(entry.id) in seen_blobs:
            continue
        seen_blobs.add(str(entry.id))
        blob = repo[entry.id]
        if not isinstance(blob, pygit2.Blob):
            continue
        try:
            ring = Keyring.from_json(blob.data.decode("utf-8"))
        except (KeyringError, UnicodeDecodeError):
            continue
        found.setdefault(ring.digest, Seen(ring, str(oid)))
    return found


def history_keyrings(root: Path) -> dict[str, Keyring]:
    """Every keyring version in the git history of this clone (all refs), by digest."""
    return {d: s.keyring for d, s in _walk(root, head_only=False).items()}


def history_seen(root: Path) -> dict[str, Seen]:
    """Every keyring version on any ref, with a commit holding it."""
    return _walk(root, head_only=False)


def head_history(root: Path) -> dict[str, Seen]:
    """The keyring versions in HEAD's ancestry (HEAD included), with a commit holding each."""
    return _walk(root, head_only=True)


def head_keyring(root: Path) -> Keyring | None:
    """The keyring committed at HEAD (None: no commit, no keyring, or unreadable)."""
    if without_commits(root):
        return None
    import pygit2

    repo = _open(root)
    if repo is None:
        return None
    try:
        commit = repo.head.peel(pygit2.Commit)
        blob = repo[commit.tree[KEYRING_GIT_PATH].id]
        return Keyring.from_json(blob.data.decode("utf-8"))
    except (pygit2.GitError, KeyError, ValueError, KeyringError, UnicodeDecodeError):
        return None


def step_problems(prev: Keyring, nxt: Keyring, as_of: dt.date | None = None) -> list[str]:
    """Why ``nxt`` may not follow ``prev`` (signatures of ``nxt`` itself included);
    ``as_of``: the date the change is judged on (admins expired by then do not count)."""
    problems = prev.transition_problems(nxt, as_of)
    if not problems:
        try:
            nxt.verify_signatures()
        except KeyringError as exc:
            problems.append(exc.message)
    return problems


def validly_chained(versions: Mapping[str, Keyring], keyring_id: str,
                    root_policy: str | None = None) -> dict[str, Keyring]:
    """The versions of keyring ``keyring_id`` that chain back to a self-signed version 1
    (``root_policy``: of that digest) through valid transitions, by digest."""
    memo: dict[str, bool] = {}

    def ok(ring: Keyring) -> bool:
        path: list[Keyring] = []
        cur: Keyring | None = ring
        verdict = False
        while cur is not None:
            if cur.digest in memo:
                verdict = memo[cur.digest]
                break
            path.append(cur)
            if cur.previous is None:
                try:
                    cur.verify_signatures()
                    verdict = root_policy is None or cur.digest == root_policy
                except KeyringError:
                    verdict = False
                break
            prev = versions.get(cur.previous)
            if prev is None or step_problems(prev, cur):
                verdict = False
                break
            cur = prev
        # a version is valid iff the walk below it is: unwind the path with one verdict
        for k in path:
            memo[k.digest] = verdict
        return verdict

    return {d: k for d, k in versions.items() if k.keyring_id == keyring_id and ok(k)}


def chain_of(ring: Keyring, versions: Mapping[str, Keyring]) -> list[str]:
    """Digests from ``ring`` down its ``previous`` links as far as ``versions`` go."""
    out = [ring.digest]
    cur = ring
    while cur.previous is not None and cur.previous in versions:
        cur = versions[cur.previous]
        out.append(cur.digest)
    return out


def highest(rings: Iterable[Keyring]) -> Keyring | None:
    """The highest policy version (ties: the smallest digest, for determinism)."""
    best: Keyring | None = None
    for k in rings:
        if best is None or (k.policy_version, best.digest) > (best.policy_version, k.digest):
            best = k
    return best
