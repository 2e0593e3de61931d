"""``dvc-secure inventory``: the record of processing of one verified revision."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dvc_secure.core.governance.croissant import ManifestFiles, to_croissant
from dvc_secure.core.governance.inventory import Inventory, build_inventory
from dvc_secure.core.verification.findings import Finding
from dvc_secure.services.governance.verified import (
    SealedFiles,
    remote_locations,
    verified_revision,
)


@dataclass
class InventoryResult:
    revision: str
    findings: list[Finding]
    inventory: Inventory | None = None
    unsealed: list[str] = field(default_factory=list)
    croissant: dict[str, Any] | None = None
    missing_manifests: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and self.inventory is not None


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def inventory(root: Path, rev: str | None = None, croissant: bool = False,
              datasets: list[str] | None = None, now: dt.datetime | None = None) -> InventoryResult:
    """``datasets``: restrict to these metafiles. ``croissant``: also build the Croissant
    document (reads the sealed manifests of directory outputs)."""
    when = now or _now()
    checked = verified_revision(root, rev)
    result = InventoryResult(checked.revision, checked.findings, unsealed=checked.unsealed)
    if not checked.ok or checked.keyring is None:
        return result
    sidecars = [sc for mf, sc in checked.sidecars.items() if not datasets or mf in datasets]
    names = {o.remote for sc in sidecars for o in sc.outputs}
    from dvc_secure.services.retention import active_holds

    inv = build_inventory(checked.revision, sidecars, checked.keyring,
                          remote_locations(root / ".dvc", names),
                          when.strftime("%Y-%m-%dT%H:%M:%SZ"), when.date(),
                          active_holds(root, checked.keyring))
    result.inventory = inv
    if croissant:
        files = SealedFiles(root)
        manifests: dict[tuple[str, str], ManifestFiles] = {}
        for sc in sidecars:
            for out in sc.outputs:
                if out.is_dir:
                    listed = files.manifest(out)
                    if listed is not None:
                        manifests[(sc.metafile, out.path)] = listed
        result.missing_manifests = files.missing
        result.croissant = to_croissant(inv, f"{root.name}@{checked.revision[:12]}", manifests)
    return result
