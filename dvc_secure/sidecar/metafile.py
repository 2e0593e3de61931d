"""Reading the outputs a DVC metafile (``X.dvc`` or ``dvc.lock``) declares. Pure: bytes in."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

import yaml

from dvc_secure.errors import SidecarError

LOCKFILE = "dvc.lock"


@dataclass(frozen=True)
class DeclaredOutput:
    path: str  # as written in the metafile (relative to the metafile's directory)
    oid: str  # DVC object id, ".dir" suffix for directories
    size: int | None
    nfiles: int | None
    remote: str | None


def is_metafile(path: str) -> bool:
    name = posixpath.basename(path)
    return name == LOCKFILE or (name.endswith(".dvc") and name != ".dvc")


def _load(data: bytes, where: str) -> Any:
    try:
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(data, Loader=loader)
    except yaml.YAMLError as exc:
        raise SidecarError(f"{where} is not valid YAML ({exc.__class__.__name__})") from None


def _output(entry: Any, where: str) -> DeclaredOutput | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
        raise SidecarError(f"{where}: an output has no path")
    oid = entry.get("md5") or entry.get("etag") or entry.get("checksum")
    if not isinstance(oid, str):
        return None  # not (yet) computed: nothing to seal
    size, nfiles, remote = entry.get("size"), entry.get("nfiles"), entry.get("remote")
    return DeclaredOutput(
        path=entry["path"],
        oid=oid,
        size=size if isinstance(size, int) else None,
        nfiles=nfiles if isinstance(nfiles, int) else None,
        remote=remote if isinstance(remote, str) else None,
    )


def parse_outputs(data: bytes, where: str) -> dict[str, DeclaredOutput]:
    """Output path -> declared output, for a ``.dvc`` file or a ``dvc.lock``."""
    doc = _load(data, where)
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise SidecarError(f"{where}: expected a mapping at the top level")
    entries: list[Any] = []
    if posixpath.basename(where) == LOCKFILE:
        stages = doc.get("stages") or {}
        if not isinstance(stages, dict):
            raise SidecarError(f"{where}: 'stages' must be a mapping")
        for stage in stages.values():
            if isinstance(stage, dict):
                entries.extend(stage.get("outs") or [])
    else:
        entries = doc.get("outs") or []
    if not isinstance(entries, list):
        raise SidecarError(f"{where}: 'outs' must be a list")
    out: dict[str, DeclaredOutput] = {}
    for entry in entries:
        o = _output(entry, where)
        if o is not None:
            out[o.path] = o
    return out
