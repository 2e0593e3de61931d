"""Erasure records: the signed tombstone ``dvc-secure shred`` commits (docs/spec/erasure.md).

Who (``by``, the admin's member name, and the signatures), when (``created``), why
(``reason``), what (``datasets``: metafile -> the git revisions that sealed it; ``objects``:
every DVC object id of the domain), where (``remotes`` whose domain key files were
destroyed). ``verify`` accepts a valid record in place of the domain's missing objects;
``dvc pull`` names it. Pure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dvc_secure.core.records.domain_record import DomainRecord, bad_record
from dvc_secure.core.records.paths import ERASURE_RECORD_DIR

RECORD_FORMAT = "dvc-secure-erasure"
RECORD_VERSION = 1
RECORD_DIR = ERASURE_RECORD_DIR  # relative to the repository root


def record_relpath(domain: str) -> str:
    return f"{RECORD_DIR}/{domain}.json"


@dataclass(frozen=True)
class ErasureRecord(DomainRecord):
    FORMAT = RECORD_FORMAT
    LABEL = b"dvc-secure/v1/erasure-signature\x00"

    @classmethod
    def create(cls, *, keyring_id: str, epoch: int, created: str, domain: str, reason: str,
               by: str, datasets: Mapping[str, Iterable[str]], objects: Iterable[str],
               remotes: Iterable[str]) -> ErasureRecord:
        signed = {"format": RECORD_FORMAT, "version": RECORD_VERSION, "keyring_id": keyring_id,
                  "epoch": epoch, "created": created, "domain": domain, "reason": reason,
                  "by": by, "objects": sorted(set(objects)), "remotes": sorted(set(remotes)),
                  "datasets": {m: sorted(set(r)) for m, r in sorted(datasets.items())}}
        return cls(signed)

    @property
    def objects(self) -> frozenset[str]:
        return frozenset(self.signed["objects"])

    @property
    def remotes(self) -> tuple[str, ...]:
        return tuple(self.signed["remotes"])

    @property
    def datasets(self) -> dict[str, list[str]]:
        return {k: list(v) for k, v in self.signed["datasets"].items()}

    def describe(self) -> str:
        return (f"erased on {self.created[:10]} by {self.by} (reason: {self.reason}; "
                f"erasure record {self.record_id}, {record_relpath(self.domain)})")

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> ErasureRecord:
        s, sigs = cls.parse(data, where, RECORD_VERSION)
        remotes = s.get("remotes")
        if not isinstance(remotes, list) or not remotes or not all(
                isinstance(r, str) and r for r in remotes):
            raise bad_record(where, "'remotes' must be a non-empty list of remote names")
        datasets: Any = s.get("datasets")
        if not isinstance(datasets, dict) or not all(
                isinstance(k, str) and isinstance(v, list) and all(isinstance(x, str) for x in v)
                for k, v in datasets.items()):
            raise bad_record(where, "'datasets' must map metafiles to lists of revisions")
        return cls(s, sigs)
