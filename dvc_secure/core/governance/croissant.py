"""The inventory of one revision as MLCommons Croissant 1.0 JSON-LD (pure).

Every file of every sealed dataset becomes a ``cr:FileObject`` whose ``sha256`` is the
sealed SHA-256 (a file output's digest, or the entry of a directory's sealed manifest);
every directory output also gets a ``cr:FileSet`` naming its files by glob. Required
fields and the mapping: docs/governance.md ("croissant").
"""

from __future__ import annotations

import mimetypes
import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from dvc_secure.core.governance.inventory import Inventory

CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
# the @context of Croissant 1.0 as the specification's example datasets and the reference
# implementation (mlcroissant) write it
CONTEXT: dict[str, Any] = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
OCTET = "application/octet-stream"

# (path relative to the directory output, sha256, size) of each file in a sealed manifest
ManifestFiles = Sequence[tuple[str, str, int]]


def _format_of(path: str) -> str:
    guessed, _ = mimetypes.guess_type(path, strict=False)
    return guessed or OCTET


def workspace_path(metafile: str, output: str) -> str:
    """An output's path in the workspace (outputs are relative to their metafile)."""
    return posixpath.normpath(posixpath.join(posixpath.dirname(metafile), output))


def to_croissant(inv: Inventory, name: str,
                 manifests: Mapping[tuple[str, str], ManifestFiles]) -> dict[str, Any]:
    """``manifests``: (metafile, output path) -> files of a directory output. A directory
    without its manifest is described by its FileSet only."""
    distribution: list[dict[str, Any]] = []
    for ds in inv.datasets:
        for out in ds.outputs:
            base = workspace_path(ds.metafile, str(out["path"]))
            if not out["directory"]:
                distribution.append({
                    "@type": "cr:FileObject", "@id": base, "name": base,
                    "description": f"{ds.metafile} v{ds.version} ({ds.classification})",
                    "contentUrl": base, "contentSize": f"{out['size']} B",
                    "encodingFormat": _format_of(base), "sha256": out["sha256"]})
                continue
            distribution.append({
                "@type": "cr:FileSet", "@id": base + "/", "name": base + "/",
                "description": f"{ds.metafile} v{ds.version} ({ds.classification}): "
                               f"{out['files']} file(s), manifest sha256 {out['sha256']}",
                "encodingFormat": OCTET, "includes": base + "/**"})
            for rel, sha, size in manifests.get((ds.metafile, str(out["path"])), ()):
                path = posixpath.join(base, rel)
                distribution.append({
                    "@type": "cr:FileObject", "@id": path, "name": path,
                    "contentUrl": path, "contentSize": f"{size} B",
                    "encodingFormat": _format_of(path), "sha256": sha})
    owners = sorted({ds.owner for ds in inv.datasets if ds.owner})
    sealed = sorted(ds.sealed_at for ds in inv.datasets)
    doc: dict[str, Any] = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "conformsTo": CONFORMS_TO,
        "name": name,
        "description": (f"{len(inv.datasets)} sealed dataset(s) at git revision {inv.revision}, "
                        "from verified dvc-secure sidecars: "
                        + ", ".join(ds.metafile for ds in inv.datasets)),
        "identifier": inv.revision,
        "distribution": distribution,
    }
    if owners:
        doc["creator"] = [{"@type": "sc:Person", "name": o} for o in owners]
    if sealed:
        doc["dateModified"] = sealed[-1]
    return doc


def required_problems(doc: Mapping[str, Any]) -> list[str]:
    """What a Croissant 1.0 consumer requires and ``doc`` lacks (empty: none). Checks the
    fields our output uses: context, type, conformsTo, name, description, and per
    distribution entry its type, unique @id/name, encodingFormat, and contentUrl plus a
    checksum for FileObjects / includes for FileSets."""
    problems: list[str] = []
    if doc.get("@context") != CONTEXT:
        problems.append("@context is not the Croissant 1.0 context")
    if doc.get("@type") != "sc:Dataset":
        problems.append("@type is not sc:Dataset")
    if doc.get("conformsTo") != CONFORMS_TO:
        problems.append(f"conformsTo is not {CONFORMS_TO}")
    for key in ("name", "description"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            problems.append(f"{key} missing")
    ids: set[str] = set()
    for i, entry in enumerate(doc.get("distribution") or []):
        where = f"distribution[{i}]"
        kind = entry.get("@type")
        if kind not in ("cr:FileObject", "cr:FileSet"):
            problems.append(f"{where}: @type {kind!r}")
        ident = entry.get("@id")
        if not isinstance(ident, str) or ident in ids or entry.get("name") != ident:
            problems.append(f"{where}: @id/name missing or not unique")
        ids.add(str(ident))
        if not entry.get("encodingFormat"):
            problems.append(f"{where}: encodingFormat missing")
        if kind == "cr:FileObject" and not (entry.get("contentUrl") and (
                entry.get("sha256") or entry.get("md5"))):
            problems.append(f"{where}: FileObject needs contentUrl and sha256/md5")
        if kind == "cr:FileSet" and not entry.get("includes"):
            problems.append(f"{where}: FileSet needs includes")
    return problems
