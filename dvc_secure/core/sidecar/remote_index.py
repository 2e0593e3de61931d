"""Remote index: the ciphertext objects of one sealed output, as stored (pure).

Stored in plaintext on the wrapped storage at ``dvc-secure/index/<sha256>.json`` and
pinned by digest in the sidecar, so ``verify --remote`` can prove presence and integrity
of every object without any key. It lists only what the storage already knows: hidden
storage paths, ciphertext sizes and ciphertext SHA-256 — never DVC object ids.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from dvc_secure.core.sidecar.canonical import canonical_json
from dvc_secure.errors import SidecarError

INDEX_FORMAT = "dvc-secure-remote-index"
INDEX_DIR = "dvc-secure/index"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class StoredObject:
    path: str  # where the ciphertext lives, relative to the secure remote's storage root
    size: int
    sha256: str  # of the ciphertext


def index_storage_path(digest: str) -> str:
    return f"{INDEX_DIR}/{digest}.json"


def build_index(objects: list[StoredObject]) -> tuple[str, bytes]:
    doc = {
        "format": INDEX_FORMAT,
        "version": 1,
        "objects": [{"path": o.path, "size": o.size, "sha256": o.sha256}
                    for o in sorted(set(objects), key=lambda o: o.path)],
    }
    data = canonical_json(doc)
    return hashlib.sha256(data).hexdigest(), data


def parse_index(data: bytes, digest: str) -> list[StoredObject]:
    if hashlib.sha256(data).hexdigest() != digest:
        raise SidecarError(f"remote index {digest[:16]}… does not match its sealed digest")
    try:
        doc = json.loads(data)
    except ValueError:
        raise SidecarError(f"remote index {digest[:16]}… is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT or doc.get("version") != 1:
        raise SidecarError(f"remote index {digest[:16]}… has an unknown format")
    out = []
    for entry in doc.get("objects", []):
        if not (isinstance(entry, dict) and isinstance(entry.get("path"), str)
                and isinstance(entry.get("size"), int) and isinstance(entry.get("sha256"), str)
                and _HEX64.match(entry["sha256"])):
            raise SidecarError(f"remote index {digest[:16]}… has a malformed entry")
        out.append(StoredObject(entry["path"], entry["size"], entry["sha256"]))
    return out
