"""The envelope every signed record shares (re-encryption, upload, incident): ``{"signed": {...},
"signatures": [{"keyid", "sig"}]}`` with canonical JSON bytes for signing, pretty bytes for
files, and the parsing rules common to them (docs/spec/reencryption.md, repair.md, incident.md).
Each record keeps its own fields, version rule and error class; checks run in this order."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.keys.identity import key_fingerprint

Bad = Callable[[str, str], Exception]  # (where, what) -> the record's own error
Signatures = tuple[tuple[str, str], ...]
COMMON_FIELDS = frozenset({"format", "version", "keyring_id", "epoch", "created", "objects"})
_KEYID = re.compile(r"[0-9a-f]{16}")
_KEYRING_ID = re.compile(r"[0-9a-f]{32}")


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def file_bytes(signed: Mapping[str, Any], signatures: Signatures) -> bytes:
    doc = {"signed": signed, "signatures": [{"keyid": k, "sig": s} for k, s in signatures]}
    return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()


def add_signature(signatures: Signatures, key: SigningKeyPair, message: bytes) -> Signatures:
    """``signatures`` with ``key``'s signature over ``message`` (replacing its earlier one)."""
    sig = base64.b64encode(key.sign(message)).decode()
    keyid = key_fingerprint(key.public)
    return (*((k, s) for k, s in signatures if k != keyid), (keyid, sig))


def open_envelope(data: bytes, where: str, fmt: str, bad: Bad) -> tuple[dict[str, Any],
                                                                         dict[str, Any]]:
    """(document, its signed part) once the JSON, the top level and ``format`` are right."""
    try:
        doc = json.loads(data)
    except ValueError:
        raise bad(where, "is not valid JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
        raise bad(where, "top level must be {'signed': ..., 'signatures': [...]}")
    signed = doc["signed"]
    if signed.get("format") != fmt:
        raise bad(where, f"'format' is not '{fmt}'")
    return doc, signed


def keyring_id_of(signed: Mapping[str, Any], where: str, bad: Bad) -> str:
    keyring_id = signed.get("keyring_id")
    if not isinstance(keyring_id, str) or not _KEYRING_ID.fullmatch(keyring_id):
        raise bad(where, "'keyring_id' must be 32 lowercase hex digits")
    return keyring_id


def created_and_objects(signed: Mapping[str, Any], where: str, bad: Bad) -> tuple[str, list[Any]]:
    created = signed.get("created")
    if not isinstance(created, str):
        raise bad(where, "'created' must be a string")
    objects = signed.get("objects")
    if not isinstance(objects, list):
        raise bad(where, "'objects' must be a list")
    return created, objects


def signatures_of(doc: Mapping[str, Any], where: str, bad: Bad) -> Signatures:
    sigs = doc.get("signatures")
    if not isinstance(sigs, list) or not all(
            isinstance(x, dict) and isinstance(x.get("keyid"), str)
            and _KEYID.fullmatch(x["keyid"]) and isinstance(x.get("sig"), str) for x in sigs):
        raise bad(where, "'signatures' must be a list of {keyid, sig}")
    return tuple((x["keyid"], x["sig"]) for x in sigs)


def unknown_fields(signed: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Members a newer writer added: kept, and covered by the signature."""
    return tuple(sorted((k, v) for k, v in signed.items() if k not in COMMON_FIELDS))
