"""Recording, uploading and reading the audit trail (the shell around audit/model.py).

``record_event`` is cheap and local (it runs inside git hooks and at the exit of
``dvc push``): sign, chain, queue under ``<git-dir>/dvc-secure/audit/``. ``flush_events``
uploads the queue to the default secure remote, write-once, in sequence order.
"""

from __future__ import annotations

import datetime as dt
import io
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dvc_secure.adapters.local.audit_state import AuditState
from dvc_secure.core.audit.model import (
    STORAGE_PREFIX,
    UNREADABLE,
    AuditEvent,
    Entry,
    LogView,
    Signer,
    merge_heads,
    parse_storage_name,
    storage_name,
    verify_log,
)
from dvc_secure.core.format.audit_box import open_event, seal_event
from dvc_secure.core.format.primitives import random_bytes
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import AuditBoxError, AuditLogError, DvcSecureError, NoKeyForEpochError

if TYPE_CHECKING:
    from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _warn(message: str, enabled: bool = True) -> None:
    if enabled:
        print(f"dvc-secure: warning: audit: {message}", file=sys.stderr)


def _no_prompt(message: str) -> str:
    raise EOFError  # load_identity turns this into a PassphraseError: warn, never block


# variables with which git finds another repository than the one above ``repo_root``
_GIT_LOCATION_ENV = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR", "GIT_CEILING_DIRECTORIES",
                     "GIT_DISCOVERY_ACROSS_FILESYSTEM", "GIT_NAMESPACE", "GIT_REF_STORAGE")


def _head_revision(repo_root: Path) -> str | None:
    # `git rev-parse` rather than pygit2: this runs inside git hooks, where importing
    # pygit2 alone costs more than the whole latency budget
    import os
    import subprocess

    from dvc_secure.adapters.git.unborn import without_commits

    if not any(v in os.environ for v in _GIT_LOCATION_ENV) and without_commits(repo_root):
        return None  # nothing committed yet: no HEAD revision (what rev-parse says), no process
    try:
        out = subprocess.run(["git", "rev-parse", "--verify", "-q", "HEAD^{commit}"],
                             cwd=repo_root, capture_output=True, text=True, check=False)
    except OSError:
        return None
    rev = out.stdout.strip()
    return rev if out.returncode == 0 and len(rev) in (40, 64) else None


def metafiles_at(repo_root: Path, revision: str | None) -> list[str] | None:
    """The DVC metafiles tracked at ``revision`` (None: unknown here, e.g. a revision this
    clone does not have): what a push or pull without targets (``all``) moved."""
    import subprocess

    if not revision:
        return None
    try:
        out = subprocess.run(["git", "ls-tree", "-r", "--name-only", "-z", revision],
                             cwd=repo_root, capture_output=True, check=False)
    except OSError:
        return None
    if out.returncode != 0:
        return None
    names = out.stdout.decode("utf-8", "replace").split("\0")
    return [n for n in names if n.endswith(".dvc") or n.rsplit("/", 1)[-1] == "dvc.lock"]


def record_event(repo_root: Path, action: str, *, datasets: Sequence[str] = (),
                 revision: str | None = None, details: Mapping[str, object] | None = None,
                 now: str | None = None, warn: bool = True,
                 identity: Identity | None = None, interactive: bool = True) -> None:
    """Sign, chain and queue one event of this clone's chain (no remote I/O).

    Never raises for a missing identity, a non-member or a local I/O problem: it prints one
    warning line (``warn=False``: none), because the action it records has already happened.
    ``identity``: the one the action used (else loaded; ``interactive=False``: no prompt)."""
    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.adapters.local.repo_keyring import load_keyring

    try:
        ring = load_keyring(repo_root / ".dvc")
        if identity is None:
            identity = load_identity() if interactive else load_identity(prompt=_no_prompt)
        member = ring.member_for(identity)
        if member is None or identity.signing is None or not identity.signing_key:
            _warn(f"'{action}' not recorded: your identity is not a keyring member with a "
                  "signing key (ask an admin for 'dvc-secure grant')", warn)
            return
        if member.signing_key != identity.signing_key:
            _warn(f"'{action}' not recorded: your signing key is not the one the keyring "
                  f"lists for '{member.name}'", warn)
            return
        state_dir = AuditState(repo_root)
        chain = state_dir.chain_id(identity.signing_key)
        rev = revision if revision is not None else _head_revision(repo_root)
        with state_dir.locked():
            state = state_dir.load()
            head = state.heads.get(chain)
            time = now or _now()
            if head is not None and time < head[2]:
                time = head[2]  # a clock that went back must not reorder our own chain
            event = AuditEvent(
                chain=chain, seq=head[0] + 1 if head else 1, prev=head[1] if head else None,
                time=time, actor={"name": member.name, "key": identity.signing_key},
                client={"host": socket.gethostname()[:64], "clone": state_dir.clone_id()},
                action=action, datasets=list(datasets), revision=rev,
                details=dict(details or {}),
                seen={c: v for c, v in state.known.items() if c != chain},
            )
            event.sign(identity.signing)
            data = event.to_bytes()
            AuditEvent.from_bytes(data)  # never queue what a verifier would reject
            state_dir.enqueue(chain, event.seq, data)
            state.heads[chain] = (event.seq, event.digest, event.time)
            state_dir.save(state)
    except (DvcSecureError, OSError) as exc:
        msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
        _warn(f"'{action}' not recorded: {msg}", warn)


def pending_count(repo_root: Path) -> int:
    try:
        return len(AuditState(repo_root).queued())
    except DvcSecureError:
        return 0


def open_log_remote(repo_root: Path, remote: str | None = None) -> SecureFsspec:
    """The secure remote the audit log lives on: ``remote``, else the default remote."""
    from dvc_secure.adapters.dvc.remote_access import open_secure_remote

    # one reading of DVC's configuration for both the default's name and its definition
    return open_secure_remote(repo_root / ".dvc", remote or None)


def _read(fs: SecureFsspec, name: str) -> bytes | None:
    try:
        with fs.inner.open(fs.storage_path(name), "rb") as f:
            return bytes(f.read())
    except FileNotFoundError:
        return None


def flush_events(repo_root: Path, remote: str | None = None,
                 fs: SecureFsspec | None = None, keys: Any = None) -> int:
    """Upload queued events in sequence order; returns how many were uploaded.

    ``keys``: this repository's keys as this process already loaded them (a LazyRepoKeys
    of the same ``.dvc`` directory), for the remote opened here: keys depend on the
    repository and the identity, not on the remote, so they need not be loaded again.
    Raises DvcSecureError (events stay queued) when the remote or the keys are not usable."""
    state_dir = AuditState(repo_root)
    if not state_dir.queued():
        return 0
    if fs is None:
        fs = open_log_remote(repo_root, remote)
        if keys is not None and _same_dir(getattr(keys, "dvc_dir", None), repo_root / ".dvc"):
            fs.keys = keys
    keys = fs.keys.get()
    epoch = keys.keyset.current_epoch
    data_key = keys.keyset.key_for_epoch(epoch)
    uploaded = 0
    with state_dir.locked():
        state = state_dir.load()
        for chain, seq, path in state_dir.queued():
            data = path.read_bytes()
            event = AuditEvent.from_bytes(data)
            name = storage_name(chain, seq)
            target = fs.storage_path(name)
            existing = _read(fs, name)
            if existing is not None:
                # write-once: an event already there is ours from an interrupted flush, or a fork
                try:
                    same = open_event(existing, name, keys.keyset.key_for_epoch) == data
                except (AuditBoxError, NoKeyForEpochError):
                    same = False
                if not same:
                    raise AuditLogError(
                        f"{name} already exists on the remote with different content; "
                        "refusing to overwrite it",
                        hint="two clones share a clone-id (copied .git?): delete "
                        ".git/dvc-secure/audit/ in the copy, then run 'dvc-secure audit --verify'",
                    )
            else:
                fs.inner.makedirs(fs.storage_path(f"{STORAGE_PREFIX}/{chain}"), exist_ok=True)
                blob = seal_event(data_key, epoch, name, data)
                # upload beside, then rename: readers never see a half-written event
                move = getattr(fs.inner, "mv", None)
                if move is None:
                    fs.inner.upload_fobj(io.BytesIO(blob), target)
                else:
                    partial = f"{target}.partial-{random_bytes(8).hex()}"
                    fs.inner.upload_fobj(io.BytesIO(blob), partial)
                    move(partial, target)
                uploaded += 1
            path.unlink()
            state.known = merge_heads(state.known, {chain: (seq, event.digest)})
            state_dir.save(state)
    return uploaded


def _same_dir(a: str | None, b: Path) -> bool:
    import os

    return a is not None and os.path.realpath(a) == os.path.realpath(b)


def flush_quietly(repo_root: Path) -> int:
    """:func:`flush_events` for the end of a command that already succeeded: a failure is
    one warning line and the events stay queued."""
    try:
        return flush_events(repo_root)
    except (DvcSecureError, OSError) as exc:
        msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
        _warn(f"events stay queued, not uploaded ({msg}); 'dvc-secure audit' retries")
        return 0


@dataclass
class AuditLog:
    view: LogView
    signers: dict[str, Signer]
    pending: int
    # set when a remote other than the log's home was read and it holds no event at all
    no_log_on: str | None = None
    home: str | None = None  # the remote events are uploaded to (the default remote)


def keyring_signers(repo_root: Path, ring: Keyring) -> dict[str, Signer]:
    """Signing key -> member, for the current keyring and every earlier version on this
    clone's trusted chain (so that a revoked member's events still verify)."""
    from dvc_secure.adapters.local.repo_keyring import trusted_history_keyrings

    signers = {m.signing_key: Signer(m.name, m.role, True) for m in ring.members if m.signing_key}
    for former in getattr(ring, "former_signers", None) or []:
        signers.setdefault(former.signing_key, Signer(former.name, "former", False))
    for old in trusted_history_keyrings(repo_root / ".dvc"):
        if old.keyring_id != ring.keyring_id:
            continue
        for m in old.members:
            if m.signing_key and m.signing_key not in signers:
                signers[m.signing_key] = Signer(m.name, m.role, False)
    return signers


def read_entries(fs: SecureFsspec) -> list[Entry]:
    """Every stored event of the remote, decrypted (or the reason it could not be)."""
    keys = fs.keys.get()
    root = fs.storage_path(STORAGE_PREFIX)
    try:
        paths = list(fs.inner.find(root))
    except FileNotFoundError:
        paths = []
    entries = []
    for p in paths:
        parsed = parse_storage_name(str(p))
        if parsed is None:
            continue
        chain, seq = parsed
        name = storage_name(chain, seq)
        blob = _read(fs, name)
        if blob is None:
            continue
        try:
            entries.append(Entry(chain, seq, open_event(blob, name, keys.keyset.key_for_epoch)))
        except NoKeyForEpochError as exc:
            entries.append(Entry(chain, seq, None, exc.message, kind=UNREADABLE))
        except AuditBoxError as exc:
            entries.append(Entry(chain, seq, None, exc.message))
    return entries


def read_log(repo_root: Path, remote: str | None = None, flush: bool = True,
             update_checkpoints: bool = True) -> AuditLog:
    """Flush this clone's queue (best effort), read and verify the whole log."""
    from dvc_secure.adapters.dvc.config_file import dvc_remotes
    from dvc_secure.adapters.local.repo_keyring import load_keyring

    home = dvc_remotes(repo_root / ".dvc").default
    elsewhere = remote is not None and home is not None and remote != home
    fs = open_log_remote(repo_root, remote)
    if flush:
        try:
            # events go to one place, the log's home: never split it over other remotes
            if elsewhere:
                flush_events(repo_root)
            else:
                flush_events(repo_root, fs=fs)
        except (DvcSecureError, OSError) as exc:
            msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
            _warn(f"could not upload this clone's queued events: {msg}")
    state_dir = AuditState(repo_root)
    ring = load_keyring(repo_root / ".dvc")
    signers = keyring_signers(repo_root, ring)
    entries = read_entries(fs)
    if elsewhere and not entries:
        return AuditLog(view=verify_log([], signers, {}), signers=signers,
                        pending=pending_count(repo_root), no_log_on=remote, home=home)
    with state_dir.locked():
        state = state_dir.load()
    # the heads this clone has seen were read on the log's home; another remote (a backup
    # copy) is checked for what it holds, not against them
    view = verify_log(entries, signers, {} if elsewhere else state.known)
    if elsewhere:
        return AuditLog(view=view, signers=signers, pending=pending_count(repo_root),
                        home=home)
    if update_checkpoints:
        # remember what we saw (only chains that verified from 1 to their head)
        with state_dir.locked():
            state = state_dir.load()
            state.known = merge_heads(state.known, view.heads)
            state_dir.save(state)
    return AuditLog(view=view, signers=signers, pending=pending_count(repo_root), home=home)


def event_row(event: AuditEvent, signers: Mapping[str, Signer]) -> dict[str, Any]:
    signer = signers.get(event.actor_key)
    return {
        "time": event.time,
        "actor": event.actor_name,
        "keyid": event.actor_keyid,
        "role": signer.role if signer else "unknown",
        "former_member": bool(signer and not signer.current),
        "action": event.action,
        "datasets": event.datasets,
        "revision": event.revision,
        "client": {"host": event.host, "clone": event.clone},
        "details": event.details,
        "chain": event.chain,
        "seq": event.seq,
    }
