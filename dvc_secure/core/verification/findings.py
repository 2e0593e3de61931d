"""What verification reports: a finding per problem, with its code and fix (the codes are
listed in docs/spec/sidecar.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    rev: str
    dataset: str
    code: str
    message: str
    fix: str


# Finding codes (docs/spec/sidecar.md lists them with their fixes)
UNSEALED = "unsealed-output"
SIDECAR_DELETED = "sidecar-deleted"
INVALID_SIDECAR = "invalid-sidecar"
MISPLACED = "sidecar-for-other-dataset"
UNBOUND = "metafile-not-bound"
UNTRUSTED_SIGNER = "untrusted-signer"
READER_SIGNED = "signed-by-reader"
BAD_SIGNATURE = "bad-signature"
ROLLBACK = "version-rollback"
REPLAY = "sidecar-replayed"
CHAIN_BROKEN = "chain-broken"
FORK = "fork-unresolved"
NO_TRUST = "no-trust-policy"
POLICY_UNAUTHORIZED = "policy-change-unauthorized"
POLICY_ROLLBACK = "policy-rollback"
POLICY_FORK = "policy-fork"
UNTRUSTED_ROOT = "untrusted-root-policy"
ORPHAN = "orphan-sidecar"
EXPIRED_MEMBER = "expired-member-holds-key"
KEYRING_REMOVED = "keyring-removed"
SIGNED_AFTER_EXPIRY = "signed-after-expiry"
# A revision that holds no dvc-secure file (no keyring, no sidecar) and descends from no
# revision that does: history from before ``dvc-secure init``. It is outside the verified
# range, reported for information only. Once one ancestor held the keyring or a sidecar,
# a missing keyring is a failure (``keyring-removed``): nobody can "un-adopt" a history.
BEFORE_ADOPTION = "unsealed-before-adoption"
INFORMATIONAL = frozenset({BEFORE_ADOPTION})


def expired_member_findings(rev: str, current_epoch: int,
                            expired: Iterable[tuple[str, str, str]]) -> list[Finding]:
    """(name, role, expiry date) of members whose grant expired but who still hold the
    current key epoch: they can decrypt new pushes until the next rotation."""
    return [Finding(rev, ".dvc/secure/keyring.json", EXPIRED_MEMBER,
                    f"the grant of '{name}' ({role}) expired on {day}, but they still hold the "
                    f"current key epoch {current_epoch} and can decrypt what is pushed next",
                    "an admin runs 'dvc-secure rotate' (add --reencrypt to also re-encrypt "
                    "current data), then commits .dvc/secure")
            for name, role, day in expired]


def failing(findings: Iterable[Finding]) -> list[Finding]:
    """The findings that fail a verification (informational ones left out)."""
    return [f for f in findings if f.code not in INFORMATIONAL]
