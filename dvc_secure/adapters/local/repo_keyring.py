"""The git-tracked keyring file of a DVC repository: locate, load, verify, save.

Loading checks the workspace keyring against a clone-local *trust pin*
(``<git-dir>/dvc-secure/trusted-keyring.json``, like a TUF client's trusted root): a
keyring is used only if it is the pinned version, a validly signed successor of it (each
step signed by the previous version's admins), or an older version on the pinned chain.
The fast path (unchanged keyring) is a file read, a parse and a digest compare: no git.

The pin moves only to a version that is *committed* (in the git history of some ref): an
uncommitted change made by ``grant``/``revoke``/... is used (it is a validly signed
successor) but not pinned, so discarding it (``git checkout .dvc/secure/keyring.json``)
is always safe. A fresh clone (no pin) pins the highest validly chained version in its
history, and refuses a workspace keyring below the highest version in HEAD's own
ancestry (a rollback, e.g. ``git merge -s ours`` keeping an older keyring).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from dvc_secure.adapters.local import keyring_history as hist
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import KeyringError, PendingPolicyError, UntrustedPolicyError

KEYRING_RELPATH = Path("secure") / "keyring.json"  # relative to the .dvc directory
PENDING_RELPATH = Path("secure") / "keyring.pending.json"
KEYRING_GIT_PATH = hist.KEYRING_GIT_PATH
PIN_FORMAT = "dvc-secure-trust-pin"
PIN_VERSION = 1
ENV_ROOT_POLICY = "DVC_SECURE_ROOT_POLICY"
_RESTORE_HINT = ("restore the last keyring you trust: 'git log --oneline -- "
                 ".dvc/secure/keyring.json', then 'git checkout <good commit> -- "
                 ".dvc/secure/keyring.json'; policy changes must be signed by the previous admins "
                 "('dvc-secure grant/revoke/approve')")
_EXPIRED_HINT = ("the change reached this clone after the grant of an admin who signed it "
                 "had expired (docs/access.md, 'what expiry guarantees exactly'): it counts only "
                 "if admins valid today sign it. If the team confirms it was signed and "
                 "published in time, trust the history as a fresh clone does: remove "
                 ".git/dvc-secure/trusted-keyring.json ('dvc-secure doctor' shows the state)")


def keyring_path(dvc_dir: str | os.PathLike[str]) -> Path:
    return Path(dvc_dir) / KEYRING_RELPATH


def pending_path(dvc_dir: str | os.PathLike[str]) -> Path:
    return Path(dvc_dir) / PENDING_RELPATH


@dataclass(frozen=True)
class TrustedKeyrings:
    """The workspace keyring and the newest version this clone trusts (the same object
    unless an old revision is checked out). Encryption and sealing use ``newest``."""

    workspace: Keyring
    newest: Keyring
    # the version this clone's pin holds (committed); None: the same as ``newest``. Differs
    # while ``newest`` is an uncommitted change: the next change amends it on top of this
    pinned: Keyring | None = None

    @property
    def committed(self) -> Keyring:
        return self.pinned if self.pinned is not None else self.newest


def load_keyring(dvc_dir: str | os.PathLike[str],
                 env: Mapping[str, str] | None = None) -> Keyring:
    """The workspace keyring, once it is trusted (see module docstring)."""
    return load_trusted_keyrings(dvc_dir, env).workspace


def read_workspace_keyring(dvc_dir: str | os.PathLike[str]) -> Keyring:
    """Parse and self-check the workspace keyring (no trust-pin check)."""
    path = keyring_path(dvc_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyringError(
            f"this repository has no dvc-secure keyring ({path})",
            hint="run 'dvc-secure init' once in the repository (then commit .dvc/secure/)",
        ) from None
    return Keyring.from_json(text)


def load_trusted_keyrings(dvc_dir: str | os.PathLike[str],
                          env: Mapping[str, str] | None = None) -> TrustedKeyrings:
    ring = read_workspace_keyring(dvc_dir)
    root = Path(dvc_dir).resolve().parent
    git_dir = find_git_dir(root)
    if git_dir is None:
        ring.verify_signatures()  # not a git repository: nothing to pin to
        return TrustedKeyrings(ring, ring)
    pin = _read_pin(git_dir)
    if pin is not None and pin.get("digest") == ring.digest:
        ring.verify_signatures()
        return TrustedKeyrings(ring, ring)  # fast path: what this clone already trusts
    env = os.environ if env is None else env
    try:
        ring.verify_signatures()
    except KeyringError as exc:
        raise UntrustedPolicyError(
            f"keyring policy version {ring.policy_version} is not trusted: {exc.message}",
            hint=_RESTORE_HINT) from None
    if pin is None:
        return _first_use(git_dir, ring, root, env.get(ENV_ROOT_POLICY))
    pinned = Keyring.from_json(str(pin["keyring"]))
    trusted = set(_pin_chain(pin)) | {pinned.digest}
    if ring.keyring_id != pinned.keyring_id:
        raise UntrustedPolicyError(
            "the workspace keyring is another keyring than the one this clone trusts "
            f"(keyring_id {ring.keyring_id[:8]}… instead of {pinned.keyring_id[:8]}…)",
            hint=_RESTORE_HINT)
    if ring.policy_version <= pinned.policy_version:
        if ring.digest in trusted:
            head = hist.head_keyring(root)
            if head is not None and head.digest == ring.digest:
                _refuse_rollback_in_branch(ring, root)
            return TrustedKeyrings(ring, pinned)  # an old revision: read with it, write newest
        raise UntrustedPolicyError(
            f"keyring policy version {ring.policy_version} is not the version "
            f"{ring.policy_version} this clone trusted (digest {ring.digest[:16]}…): "
            "it was forged or the history was rewritten",
            hint=_RESTORE_HINT)
    steps = _chain_between(pinned, ring, root)
    committed = hist.head_keyring(root)
    if committed is None or committed.digest != ring.digest:
        history = hist.history_keyrings(root)
        if ring.digest not in history:
            # an uncommitted change (validly signed): used, never pinned, so that
            # discarding it is always safe; the pin moves once it is committed
            return TrustedKeyrings(ring, ring, pinned)
    _write_pin(git_dir, ring, [*trusted, *(s.digest for s in steps)])
    return TrustedKeyrings(ring, ring)


def _first_use(git_dir: Path, ring: Keyring, root: Path,
               root_policy: str | None) -> TrustedKeyrings:
    """No pin yet (a fresh clone, every CI job): take the highest validly chained version
    in the history (TUF: the newest trusted root), and refuse a workspace keyring below
    the highest version in HEAD's own ancestry (a rollback in this branch)."""
    history = hist.history_keyrings(root)
    chain = _chain_from_root(ring, root_policy, history)
    valid = hist.validly_chained({**history, ring.digest: ring}, ring.keyring_id, root_policy)
    _refuse_rollback_in_branch(ring, root, valid)
    base = valid.get(ring.previous or "")
    if ring.digest not in history and base is not None and base.digest in history:
        # an uncommitted change on top of a committed version: pin that version only
        _write_pin(git_dir, base, hist.chain_of(base, valid))
        return TrustedKeyrings(ring, ring, base)
    top = hist.highest(valid.values()) or ring
    if top.digest != ring.digest and ring.digest in hist.chain_of(top, valid):
        # an old revision checked out: read with it, encrypt and trust signers with ``top``
        _write_pin(git_dir, top, hist.chain_of(top, valid))
        return TrustedKeyrings(ring, top)
    _write_pin(git_dir, ring, chain)
    return TrustedKeyrings(ring, ring)


def _refuse_rollback_in_branch(ring: Keyring, root: Path,
                               valid: Mapping[str, Keyring] | None = None) -> None:
    """Refuse ``ring`` if HEAD's own history already holds a higher (or the same version
    with other content) validly chained keyring: a version never goes down along history."""
    seen = hist.head_history(root)
    if valid is None:
        versions = {d: s.keyring for d, s in seen.items()}
        valid = hist.validly_chained({**versions, ring.digest: ring}, ring.keyring_id)
    above = [s for d, s in seen.items() if d in valid and d != ring.digest
             and s.keyring.policy_version >= ring.policy_version]
    if not above:
        return
    top = max(above, key=lambda s: (s.keyring.policy_version, s.commit))
    what = "a keyring rollback" if top.keyring.policy_version > ring.policy_version \
        else "a forked keyring (two versions with the same number)"
    raise UntrustedPolicyError(
        f"the workspace keyring is policy version {ring.policy_version}, but this branch's "
        f"history already holds policy version {top.keyring.policy_version} (commit "
        f"{top.commit[:12]}): {what}, e.g. a merge that kept an older parent's keyring "
        "('git merge -s ours'); nothing is encrypted or trusted with it",
        hint=f"restore version {top.keyring.policy_version} and commit it: 'git checkout "
        f"{top.commit[:12]} -- {KEYRING_GIT_PATH}' then 'git commit -m \"restore keyring\"'; "
        "'dvc-secure doctor' shows the clone's trust state")


def trusted_history_keyrings(dvc_dir: str | os.PathLike[str]) -> list[Keyring]:
    """Earlier keyring versions from git history that lie on this clone's trusted chain
    (never a version merely signed by admins it lists itself: that is what a forger does)."""
    root = Path(dvc_dir).resolve().parent
    git_dir = find_git_dir(root)
    pin = _read_pin(git_dir) if git_dir is not None else None
    if pin is None:
        return []
    trusted = set(_pin_chain(pin)) | {str(pin.get("digest"))}
    return [k for d, k in _history_keyrings(root).items() if d in trusted]


def _step_problems(prev: Keyring, nxt: Keyring, as_of: dt.date | None = None) -> list[str]:
    return hist.step_problems(prev, nxt, as_of)


def _history_keyrings(root: Path) -> dict[str, Keyring]:
    """Every keyring version in the git history of this clone (all refs), by digest."""
    return hist.history_keyrings(root)


def _walk_back(ring: Keyring, stop: str | None, versions: Mapping[str, Keyring],
               as_of: dt.date | None = None) -> list[Keyring]:
    """Follow ``previous`` links from ``ring`` down to digest ``stop`` (None: version 1);
    returns the versions oldest first, each checked against its predecessor (``as_of``:
    the date the changes arrive here; admins whose grant had expired by then do not count)."""
    chain = [ring]
    cur = ring
    while cur.previous is not None and cur.digest != stop:
        prev = versions.get(cur.previous)
        if prev is None:
            raise UntrustedPolicyError(
                f"keyring policy version {cur.policy_version} names a predecessor "
                f"({cur.previous[:16]}…) that is in neither this clone's trust pin nor its "
                "git history",
                hint="git fetch (the intermediate policy versions may be missing); "
                + _RESTORE_HINT)
        problems = _step_problems(prev, cur, as_of)
        if problems:
            raise UntrustedPolicyError(
                f"keyring policy version {cur.policy_version} is not a valid successor of "
                f"version {prev.policy_version}: {'; '.join(problems)}",
                hint=_EXPIRED_HINT if as_of is not None and not _step_problems(prev, cur)
                else _RESTORE_HINT)
        chain.append(prev)
        cur = prev
    if stop is not None and cur.digest != stop:
        raise UntrustedPolicyError(
            f"keyring policy version {ring.policy_version} does not descend from version "
            "this clone trusts", hint=_RESTORE_HINT)
    return list(reversed(chain))


def _chain_between(pinned: Keyring, ring: Keyring, root: Path) -> list[Keyring]:
    """The versions from the pin up to ``ring``: they arrive in this clone now, so each is
    judged on today's date (this machine's clock, which the signer does not control)."""
    if ring.previous == pinned.digest:
        versions: dict[str, Keyring] = {pinned.digest: pinned}  # one step: no git needed
    else:
        versions = {**_history_keyrings(root), pinned.digest: pinned}
    return _walk_back(ring, pinned.digest, versions,
                      as_of=dt.datetime.now(dt.timezone.utc).date())


def _chain_from_root(ring: Keyring, root_policy: str | None,
                     history: Mapping[str, Keyring]) -> list[str]:
    """First use in this clone: walk from policy version 1 in git history to ``ring``."""
    versions = history if ring.policy_version > 1 else {}
    # a keyring that was never committed: trust on first use of the workspace file
    never_committed = ring.policy_version > 1 and not versions
    chain = [ring] if never_committed else _walk_back(ring, None, versions)
    first = chain[0]
    if root_policy and first.policy_version == 1 and first.digest != root_policy:
        raise UntrustedPolicyError(
            f"the first keyring policy ({first.digest[:16]}…) is not the pinned root "
            f"{ENV_ROOT_POLICY}={root_policy[:16]}…",
            hint="fetch the genuine history; change the pinned root only on purpose")
    return [k.digest for k in chain]


def find_git_dir(start: Path) -> Path | None:
    """The git directory of the work tree containing ``start`` (``.git`` dir or file)."""
    for folder in (start, *start.parents):
        dotgit = folder / ".git"
        if dotgit.is_dir():
            return dotgit
        if dotgit.is_file():
            text = dotgit.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("gitdir:"):
                target = Path(text[len("gitdir:"):].strip())
                return target if target.is_absolute() else (folder / target).resolve()
    return None


def pin_path(git_dir: Path) -> Path:
    return git_dir / "dvc-secure" / "trusted-keyring.json"


def _read_pin(git_dir: Path) -> dict[str, object] | None:
    try:
        doc = json.loads(pin_path(git_dir).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("format") != PIN_FORMAT \
            or doc.get("version") != PIN_VERSION or not isinstance(doc.get("keyring"), str):
        return None
    return doc


def _write_pin(git_dir: Path, ring: Keyring, chain: Iterable[str]) -> None:
    doc = {"format": PIN_FORMAT, "version": PIN_VERSION, "keyring_id": ring.keyring_id,
           "policy_version": ring.policy_version, "digest": ring.digest,
           "chain": sorted(set(chain) | {ring.digest}), "keyring": ring.to_json()}
    # a read-only git dir: this load was checked; the next one checks again
    with contextlib.suppress(OSError):
        _atomic_write(pin_path(git_dir), json.dumps(doc, indent=1, sort_keys=True) + "\n")


def pinned_keyring(dvc_dir: str | os.PathLike[str]) -> tuple[Keyring | None, list[str]]:
    """The keyring this clone's pin holds and the digests on its chain (None: no pin)."""
    git_dir = find_git_dir(Path(dvc_dir).resolve().parent)
    pin = _read_pin(git_dir) if git_dir is not None else None
    if pin is None:
        return None, []
    try:
        return Keyring.from_json(str(pin["keyring"])), _pin_chain(pin)
    except KeyringError:
        return None, []


def repin(dvc_dir: str | os.PathLike[str], ring: Keyring, chain: Iterable[str]) -> None:
    """Replace the pin by ``ring`` with exactly ``chain`` (``dvc-secure doctor --fix``:
    back to a committed version on the pin's own chain; never a version not trusted)."""
    git_dir = find_git_dir(Path(dvc_dir).resolve().parent)
    if git_dir is not None:
        _write_pin(git_dir, ring, chain)


def _pin_chain(pin: Mapping[str, object]) -> list[str]:
    chain = pin.get("chain")
    return [str(d) for d in chain] if isinstance(chain, list) else []


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_keyring(dvc_dir: str | os.PathLike[str], ring: Keyring) -> Path:
    path = keyring_path(dvc_dir)
    _atomic_write(path, ring.to_json())
    return path


def load_pending(dvc_dir: str | os.PathLike[str]) -> Keyring | None:
    path = pending_path(dvc_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return Keyring.from_json(text)


def save_pending(dvc_dir: str | os.PathLike[str], ring: Keyring) -> Path:
    path = pending_path(dvc_dir)
    _atomic_write(path, ring.to_json())
    return path


def discard_pending(dvc_dir: str | os.PathLike[str]) -> None:
    pending_path(dvc_dir).unlink(missing_ok=True)


def refuse_if_pending(dvc_dir: str | os.PathLike[str]) -> None:
    """A new change must not fork a change that still awaits admin signatures."""
    pending = load_pending(dvc_dir)
    if pending is not None:
        raise PendingPolicyError(
            f"keyring policy version {pending.policy_version} awaits more admin signatures "
            f"({pending_path(dvc_dir)})",
            hint="another admin runs 'dvc-secure approve'; or discard it with "
            "'dvc-secure approve --discard'")
