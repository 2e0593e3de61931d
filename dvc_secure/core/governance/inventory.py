"""Record of processing (GDPR Art. 30 style) built from verified, signed records only.

Pure: the caller hands in the sidecars of one verified revision, the keyring trusted at
that revision and a description of each secure remote's location; nothing here reads a
file, a git object or the clock. Schema: docs/governance.md ("inventory").
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.core.sidecar.model import Sidecar

INVENTORY_FORMAT = "dvc-secure-inventory"
INVENTORY_VERSION = 1
NO_HOLD = "none"  # dvc-secure has no legal-hold record yet (docs/governance.md)


@dataclass(frozen=True)
class Location:
    """Where a secure remote stores its ciphertext: never credentials, userinfo or query."""

    remote: str
    backend: str  # URL scheme of the wrapped storage ("s3", "gs", "ssh", "local", ...)
    host: str  # network host, "" for a local path

    def to_dict(self) -> dict[str, Any]:
        return {"remote": self.remote, "backend": self.backend, "host": self.host}


def location_of(remote: str, wrapped_url: str | None) -> Location:
    """A remote's backend type and host from its wrapped storage URL (userinfo, port,
    path, query and fragment are dropped)."""
    if not wrapped_url:
        return Location(remote, "unknown", "")
    try:
        parts = urlsplit(wrapped_url)
        host = parts.hostname or ""
    except ValueError:
        return Location(remote, "unknown", "")
    scheme = parts.scheme.lower()
    if not scheme or len(scheme) == 1:  # a relative/absolute path or a Windows drive letter
        return Location(remote, "local", "")
    if scheme == "file":
        return Location(remote, "local", "")
    return Location(remote, scheme, host)


@dataclass(frozen=True)
class Recipient:
    name: str
    role: str
    expires: str | None
    expired: bool
    epochs: tuple[int, ...]  # which of the dataset's key epochs are wrapped to them

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "expires": self.expires,
                "expired": self.expired, "epochs": list(self.epochs)}


@dataclass(frozen=True)
class DatasetRecord:
    metafile: str
    purpose: str
    classification: str
    owner: str
    intended_readers: tuple[str, ...]
    recipients: tuple[Recipient, ...]
    delete_after: str | None
    hold: str
    locations: tuple[Location, ...]
    key_epochs: tuple[int, ...]
    key_custody: str
    size: int
    nfiles: int
    version: int
    sealed_at: str
    signer: str
    signer_keyid: str
    sidecar_digest: str
    outputs: tuple[dict[str, Any], ...] = field(default=())

    @property
    def not_intended(self) -> list[str]:
        """Members who can decrypt the dataset but are not among its intended readers
        (empty when the sidecar names no intended readers)."""
        if not self.intended_readers:
            return []
        return [r.name for r in self.recipients if r.name not in self.intended_readers]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.metafile,
            "purpose": self.purpose,
            "classification": self.classification,
            "owner": self.owner,
            "intended_readers": list(self.intended_readers),
            "recipients": [r.to_dict() for r in self.recipients],
            "recipients_not_intended": self.not_intended,
            "retention": {"delete_after": self.delete_after, "hold": self.hold},
            "locations": [loc.to_dict() for loc in self.locations],
            "key_custody": {"description": self.key_custody, "epochs": list(self.key_epochs)},
            "size": self.size,
            "files": self.nfiles,
            "last_sealed": {"version": self.version, "sealed_at": self.sealed_at,
                            "signer": self.signer, "signer_keyid": self.signer_keyid,
                            "sidecar_digest": self.sidecar_digest},
            "outputs": [dict(o) for o in self.outputs],
        }


@dataclass(frozen=True)
class Inventory:
    revision: str
    generated_at: str
    keyring_policy_version: int
    current_epoch: int
    datasets: tuple[DatasetRecord, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"format": INVENTORY_FORMAT, "version": INVENTORY_VERSION,
                "revision": self.revision, "generated_at": self.generated_at,
                "verified": True,
                "keyring": {"policy_version": self.keyring_policy_version,
                            "current_epoch": self.current_epoch},
                "datasets": [d.to_dict() for d in self.datasets]}


def _recipients(ring: Keyring, epochs: Sequence[int], today: dt.date) -> tuple[Recipient, ...]:
    wrapped: dict[str, list[int]] = {}
    for epoch in ring.epochs:
        if epoch.number in epochs:
            for stanza in epoch.stanzas:
                wrapped.setdefault(stanza.recipient, []).append(epoch.number)
    out = []
    for m in ring.members:
        held = sorted(wrapped.get(m.recipient, []))
        if held:
            out.append(Recipient(m.name, m.role, m.expires, m.expired(today), tuple(held)))
    return tuple(sorted(out, key=lambda r: r.name))


def custody_text(epochs: Sequence[int]) -> str:
    label = "epoch" if len(epochs) == 1 else "epochs"
    return f"member-held X25519 identities, {label} {', '.join(str(e) for e in epochs)}"


def dataset_record(sc: Sidecar, ring: Keyring, locations: Mapping[str, Location],
                   today: dt.date, holds: Mapping[str, str] | None = None) -> DatasetRecord:
    """``holds``: key domain -> the text of its active legal hold (docs/erasure.md)."""
    epochs = tuple(sorted({o.key_epoch for o in sc.outputs}))
    signer = ring.member_by_keyid(sc.signer_keyid)
    remotes = sorted({o.remote for o in sc.outputs})
    return DatasetRecord(
        metafile=sc.metafile,
        purpose=sc.access.purpose,
        classification=sc.access.classification,
        owner=sc.access.owner,
        intended_readers=sc.access.readers,
        recipients=_recipients(ring, epochs, today),
        delete_after=sc.access.delete_after,
        hold=(holds or {}).get(sc.access.domain or "", NO_HOLD),
        locations=tuple(locations.get(r, Location(r, "unknown", "")) for r in remotes),
        key_epochs=epochs,
        key_custody=custody_text(epochs),
        size=sum(o.size for o in sc.outputs),
        nfiles=sum(o.nfiles for o in sc.outputs),
        version=sc.version,
        sealed_at=sc.sealed_at,
        signer=signer.name if signer else sc.signer_keyid,
        signer_keyid=sc.signer_keyid,
        sidecar_digest=sc.digest,
        outputs=tuple({"path": o.path, "sha256": o.sha256, "size": o.size, "files": o.nfiles,
                       "key_epoch": o.key_epoch, "remote": o.remote,
                       "directory": o.is_dir} for o in sc.outputs),
    )


def build_inventory(revision: str, sidecars: Sequence[Sidecar], ring: Keyring,
                    locations: Mapping[str, Location], generated_at: str,
                    today: dt.date, holds: Mapping[str, str] | None = None) -> Inventory:
    """One record per sealed dataset of a verified revision (sorted by metafile)."""
    records = tuple(dataset_record(sc, ring, locations, today, holds)
                    for sc in sorted(sidecars, key=lambda s: s.metafile))
    return Inventory(revision, generated_at, ring.policy_version, ring.current_epoch, records)
