"""``dvc-secure doctor``: a clone's keyring trust state, what is wrong, the safe repair.

Compares the clone-local trust pin, the workspace keyring, the keyring committed at HEAD,
the highest validly chained version in HEAD's history and on any ref, a pending change
awaiting approval, and an interrupted re-encryption; each finding says the one command
that fixes it. ``repair`` applies only the repairs that cannot lose work or trust
anything new: pinning a fresh clone (the same checks every command runs), and moving a
pin that holds a never-committed version back to the committed version on its own chain.
Everything else (discarding an uncommitted change, committing, resuming a re-encryption
that talks to the remote) is left to the user, with the command printed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.adapters.local import keyring_history as hist
from dvc_secure.adapters.local.reencrypt_state import (
    InterruptedReencryption,
    interrupted_reencryption,
)
from dvc_secure.adapters.local.repo_keyring import (
    KEYRING_GIT_PATH,
    keyring_path,
    load_pending,
    load_trusted_keyrings,
    pinned_keyring,
    read_workspace_keyring,
    repin,
)
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import DvcSecureError

OK, NOTE, PROBLEM = "ok", "note", "problem"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, NOTE (nothing wrong, something to know or do), PROBLEM
    message: str
    fix: str | None = None
    auto: bool = False  # ``doctor --fix`` applies it

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "fix": self.fix, "auto": self.auto}


def _describe(ring: Keyring | None) -> dict[str, Any] | None:
    if ring is None:
        return None
    return {"policy_version": ring.policy_version, "digest": ring.digest,
            "current_epoch": ring.current_epoch, "members": [m.name for m in ring.members]}


@dataclass
class TrustState:
    pin: Keyring | None = None
    workspace: Keyring | None = None
    head: Keyring | None = None
    branch_high: hist.Seen | None = None  # highest validly chained in HEAD's ancestry
    highest: hist.Seen | None = None  # highest validly chained on any ref
    pending: Keyring | None = None
    reencrypt: InterruptedReencryption | None = None
    checks: list[Check] = field(default_factory=list)
    fixed: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if any(c.status == PROBLEM for c in self.checks) else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code == 0,
            "pin": _describe(self.pin),
            "workspace": _describe(self.workspace),
            "head": _describe(self.head),
            "branch_highest": {**(_describe(self.branch_high.keyring) or {}),
                               "commit": self.branch_high.commit} if self.branch_high else None,
            "highest": {**(_describe(self.highest.keyring) or {}),
                        "commit": self.highest.commit} if self.highest else None,
            "pending": _describe(self.pending),
            "interrupted_reencryption": {"epoch": self.reencrypt.epoch,
                                         "command": self.reencrypt.command}
            if self.reencrypt else None,
            "checks": [c.to_dict() for c in self.checks],
            "fixed": self.fixed,
        }


def _top(seen: dict[str, hist.Seen], valid: dict[str, Keyring]) -> hist.Seen | None:
    best = hist.highest(valid[d] for d in seen if d in valid)
    return seen[best.digest] if best is not None else None


def _committed_on_pin_chain(pin: Keyring, chain: list[str],
                            history: dict[str, Keyring]) -> Keyring | None:
    on_chain = [history[d] for d in {*chain, pin.digest} if d in history]
    return hist.highest(on_chain)


def diagnose(root: Path) -> TrustState:
    root = Path(root)
    dvc_dir = root / ".dvc"
    st = TrustState()
    if not keyring_path(dvc_dir).exists():
        read_workspace_keyring(dvc_dir)  # raises: not a dvc-secure repository (exit 2)
    try:
        st.workspace = read_workspace_keyring(dvc_dir)
    except DvcSecureError as exc:
        st.checks.append(Check("workspace", PROBLEM, f"the workspace keyring is unreadable: "
                               f"{exc.message}", f"git checkout HEAD -- {KEYRING_GIT_PATH}"))
    st.pin, chain = pinned_keyring(dvc_dir)
    st.head = hist.head_keyring(root)
    seen_all = hist.history_seen(root)
    history = {d: s.keyring for d, s in seen_all.items()}
    seen_branch = hist.head_history(root)
    some = st.workspace or st.head or st.pin
    keyring_id = some.keyring_id if some is not None else ""
    versions = {**history, **({st.workspace.digest: st.workspace} if st.workspace else {})}
    valid = hist.validly_chained(versions, keyring_id)
    st.branch_high = _top(seen_branch, valid)
    st.highest = _top(seen_all, valid)
    try:
        st.pending = load_pending(dvc_dir)
    except DvcSecureError as exc:
        st.checks.append(Check("pending", PROBLEM, f"unreadable pending change: {exc.message}",
                               "dvc-secure approve --discard"))
    st.reencrypt = interrupted_reencryption(root)
    _check_pin(st, chain, history)
    _check_workspace(st)
    _check_branch(st)
    _check_rest(st)
    _check_names(st)
    if not any(c.status != OK for c in st.checks):
        st.checks.append(Check("trust", OK, "pin, workspace and history agree"))
    return st


def _check_names(st: TrustState) -> None:
    """Pinned secure remotes whose hidden names other remotes share (docs/spec/hidden-names.md §9)."""
    policy = st.workspace.remotes if st.workspace is not None else None
    for pin in policy.secure if policy is not None else ():
        if pin.names is None and pin.hide_names:
            st.checks.append(Check(
                "names", NOTE, f"secure remote '{pin.name}' uses the repository-wide hidden names "
                "(scheme 1): anyone who sees two of its remotes can tell which objects are the "
                "same", f"an admin: dvc-secure remote-policy --update; then dvc-secure "
                f"migrate-names -r {pin.name}"))
        elif pin.names is not None and pin.names.legacy and pin.hide_names:
            st.checks.append(Check(
                "names", NOTE, f"secure remote '{pin.name}' may still hold objects under "
                "scheme-1 hidden names (read, never written)", f"dvc-secure migrate-names -r "
                f"{pin.name}; then an admin: dvc-secure remote-policy --update "
                f"--names-migrated {pin.name}"))


def _check_pin(st: TrustState, chain: list[str], history: dict[str, Keyring]) -> None:
    ws = st.workspace
    if st.pin is None:
        st.checks.append(Check(
            "pin", NOTE, "no trust pin yet (a fresh clone): the next command that uses the "
            "keyring pins the highest validly chained version in history",
            "dvc-secure doctor --fix (pins it now, with the same checks)", auto=ws is not None))
        return
    if ws is not None and st.pin.keyring_id != ws.keyring_id:
        st.checks.append(Check("pin", PROBLEM, "the workspace keyring is another keyring "
                               "(keyring_id) than the one this clone trusts",
                               f"git checkout <last good commit> -- {KEYRING_GIT_PATH}"))
        return
    if st.pin.digest in history:
        st.checks.append(Check("pin", OK, f"pinned policy {st.pin.policy_version} is committed"))
        return
    base = _committed_on_pin_chain(st.pin, chain, history)
    if base is None:
        st.checks.append(Check("pin", NOTE, f"pinned policy version {st.pin.policy_version} is "
                               "not committed yet (trusted on first use)",
                               "git add .dvc/secure && git commit"))
        return
    st.checks.append(Check(
        "pin", PROBLEM,
        f"the trust pin holds policy version {st.pin.policy_version}, which was never "
        f"committed (an uncommitted change that was pinned, then discarded or superseded): "
        f"the clone refuses the committed version {base.policy_version} as older",
        f"dvc-secure doctor --fix (moves the pin back to the committed version "
        f"{base.policy_version} on its own chain)", auto=True))


def _check_workspace(st: TrustState) -> None:
    ws, head = st.workspace, st.head
    if ws is None or head is None or ws.digest == head.digest:
        return
    if ws.previous == head.digest and ws.policy_version == head.policy_version + 1:
        st.checks.append(Check(
            "workspace", NOTE,
            f"uncommitted keyring change: policy version {ws.policy_version} on top of the "
            f"committed version {head.policy_version} (further access changes fold into it)",
            "commit it: git add .dvc/secure && git commit; or discard it: dvc-secure approve "
            "--discard"))
    elif ws.policy_version > head.policy_version:
        st.checks.append(Check(
            "workspace", PROBLEM,
            f"the uncommitted keyring is policy version {ws.policy_version}, but HEAD holds "
            f"version {head.policy_version}: a commit would be refused (one version per commit)",
            "dvc-secure approve --discard, then make the change again (it folds into one "
            "version)"))
    else:
        st.checks.append(Check(
            "workspace", NOTE,
            f"an older keyring (policy version {ws.policy_version}) is checked out over HEAD's "
            f"version {head.policy_version}: used for reading only",
            f"git checkout HEAD -- {KEYRING_GIT_PATH}"))


def _check_branch(st: TrustState) -> None:
    head, high = st.head, st.branch_high
    if head is None or high is None or high.keyring.digest == head.digest:
        pass
    elif high.keyring.policy_version >= head.policy_version:
        what = "rolled back" if high.keyring.policy_version > head.policy_version else "forked"
        st.checks.append(Check(
            "history", PROBLEM,
            f"the keyring at HEAD is policy version {head.policy_version}, but this branch's "
            f"history holds version {high.keyring.policy_version} (commit {high.commit[:12]}): "
            f"the policy was {what} (e.g. 'git merge -s ours' kept an older keyring)",
            f"git checkout {high.commit[:12]} -- {KEYRING_GIT_PATH} && git commit -m "
            "'restore keyring'"))
    top = st.highest
    if head is not None and top is not None and top.keyring.policy_version > head.policy_version \
            and (high is None or top.keyring.digest != high.keyring.digest):
        st.checks.append(Check(
            "refs", NOTE,
            f"another ref holds policy version {top.keyring.policy_version} (commit "
            f"{top.commit[:12]}); HEAD holds {head.policy_version}",
            "git pull (or merge that branch) to use the newest policy"))


def _check_rest(st: TrustState) -> None:
    if st.pending is not None:
        base = st.head or st.pin
        if base is not None and (st.pending.previous != base.digest
                                 or st.pending.policy_version != base.policy_version + 1):
            st.checks.append(Check(
                "pending", PROBLEM,
                f"the pending change (policy version {st.pending.policy_version}) does not "
                f"follow the committed version {base.policy_version}: it is stale",
                "dvc-secure approve --discard, then make the change again"))
        else:
            st.checks.append(Check(
                "pending", NOTE,
                f"policy version {st.pending.policy_version} awaits more admin signatures",
                "another admin runs 'dvc-secure approve' (or 'dvc-secure approve --discard')"))
    if st.reencrypt is not None:
        st.checks.append(Check(
            "reencrypt", PROBLEM,
            f"a re-encryption under key epoch {st.reencrypt.epoch} was interrupted "
            f"('{st.reencrypt.command}'): objects of current revisions may still be under "
            "older epochs",
            "dvc-secure reencrypt (resumes the same epoch), then commit .dvc/secure"))


def repair(root: Path) -> TrustState:
    """Apply the safe repairs (see the module docstring), then diagnose again."""
    root = Path(root)
    dvc_dir = root / ".dvc"
    st = diagnose(root)
    fixed: list[str] = []
    for check in st.checks:
        if not check.auto:
            continue
        if check.name == "pin" and st.pin is None:
            try:
                rings = load_trusted_keyrings(dvc_dir)
            except DvcSecureError as exc:
                fixed.append(f"could not pin: {exc.message}")
                continue
            fixed.append(f"pinned policy version {rings.committed.policy_version}")
        elif check.name == "pin" and st.pin is not None:
            history = hist.history_keyrings(root)
            _, chain = pinned_keyring(dvc_dir)
            base = _committed_on_pin_chain(st.pin, chain, history)
            if base is not None:
                repin(dvc_dir, base, hist.chain_of(base, history))
                fixed.append(f"moved the trust pin from the never-committed policy version "
                             f"{st.pin.policy_version} back to the committed version "
                             f"{base.policy_version}")
    after = diagnose(root)
    after.fixed = fixed
    return after
