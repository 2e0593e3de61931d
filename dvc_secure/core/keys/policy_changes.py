"""Keyring policy changes: grant, revoke, rotate, threshold (pure: each returns the unsigned
successor, which the previous version's admins sign; see docs/spec/keyring.md).
"""

from __future__ import annotations

import datetime as dt

from dvc_secure.core.format.primitives import (
    random_bytes,
)
from dvc_secure.core.keys.identity import (
    decode_recipient,
    decode_signing_key,
)
from dvc_secure.core.keys.keyring import (
    ROLES,
    SIGNING_ROLES,
    Epoch,
    FormerSigner,
    Keyring,
    KeySet,
    Member,
    parse_date,
)
from dvc_secure.errors import AccessDeniedError, IdentityError, KeyringError


def _secret_of(keys: KeySet, epoch: int) -> bytes:
    return keys.key_for_epoch(epoch) + keys.name_secret


def _check_card(recipient: str, role: str, signing_key: str | None) -> None:
    if role not in ROLES:
        raise KeyringError(f"unknown role '{role}'", hint=f"one of: {', '.join(ROLES)}")
    try:
        decode_recipient(recipient)
        if signing_key is not None:
            decode_signing_key(signing_key)
    except IdentityError as exc:
        raise KeyringError(exc.message, hint="copy both lines 'dvc-secure whoami' prints "
                           "for that person") from None
    if role in SIGNING_ROLES and not signing_key:
        raise KeyringError(f"a {role} needs a signing key",
                           hint="pass --signing-key dvcsign1… (from the member's 'dvc-secure whoami')")


def _retire_signer(ring: Keyring, member: Member) -> None:
    """Keep ``member``'s objects verifiable up to the current epoch, not after."""
    if member.role not in SIGNING_ROLES or not member.signing_key:
        return
    ring.former_signers = [f for f in ring.former_signers if f.signing_key != member.signing_key]
    ring.former_signers.append(FormerSigner(member.name, member.signing_key, ring.current_epoch))


def _new_epoch(ring: Keyring, keys: KeySet, now: str) -> int:
    """A fresh data key, the same name secret, wrapped to every current member."""
    number = ring.current_epoch + 1
    if number >= 1 << 32:
        raise KeyringError("keyring: no key epochs left")
    secret = random_bytes(32) + keys.name_secret
    ring.epochs.append(Epoch(number, now, [ring.wrap_to(m.recipient, number, secret)
                                           for m in ring.members]))
    ring.current_epoch = number
    return number


def _drop_member(ring: Keyring, member: Member) -> None:
    _retire_signer(ring, member)
    ring.members = [m for m in ring.members if m.name != member.name]
    for epoch in ring.epochs:
        epoch.stanzas = [st for st in epoch.stanzas if st.recipient != member.recipient]


def grant(ring: Keyring, keys: KeySet, *, name: str, recipient: str, role: str,
          signing_key: str | None, expires: str | None, now: str,
          history: bool = True, today: dt.date | None = None) -> Keyring:
    """Add a member (or change an existing member's role/expiry) as the next version.

    ``history``: also wrap every earlier epoch the caller holds, so the new member can
    read objects pushed before they joined (unchanged objects keep their epoch).
    Demoting a writer/admin starts a new epoch so their signing right ends there.
    ``today``: the admin's date; an expiry before it is refused (it would be void at once).
    """
    _check_card(recipient, role, signing_key)
    if expires is not None:
        last = parse_date(expires, "expires")
        if today is not None and last < today:
            raise KeyringError(
                f"the expiry date {expires} is already past (today is {today}): the grant "
                "would never be valid",
                hint="give the last day the grant is valid, today or later "
                f"(e.g. --expires {today + dt.timedelta(days=90)}), or revoke the member "
                "instead: dvc-secure revoke <member>")
    nxt = ring.successor()
    existing = next((m for m in nxt.members if m.recipient == recipient), None)
    if existing is None:
        if any(m.name == name for m in nxt.members):
            raise KeyringError(f"a member named '{name}' already exists with another recipient",
                               hint="choose another --name, or revoke the old one first")
        if signing_key and any(m.signing_key == signing_key for m in nxt.members):
            raise KeyringError("that signing key already belongs to another member")
        member = Member(name=name, recipient=recipient, role=role, signing_key=signing_key,
                        added=now, expires=expires)
        nxt.members.append(member)
        for epoch in nxt.epochs:
            if epoch.number != nxt.current_epoch and (not history
                                                      or epoch.number not in keys.data_keys):
                continue
            epoch.stanzas.append(nxt.wrap_to(recipient, epoch.number,
                                           _secret_of(keys, epoch.number)))
        if role in SIGNING_ROLES:
            nxt.former_signers = [f for f in nxt.former_signers if f.signing_key != signing_key]
        return nxt
    if signing_key and existing.signing_key and signing_key != existing.signing_key:
        raise KeyringError(f"'{existing.name}' is listed with another signing key",
                           hint="revoke the member and grant the new keys")
    demoted = existing.role in SIGNING_ROLES and role not in SIGNING_ROLES
    if demoted:
        _retire_signer(nxt, existing)
    if role in SIGNING_ROLES and existing.signing_key:
        nxt.former_signers = [f for f in nxt.former_signers
                              if f.signing_key != existing.signing_key]
    existing.role = role
    existing.signing_key = signing_key or existing.signing_key
    existing.expires = expires
    if role in SIGNING_ROLES and not existing.signing_key:
        raise KeyringError(f"a {role} needs a signing key", hint="pass --signing-key dvcsign1…")
    if demoted:
        _new_epoch(nxt, keys, now)
    _check_threshold(nxt)
    return nxt


def _check_threshold(ring: Keyring) -> None:
    admins = sum(1 for m in ring.members if m.role == "admin")
    if admins == 0:
        raise KeyringError("the change would leave the keyring without an admin",
                           hint="grant another admin first")
    if ring.threshold > admins:
        raise KeyringError(f"the change would leave {admins} admin(s) for a threshold of "
                           f"{ring.threshold}", hint="lower it first with 'dvc-secure threshold'")


def revoke(ring: Keyring, keys: KeySet, *, member: str, now: str) -> Keyring:
    """Remove a member and start a new epoch (fresh data key, same name secret)."""
    nxt = ring.successor()
    target = nxt.find_member(member)
    _drop_member(nxt, target)
    _check_threshold(nxt)
    _new_epoch(nxt, keys, now)
    return nxt


def rotate(ring: Keyring, keys: KeySet, *, now: str, today: dt.date) -> tuple[Keyring, list[str]]:
    """Start a new epoch wrapped to the members whose grant has not expired; returns the
    successor and the names of the expired members it dropped."""
    nxt = ring.successor()
    dropped = [m for m in nxt.members if m.expired(today)]
    for m in dropped:
        _drop_member(nxt, m)
    _check_threshold(nxt)
    _new_epoch(nxt, keys, now)
    return nxt, [m.name for m in dropped]


def set_threshold(ring: Keyring, threshold: int) -> Keyring:
    if threshold < 1:
        raise KeyringError("the threshold must be at least 1")
    admins = sum(1 for m in ring.members if m.role == "admin")
    if threshold > admins:
        raise KeyringError(f"a threshold of {threshold} exceeds the {admins} admin(s)",
                           hint="grant more admins first ('dvc-secure grant … --role admin')")
    nxt = ring.successor()
    nxt.threshold = threshold
    return nxt


def check_may_seal(member: Member | None, today: dt.date) -> Member:
    """Sealing and pushing need a writer/admin grant that has not expired."""
    if member is None or member.role not in SIGNING_ROLES:
        role = member.role if member else "not a member"
        raise AccessDeniedError(
            f"your identity may not push to this secure remote nor seal (role: {role}); only "
            "writers and admins sign objects",
            hint="ask a repository admin for 'dvc-secure grant <recipient> --role writer "
            "--signing-key <key>'",
        )
    if member.expired(today):
        raise AccessDeniedError(
            f"the grant of '{member.name}' expired on {member.expires}: sealing and pushing "
            "are refused",
            hint="ask a repository admin to renew it: 'dvc-secure grant <recipient> --role "
            f"{member.role} --expires YYYY-MM-DD'",
        )
    return member


def check_may_govern(member: Member, today: dt.date) -> Member:
    """Changing the policy (members, keys, threshold, remote pins) or approving a change
    needs an admin grant that has not expired: an expired admin would otherwise renew
    himself."""
    if member.expired(today):
        raise AccessDeniedError(
            f"the grant of '{member.name}' expired on {member.expires}: changing or approving "
            "the keyring is refused",
            hint="ask another admin to renew it: 'dvc-secure grant <recipient> --role admin "
            "--expires YYYY-MM-DD'",
        )
    return member


def describe_change(prev: Keyring, nxt: Keyring) -> list[str]:
    """What ``nxt`` changes in ``prev``, one line each, for an admin about to sign it: a
    pending change arrives through git, where anyone with push access can replace it."""

    def grant_text(m: Member) -> str:
        return m.role + (f" until {m.expires}" if m.expires else "")

    out = []
    before = {m.recipient: m for m in prev.members}
    after = {m.recipient: m for m in nxt.members}
    for recipient, m in after.items():
        old = before.get(recipient)
        if old is None:
            out.append(f"adds member '{m.name}' as {grant_text(m)}")
        elif grant_text(old) != grant_text(m) or old.signing_key != m.signing_key \
                or old.name != m.name:
            key = " with another signing key" if old.signing_key != m.signing_key else ""
            out.append(f"changes member '{old.name}': {grant_text(old)} -> "
                       f"'{m.name}' {grant_text(m)}{key}")
    out += [f"removes member '{m.name}' ({m.role})" for r, m in before.items() if r not in after]
    if nxt.threshold != prev.threshold:
        out.append(f"changes the threshold from {prev.threshold} to {nxt.threshold}")
    if nxt.current_epoch != prev.current_epoch:
        out.append(f"starts key epoch {nxt.current_epoch}")
    if nxt.remotes != prev.remotes:
        out.append("changes the pinned remotes (see 'dvc-secure remote-policy')")
    return out or ["changes nothing visible in members, threshold, epochs or remotes"]
