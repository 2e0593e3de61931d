"""Team access: grant, revoke, rotate, approve, threshold, members.

Orchestration only (load the trusted keyring, check the caller is an admin, apply a pure
operation from ``keys/keyring.py``, sign, save or park as pending). The CLI shell is
``cli/access.py``; semantics are described in docs/access.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.adapters.custody.registry import wrapper_for
from dvc_secure.adapters.local.identity_store import load_identity
from dvc_secure.adapters.local.reencrypt_state import (
    interrupted_reencryption,
    start_reencryption,
)
from dvc_secure.adapters.local.repo_keyring import (
    discard_pending,
    load_pending,
    load_trusted_keyrings,
    pending_path,
    refuse_if_pending,
    save_keyring,
    save_pending,
)
from dvc_secure.core.keys import custody
from dvc_secure.core.keys import policy_changes as changes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring, KeySet
from dvc_secure.core.keys.remote_policy import (
    RemotePolicy,
    SecureRemotePin,
    assign_names,
    mark_names_migrated,
)
from dvc_secure.errors import (
    AccessDeniedError,
    DvcSecureError,
    KeyringError,
    PendingPolicyError,
    ReencryptionError,
)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


@dataclass
class ChangeResult:
    """What a policy change did: applied (``pending`` False) or parked for approval."""

    policy_version: int
    summary: list[str]
    pending: bool = False
    signatures: int = 0
    needed: int = 0
    path: Path | None = None
    reencrypted: Any = None
    dropped: list[str] = field(default_factory=list)
    resumed: bool = False  # an interrupted re-encryption was resumed; the keyring unchanged
    epoch: int | None = None  # the current key epoch after the change


@dataclass
class _Admin:
    dvc_dir: Path
    ring: Keyring  # the workspace keyring: what the change edits
    identity: Identity
    keys: KeySet
    # the committed version the change follows: ``ring`` itself, or its predecessor while
    # ``ring`` is an uncommitted change (which the next change then amends)
    base: Keyring

    @property
    def amends(self) -> bool:
        return self.base.digest != self.ring.digest

    def rebase(self, nxt: Keyring) -> Keyring:
        """Make ``nxt`` (edited from ``ring``) the one successor of ``base``: several access
        changes before a commit fold into one policy version (committed + 1)."""
        if self.amends:
            nxt.policy_version = self.base.policy_version + 1
            nxt.previous = self.base.digest
            nxt.signatures = []
        return nxt


def _load_admin(dvc_dir: Path, env: Mapping[str, str] | None) -> _Admin:
    rings = load_trusted_keyrings(dvc_dir, env)
    if rings.workspace is not rings.newest:
        raise KeyringError(
            f"the checked-out keyring is policy version {rings.workspace.policy_version}, older "
            f"than version {rings.newest.policy_version} this clone trusts",
            hint="check out the branch tip ('git checkout main') before changing members")
    ring = rings.workspace
    identity = load_identity(env)
    member = ring.member_for(identity)
    if member is None or member.role != "admin":
        role = member.role if member else "not a member"
        raise AccessDeniedError(
            f"only admins may change members, keys or the threshold (your role: {role})",
            hint="ask one of the admins listed by 'dvc-secure members'")
    if identity.signing is None or member.signing_key != identity.signing_key:
        raise AccessDeniedError(
            f"your identity's signing key is not the one the keyring lists for '{member.name}'",
            hint="use the identity file you were granted with (DVC_SECURE_IDENTITY_FILE)")
    changes.check_may_govern(member, _today())
    base = rings.committed
    if base.digest != ring.digest and (ring.previous != base.digest
                                       or ring.policy_version != base.policy_version + 1):
        raise PendingPolicyError(
            f"the uncommitted keyring is policy version {ring.policy_version}, which does not "
            f"directly follow the committed version {base.policy_version}",
            hint="discard the uncommitted change with 'dvc-secure approve --discard' (or "
            "'git checkout .dvc/secure/keyring.json'), then make it again")
    return _Admin(Path(dvc_dir), ring, identity, ring.unwrap(identity), base)


def _complete(prev: Keyring, nxt: Keyring) -> tuple[int, int, bool]:
    """(signatures of previous admins, needed, whether ``nxt`` may take effect)."""
    have = len(nxt.signed_by(prev.admin_keys()))
    own = len(nxt.signed_by(nxt.admin_keys()))
    return have, prev.threshold, have >= prev.threshold and own >= nxt.threshold


def _apply(admin: _Admin, nxt: Keyring, summary: list[str]) -> ChangeResult:
    assert admin.identity.signing is not None
    nxt = admin.rebase(nxt)
    if admin.amends:
        summary = [*summary, f"folded into the uncommitted policy version "
                   f"{nxt.policy_version} (one version per commit; version "
                   f"{admin.base.policy_version} is committed)"]
    if custody.complete_new_epoch(nxt, wrapper_for):  # a KMS-wrapped keyring (keyring.md §5a)
        summary = [*summary, f"key epoch {nxt.current_epoch} is also wrapped by "
                   f"{custody.required_kms(nxt).uri}"]  # type: ignore[union-attr]
    nxt.sign(admin.identity.signing)
    return _settle(admin.dvc_dir, admin.base, nxt, summary)


def _settle(dvc_dir: Path, prev: Keyring, nxt: Keyring, summary: list[str]) -> ChangeResult:
    problems = [p for p in prev.transition_problems(nxt) if "signed by" not in p]
    if problems:
        raise PendingPolicyError(f"the change does not follow policy version "
                                 f"{prev.policy_version}: {'; '.join(problems)}",
                                 hint="discard it: 'dvc-secure approve --discard'")
    have, needed, done = _complete(prev, nxt)
    if not done:
        path = save_pending(dvc_dir, nxt)
        # AUDIT: a policy change was proposed (pending) — audit-event call goes here
        return ChangeResult(nxt.policy_version, summary, pending=True, signatures=have,
                            needed=max(needed, nxt.threshold), path=path)
    path = save_keyring(dvc_dir, nxt)
    # the clone's trust pin is not moved here: it moves when the change is committed
    # (docs/policy.md), so discarding the uncommitted change is always safe
    discard_pending(dvc_dir)
    # AUDIT: a policy change took effect (grant/revoke/rotate/threshold) — audit-event call here
    return ChangeResult(nxt.policy_version, summary, signatures=have, needed=needed, path=path)


def _reencrypt(dvc_dir: Path, result: ChangeResult,
               progress: Callable[[int, int], None] | None, command: str,
               keyring_id: str | None = None, action: str | None = None) -> None:
    """Re-encrypt after a change that is already saved: if that fails or is interrupted,
    the change (``action``) is still recorded in the audit log (the caller never reaches
    its report)."""
    try:
        _reencrypt_now(dvc_dir, result, progress, command, keyring_id)
    except BaseException as exc:
        if action is None:
            raise
        from dvc_secure.services.audit_recorder import record_event

        why = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
        record_event(dvc_dir.parent, action, details={
            "policy_version": result.policy_version, "pending": result.pending,
            "summary": list(result.summary), "interrupted": f"re-encryption: {why}"[:300]})
        raise


def _reencrypt_now(dvc_dir: Path, result: ChangeResult,
                   progress: Callable[[int, int], None] | None, command: str,
                   keyring_id: str | None) -> None:
    if result.pending:
        raise PendingPolicyError(
            "--reencrypt needs the new epoch, which waits for more admin signatures",
            hint="after 'dvc-secure approve' completes it, run 'dvc-secure reencrypt'")
    try:
        from dvc_secure.services.reencrypt import reencrypt_current_revisions
    except ImportError as exc:
        raise ReencryptionError(f"re-encryption is not available in this installation ({exc})",
                                hint="the new epoch is saved; re-encrypt later with a release "
                                "that has it") from None
    if keyring_id is not None and result.epoch is not None:
        # before anything touches the remote: a re-run resumes this epoch (never a new one)
        start_reencryption(dvc_dir.parent, keyring_id, result.epoch, command)
    result.reencrypted = reencrypt_current_revisions(dvc_dir.parent, progress=progress)


def _resumable(dvc_dir: Path, ring: Keyring) -> bool:
    """Is a re-encryption under ``ring``'s current epoch unfinished (interrupted run)?"""
    found = interrupted_reencryption(dvc_dir.parent)
    return found is not None and found.keyring_id == ring.keyring_id \
        and found.epoch == ring.current_epoch


def _resume(dvc_dir: Path, ring: Keyring, progress: Callable[[int, int], None] | None,
            command: str) -> ChangeResult:
    result = ChangeResult(ring.policy_version, [
        f"resuming the interrupted re-encryption under key epoch {ring.current_epoch} "
        "(no new epoch: the keyring is unchanged)"], resumed=True, epoch=ring.current_epoch)
    _reencrypt(dvc_dir, result, progress, command, ring.keyring_id)
    return result


def grant(dvc_dir: Path, *, recipient: str, role: str, name: str | None,
          signing_key: str | None, expires: str | None, history: bool = True,
          env: Mapping[str, str] | None = None) -> ChangeResult:
    refuse_if_pending(dvc_dir)
    admin = _load_admin(dvc_dir, env)
    existing = next((m for m in admin.ring.members if m.recipient == recipient), None)
    member_name = name or (existing.name if existing else f"member-{recipient[4:12]}")
    nxt = changes.grant(admin.ring, admin.keys, name=member_name, recipient=recipient, role=role,
                   signing_key=signing_key, expires=expires, now=_now(), history=history,
                   today=_today())
    until = f" until {expires}" if expires else ""
    if existing is None:
        scope = "every epoch" if history else f"epoch {nxt.current_epoch} only"
        summary = [f"granted '{member_name}' the role {role}{until} (keys of {scope})"]
    else:
        summary = [f"'{member_name}': role {existing.role} -> {role}{until}"]
        if nxt.current_epoch != admin.ring.current_epoch:
            summary.append(f"new key epoch {nxt.current_epoch}: the former {existing.role}'s "
                           "signatures are trusted only for epochs up to "
                           f"{admin.ring.current_epoch}")
    return _apply(admin, nxt, summary)


def revoke(dvc_dir: Path, *, member: str, reencrypt: bool = False,
           progress: Callable[[int, int], None] | None = None,
           env: Mapping[str, str] | None = None) -> ChangeResult:
    refuse_if_pending(dvc_dir)
    admin = _load_admin(dvc_dir, env)
    if reencrypt and _resumable(Path(dvc_dir), admin.ring) and not any(
            member in (m.name, m.recipient, m.fingerprint) for m in admin.ring.members):
        # already revoked by the interrupted run: finish its re-encryption
        return _resume(Path(dvc_dir), admin.ring, progress, f"dvc-secure revoke {member} --reencrypt")
    target = admin.ring.find_member(member)
    if target.recipient == admin.identity.recipient:
        raise AccessDeniedError("an admin cannot revoke themselves",
                                hint="ask another admin to run 'dvc-secure revoke'")
    nxt = changes.revoke(admin.ring, admin.keys, member=target.name, now=_now())
    result = _apply(admin, nxt, [
        f"revoked '{target.name}' ({target.role}); new key epoch {nxt.current_epoch} is "
        "wrapped to the remaining members and used by later pushes",
        f"'{target.name}' keeps what they could decrypt before (epochs <= "
        f"{admin.ring.current_epoch}); see docs/access.md"])
    result.epoch = nxt.current_epoch
    if reencrypt:
        _reencrypt(Path(dvc_dir), result, progress, f"dvc-secure revoke {member} --reencrypt",
                   nxt.keyring_id, action="revoke")
    return result


def rotate(dvc_dir: Path, *, reencrypt: bool = False,
           progress: Callable[[int, int], None] | None = None,
           env: Mapping[str, str] | None = None, kms: str | None = None) -> ChangeResult:
    """``kms``: a KMS key URI the new epoch (and every later one) must also be wrapped by,
    or "" to stop requiring one (docs/custody.md); None leaves the requirement as it is."""
    refuse_if_pending(dvc_dir)
    admin = _load_admin(dvc_dir, env)
    if reencrypt and _resumable(Path(dvc_dir), admin.ring):
        return _resume(Path(dvc_dir), admin.ring, progress, "dvc-secure rotate --reencrypt")
    nxt, dropped = changes.rotate(admin.ring, admin.keys, now=_now(), today=_today())
    summary = [f"new key epoch {nxt.current_epoch}, wrapped to {len(nxt.members)} member(s)"]
    if kms is not None:
        custody.require_kms(nxt, custody.parse_kms_uri(kms) if kms else None)
        summary.append(f"KMS requirement: {kms or 'none'}")
    summary += [f"dropped '{n}' (grant expired)" for n in dropped]
    result = _apply(admin, nxt, summary)
    result.dropped = dropped
    result.epoch = nxt.current_epoch
    if reencrypt:
        _reencrypt(Path(dvc_dir), result, progress, "dvc-secure rotate --reencrypt",
                   nxt.keyring_id, action="rotate")
    return result


def set_threshold(dvc_dir: Path, threshold: int,
                  env: Mapping[str, str] | None = None) -> ChangeResult:
    refuse_if_pending(dvc_dir)
    admin = _load_admin(dvc_dir, env)
    nxt = changes.set_threshold(admin.ring, threshold)
    return _apply(admin, nxt, [f"threshold {admin.ring.threshold} -> {threshold} admin "
                               "signature(s) per policy change"])


def set_remote_policy(dvc_dir: Path, policy: RemotePolicy | None,
                      env: Mapping[str, str] | None = None,
                      names_migrated: Sequence[str] = ()) -> ChangeResult:
    """Pin (or unpin, with None) the secure remotes DVC may use (keyring.md §4b);
    ``names_migrated``: remotes whose scheme-1 hidden names are no longer read."""
    refuse_if_pending(dvc_dir)
    admin = _load_admin(dvc_dir, env)
    if policy is not None:  # names kept per remote; new remotes get their own (hidden-names.md)
        policy = mark_names_migrated(assign_names(policy, admin.ring.remotes, fresh=False),
                                     names_migrated)
    if policy == admin.ring.remotes:
        raise PendingPolicyError("the remote policy already pins exactly this configuration",
                                 hint="nothing to do; 'dvc-secure remote-policy' shows it")
    nxt = admin.ring.successor()
    nxt.remotes = policy
    if policy is None:
        summary = ["remotes unpinned: DVC's configuration is no longer checked against the "
                   "signed policy"]
    else:
        summary = [f"pinned remote '{p.name}' = {p.secure_url} (storage '{p.wraps}' at "
                   f"{p.url}, hide_names {str(p.hide_names).lower()}, allow_gc_sealed "
                   f"{str(p.allow_gc_sealed).lower()}, {_names(p)})" for p in policy.secure]
        summary.append(f"default remote: {policy.default or '(not pinned)'}")
    return _apply(admin, nxt, summary)


def _names(p: SecureRemotePin) -> str:
    if p.names is None:
        return "hidden names of scheme 1"
    return (f"hidden names of scheme {p.names.scheme}, name id {p.names.id}"
            + (", scheme-1 names still read" if p.names.legacy else ""))


def approve(dvc_dir: Path, *, discard: bool = False,
            env: Mapping[str, str] | None = None) -> ChangeResult:
    """Add the caller's signature to the pending change; apply it once enough admins signed."""
    pending = load_pending(dvc_dir)
    if discard:
        return _discard(Path(dvc_dir), pending, env)
    if pending is None:
        raise PendingPolicyError(f"no pending keyring change ({pending_path(dvc_dir)})",
                                 hint="nothing to approve")
    rings = load_trusted_keyrings(dvc_dir, env)
    prev = rings.committed
    if pending.previous != prev.digest or pending.policy_version != prev.policy_version + 1:
        raise PendingPolicyError(
            f"the pending change (version {pending.policy_version}) does not follow the current "
            f"keyring (version {prev.policy_version}); it is stale",
            hint="discard it with 'dvc-secure approve --discard' and make the change again")
    identity = load_identity(env)
    member = prev.member_for(identity) or pending.member_for(identity)
    if member is None or member.role != "admin" or identity.signing is None \
            or member.signing_key != identity.signing_key:
        raise AccessDeniedError("only an admin may approve a pending keyring change",
                                hint="ask one of the admins listed by 'dvc-secure members'")
    changes.check_may_govern(member, _today())
    signed_by = [m.name for m in prev.members
                 if m.signing_key and m.signing_keyid in pending.signed_by(prev.admin_keys())]
    summary = [f"approved policy version {pending.policy_version} as '{member.name}'; it",
               *(f"  {line}" for line in changes.describe_change(prev, pending)),
               f"  was signed before by: {', '.join(signed_by) or 'none of the current admins'}"]
    pending.sign(identity.signing)
    return _settle(Path(dvc_dir), prev, pending, summary)


def _discard(dvc_dir: Path, pending: Keyring | None,
             env: Mapping[str, str] | None) -> ChangeResult:
    """Drop the pending change; without one, the uncommitted keyring change (the
    workspace keyring goes back to the committed version this clone trusts)."""
    if pending is not None:
        discard_pending(dvc_dir)
        return ChangeResult(pending.policy_version, [
            f"discarded pending policy version {pending.policy_version}"])
    rings = load_trusted_keyrings(dvc_dir, env)
    if rings.pinned is None or rings.workspace is not rings.newest:
        raise PendingPolicyError("no pending or uncommitted keyring change to discard",
                                 hint="nothing to do; 'dvc-secure doctor' shows the trust state")
    save_keyring(dvc_dir, rings.pinned)
    return ChangeResult(rings.pinned.policy_version, [
        f"discarded the uncommitted policy version {rings.workspace.policy_version}; the "
        f"keyring is the committed version {rings.pinned.policy_version} again"])


@dataclass(frozen=True)
class MemberRow:
    name: str
    role: str
    since: str
    expires: str | None
    expired: bool
    fingerprint: str
    signing_keyid: str | None
    epochs: list[int]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def members(dvc_dir: Path, env: Mapping[str, str] | None = None,
            today: dt.date | None = None) -> tuple[Keyring, list[MemberRow]]:
    ring = load_trusted_keyrings(dvc_dir, env).workspace
    day = today or _today()
    rows = []
    for m in ring.members:
        held = [e.number for e in ring.epochs if any(s.recipient == m.recipient for s in e.stanzas)]
        rows.append(MemberRow(m.name, m.role, m.added, m.expires, m.expired(day), m.fingerprint,
                              m.signing_keyid, held))
    return ring, rows
