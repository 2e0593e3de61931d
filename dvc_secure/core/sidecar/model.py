"""Sidecar records: one signed, git-tracked ``<metafile>.seal`` beside each DVC metafile.

Pure model in the style of python-tuf's metadata classes: one typed class per format
object, ``from_dict``/``to_dict``, unknown fields preserved, canonical bytes for signing
and pretty bytes for git. Format: docs/spec/sidecar.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, cast

from dvc_secure.core.format.domain_keys import DOMAIN_NAME
from dvc_secure.core.format.primitives import SigningKeyPair, valid_signers
from dvc_secure.core.keys.identity import key_fingerprint
from dvc_secure.core.sidecar.canonical import canonical_json
from dvc_secure.errors import SidecarError

SIDECAR_FORMAT = "dvc-secure-sidecar"
SIDECAR_SPEC_VERSION = 1
SIDECAR_SUFFIX = ".seal"
SIGN_LABEL = b"dvc-secure/v1/sidecar-signature\x00"
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def sidecar_path_for(metafile: str) -> str:
    return metafile + SIDECAR_SUFFIX


def _get(d: dict[str, Any], key: str, typ: type | tuple[type, ...], where: str) -> Any:
    if key not in d:
        raise SidecarError(f"{where}: missing '{key}'")
    value = d[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        names = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise SidecarError(f"{where}: '{key}' must be {names}")
    return value


@dataclass(frozen=True)
class SealedOutput:
    """What a sidecar pins for one DVC output."""

    path: str
    oid: str  # DVC's object id (md5, with ".dir" for directories)
    sha256: str  # file: SHA-256 of the content; directory: SHA-256 of its manifest
    size: int
    nfiles: int
    key_epoch: int
    remote: str
    hash_name: str = "md5"
    remote_index: str | None = None  # SHA-256 of the remote index (docs/spec/sidecar.md)
    unknown: tuple[tuple[str, Any], ...] = ()

    @property
    def is_dir(self) -> bool:
        return self.oid.endswith(".dir")

    def to_dict(self) -> dict[str, Any]:
        return {**dict(self.unknown), "oid": self.oid, "hash": self.hash_name,
                "sha256": self.sha256, "size": self.size, "nfiles": self.nfiles,
                "key_epoch": self.key_epoch, "remote": self.remote,
                "remote_index": self.remote_index}

    @classmethod
    def from_dict(cls, path: str, d: Any) -> SealedOutput:
        where = f"output '{path}'"
        if not isinstance(d, dict):
            raise SidecarError(f"{where} must be an object")
        sha = _get(d, "sha256", str, where)
        if not _HEX64.match(sha):
            raise SidecarError(f"{where}: sha256 must be 64 lowercase hex digits")
        size, nfiles = _get(d, "size", int, where), _get(d, "nfiles", int, where)
        epoch = _get(d, "key_epoch", int, where)
        if size < 0 or nfiles < 0 or epoch < 1:
            raise SidecarError(f"{where}: size/nfiles must be >= 0 and key_epoch >= 1")
        remote_index = d.get("remote_index")
        if remote_index is not None and (not isinstance(remote_index, str) or not _HEX64.match(remote_index)):
            raise SidecarError(f"{where}: remote_index must be null or 64 lowercase hex digits")
        known = {"oid", "hash", "sha256", "size", "nfiles", "key_epoch", "remote", "remote_index"}
        return cls(path=path, remote_index=remote_index, oid=_get(d, "oid", str, where), sha256=sha, size=size,
                   nfiles=nfiles, key_epoch=epoch, remote=_get(d, "remote", str, where),
                   hash_name=_get(d, "hash", str, where),
                   unknown=tuple(sorted((k, v) for k, v in d.items() if k not in known)))


@dataclass(frozen=True)
class AccessMetadata:
    classification: str = "confidential"
    owner: str = ""
    purpose: str = ""
    delete_after: str | None = None
    readers: tuple[str, ...] = ()
    domain: str | None = None  # key domain (docs/erasure.md); None: the repository's default

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"classification": self.classification, "owner": self.owner,
                             "purpose": self.purpose, "delete_after": self.delete_after,
                             "readers": list(self.readers)}
        if self.domain is not None:
            d["domain"] = self.domain
        return d

    @classmethod
    def from_dict(cls, d: Any) -> AccessMetadata:
        if not isinstance(d, dict):
            raise SidecarError("access must be an object")
        cls_ = _get(d, "classification", str, "access")
        if cls_ not in CLASSIFICATIONS:
            raise SidecarError(f"access: classification must be one of {', '.join(CLASSIFICATIONS)}")
        delete_after = d.get("delete_after")
        if delete_after is not None and (not isinstance(delete_after, str) or not _DATE.match(delete_after)):
            raise SidecarError("access: delete_after must be null or YYYY-MM-DD")
        readers = d.get("readers", [])
        if not isinstance(readers, list) or not all(isinstance(r, str) for r in readers):
            raise SidecarError("access: readers must be a list of names")
        domain = d.get("domain")
        if domain is not None and (not isinstance(domain, str) or not DOMAIN_NAME.match(domain)):
            raise SidecarError("access: domain must be absent or a key domain name")
        return cls(classification=cls_, owner=str(d.get("owner", "")),
                   purpose=str(d.get("purpose", "")), delete_after=delete_after,
                   readers=tuple(readers), domain=domain)


@dataclass(frozen=True)
class Sidecar:
    """The signed part of a sidecar plus its signatures."""

    metafile: str
    version: int
    previous: tuple[str, ...]
    sealed_at: str
    signer_keyid: str
    git_author: str
    outputs: tuple[SealedOutput, ...]
    access: AccessMetadata
    signatures: tuple[tuple[str, str], ...] = ()
    unknown: tuple[tuple[str, Any], ...] = field(default=())

    def signed_dict(self) -> dict[str, Any]:
        return {
            **dict(self.unknown),
            "format": SIDECAR_FORMAT,
            "spec_version": SIDECAR_SPEC_VERSION,
            "metafile": self.metafile,
            "version": self.version,
            "previous": list(self.previous),
            "sealed_at": self.sealed_at,
            "sealed_by": {"keyid": self.signer_keyid, "git_author": self.git_author},
            "outputs": {o.path: o.to_dict() for o in self.outputs},
            "access": self.access.to_dict(),
        }

    def canonical_bytes(self) -> bytes:
        # memoised: instances are immutable, and history walks ask for it many times
        cached = self.__dict__.get("_canonical")
        if cached is None:
            cached = canonical_json(self.signed_dict())
            object.__setattr__(self, "_canonical", cached)
        return cast(bytes, cached)

    @property
    def digest(self) -> str:
        """Identity of this version in the chain: SHA-256 of the canonical signed bytes."""
        cached = self.__dict__.get("_digest")
        if cached is None:
            cached = hashlib.sha256(self.canonical_bytes()).hexdigest()
            object.__setattr__(self, "_digest", cached)
        return cast(str, cached)

    def to_bytes(self) -> bytes:
        """Deterministic pretty JSON for git: sorted keys, one field per line."""
        doc = {"signed": self.signed_dict(),
               "signatures": [{"keyid": k, "sig": s} for k, s in self.signatures]}
        return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=True) + "\n").encode()

    def sign(self, key: SigningKeyPair) -> Sidecar:
        sig = base64.b64encode(key.sign(SIGN_LABEL + self.canonical_bytes())).decode()
        keyid = key_fingerprint(key.public)
        others = tuple((k, s) for k, s in self.signatures if k != keyid)
        return _replace(self, signatures=(*others, (keyid, sig)))

    def valid_signers(self, keys: dict[str, bytes]) -> list[str]:
        """Key ids among ``keys`` (key id -> Ed25519 public key) with a valid signature."""
        return valid_signers(self.signatures, keys, SIGN_LABEL + self.canonical_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str) -> Sidecar:
        try:
            doc = json.loads(data)
        except ValueError as exc:
            raise SidecarError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
            raise SidecarError(f"{where}: expected {{'signed': …, 'signatures': […]}}")
        s = doc["signed"]
        if s.get("format") != SIDECAR_FORMAT:
            raise SidecarError(f"{where}: format is not '{SIDECAR_FORMAT}'")
        if s.get("spec_version") != SIDECAR_SPEC_VERSION:
            raise SidecarError(f"{where}: sidecar spec_version {s.get('spec_version')!r} is not "
                               "supported", hint="upgrade dvc-secure")
        version = _get(s, "version", int, where)
        if version < 1:
            raise SidecarError(f"{where}: version must be >= 1")
        previous = _get(s, "previous", list, where)
        if not all(isinstance(p, str) and _HEX64.match(p) for p in previous):
            raise SidecarError(f"{where}: previous must list SHA-256 hex digests")
        if (version == 1) != (not previous):
            raise SidecarError(f"{where}: version 1 has no previous digest, later versions do")
        sealed_by = _get(s, "sealed_by", dict, where)
        outputs = _get(s, "outputs", dict, where)
        sigs = doc.get("signatures", [])
        if not isinstance(sigs, list) or not all(
            isinstance(x, dict) and isinstance(x.get("keyid"), str) and isinstance(x.get("sig"), str)
            for x in sigs
        ):
            raise SidecarError(f"{where}: signatures must be a list of {{keyid, sig}}")
        known = {"format", "spec_version", "metafile", "version", "previous", "sealed_at",
                 "sealed_by", "outputs", "access"}
        return cls(
            metafile=_get(s, "metafile", str, where),
            version=version,
            previous=tuple(previous),
            sealed_at=_get(s, "sealed_at", str, where),
            signer_keyid=_get(sealed_by, "keyid", str, f"{where} sealed_by"),
            git_author=str(sealed_by.get("git_author", "")),
            outputs=tuple(SealedOutput.from_dict(p, o) for p, o in sorted(outputs.items())),
            access=AccessMetadata.from_dict(_get(s, "access", dict, where)),
            signatures=tuple((x["keyid"], x["sig"]) for x in sigs),
            unknown=tuple(sorted((k, v) for k, v in s.items() if k not in known)),
        )


def _replace(obj: Sidecar, **changes: Any) -> Sidecar:
    from dataclasses import replace

    return replace(obj, **changes)
