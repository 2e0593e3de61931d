"""Leakage between splits: files whose sealed SHA-256 appears in more than one dataset
(pure). Also the declaration of which datasets are splits of one another
(``.dvc/secure/splits.json``, docs/governance.md)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dvc_secure.errors import ConfigurationError

SPLITS_RELPATH = "secure/splits.json"  # below .dvc/
SPLITS_FORMAT = "dvc-secure-splits"
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@dataclass(frozen=True)
class SealedFile:
    dataset: str  # "data/train.dvc", or "data/train.dvc@<rev>" across revisions
    path: str  # workspace path of the file
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "path": self.path}


@dataclass(frozen=True)
class Overlap:
    sha256: str
    size: int
    files: tuple[SealedFile, ...]

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(sorted({f.dataset for f in self.files}))

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": self.sha256, "size": self.size, "datasets": list(self.datasets),
                "files": [f.to_dict() for f in self.files]}


def find_overlaps(files: Iterable[SealedFile], include_empty: bool = False) -> list[Overlap]:
    """Groups of identical content found in two or more datasets (duplicates inside one
    dataset are not leakage). Empty files are all identical: skipped unless asked for."""
    by_digest: dict[str, list[SealedFile]] = {}
    for f in files:
        if f.sha256 == EMPTY_SHA256 and not include_empty:
            continue
        by_digest.setdefault(f.sha256, []).append(f)
    out = []
    for digest, group in by_digest.items():
        if len({f.dataset for f in group}) > 1:
            ordered = tuple(sorted(set(group), key=lambda f: (f.dataset, f.path)))
            out.append(Overlap(digest, group[0].size, ordered))
    return sorted(out, key=lambda o: (o.datasets, o.files[0].path))


@dataclass(frozen=True)
class SplitGroup:
    name: str
    datasets: tuple[str, ...]


def parse_splits(data: bytes, where: str) -> list[SplitGroup]:
    """``{"format": "dvc-secure-splits", "version": 1, "groups": [{"name": ...,
    "datasets": ["data/train.dvc", "data/test.dvc", ...]}, ...]}``; each group needs at
    least two datasets (metafile paths relative to the repository root)."""
    hint = "see docs/governance.md (splits.json)"
    try:
        doc = json.loads(data)
    except ValueError:
        raise ConfigurationError(f"{where} is not JSON", hint=hint) from None
    if not isinstance(doc, dict) or doc.get("format") != SPLITS_FORMAT or doc.get("version") != 1:
        raise ConfigurationError(f"{where}: expected format '{SPLITS_FORMAT}', version 1",
                                 hint=hint)
    groups = doc.get("groups")
    if not isinstance(groups, list) or not groups:
        raise ConfigurationError(f"{where}: 'groups' must be a non-empty list", hint=hint)
    out = []
    for i, g in enumerate(groups):
        datasets = g.get("datasets") if isinstance(g, dict) else None
        if not (isinstance(datasets, list) and len(datasets) >= 2
                and all(isinstance(d, str) and d for d in datasets)):
            raise ConfigurationError(f"{where}: group {i} needs 'datasets': two or more "
                                     "metafile paths", hint=hint)
        name = g.get("name", f"group-{i}")
        out.append(SplitGroup(str(name), tuple(datasets)))
    return out
