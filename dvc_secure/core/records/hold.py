"""Legal holds: an admin-signed, git-tracked record that blocks ``shred`` and retention of a
key domain until an admin releases it (docs/spec/erasure.md §5). A release is a new signed
version of the same file with ``active: false``: the history stays in git. Pure.
"""

from __future__ import annotations

from dataclasses import dataclass

from dvc_secure.core.records.domain_record import DomainRecord, bad_record

HOLD_FORMAT = "dvc-secure-hold"
HOLD_VERSION = 1
HOLD_DIR = ".dvc/secure/holds"  # relative to the repository root


def hold_relpath(domain: str) -> str:
    return f"{HOLD_DIR}/{domain}.json"


@dataclass(frozen=True)
class HoldRecord(DomainRecord):
    FORMAT = HOLD_FORMAT
    LABEL = b"dvc-secure/v1/hold-signature\x00"

    @classmethod
    def create(cls, *, keyring_id: str, epoch: int, created: str, domain: str, reason: str,
               by: str, active: bool) -> HoldRecord:
        return cls({"format": HOLD_FORMAT, "version": HOLD_VERSION, "keyring_id": keyring_id,
                    "epoch": epoch, "created": created, "domain": domain, "reason": reason,
                    "by": by, "active": active, "objects": []})

    @property
    def active(self) -> bool:
        return bool(self.signed["active"])

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> HoldRecord:
        s, sigs = cls.parse(data, where, HOLD_VERSION)
        if not isinstance(s.get("active"), bool):
            raise bad_record(where, "'active' must be true or false")
        return cls(s, sigs)
