"""What erasure records and legal holds share: a signed envelope about one key domain,
stored in git at ``.dvc/secure/<kind>/<domain>.json`` and accepted only when enough
admins of the keyring signed it (docs/spec/erasure.md). Pure."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from dvc_secure.core.format.domain_keys import DOMAIN_NAME
from dvc_secure.core.format.primitives import SigningKeyPair, valid_signers
from dvc_secure.core.records import envelope
from dvc_secure.errors import ErasureError

_R = TypeVar("_R", bound="DomainRecord")
_DATE_TIME_LEN = 20  # YYYY-MM-DDTHH:MM:SSZ


def bad_record(where: str, what: str) -> ErasureError:
    return ErasureError(f"record {where}: {what}",
                        hint="restore the record from git history, or have an admin write it again")


@dataclass(frozen=True)
class DomainRecord:
    """The signed part (``signed``, the JSON object) and its signatures."""

    signed: Mapping[str, Any]
    signatures: envelope.Signatures = ()

    FORMAT = ""
    LABEL = b""

    @property
    def domain(self) -> str:
        return str(self.signed["domain"])

    @property
    def keyring_id(self) -> str:
        return str(self.signed["keyring_id"])

    @property
    def created(self) -> str:
        return str(self.signed["created"])

    @property
    def reason(self) -> str:
        return str(self.signed["reason"])

    @property
    def by(self) -> str:
        return str(self.signed["by"])

    def canonical_bytes(self) -> bytes:
        return envelope.canonical(dict(self.signed))

    def to_bytes(self) -> bytes:
        return envelope.file_bytes(dict(self.signed), self.signatures)

    @property
    def record_id(self) -> str:
        """Short id for messages: the first 16 hex digits of SHA-256(canonical bytes)."""
        return hashlib.sha256(self.canonical_bytes()).hexdigest()[:16]

    def sign(self: _R, key: SigningKeyPair) -> _R:
        sigs = envelope.add_signature(self.signatures, key, self.LABEL + self.canonical_bytes())
        return type(self)(self.signed, sigs)

    def valid_signers(self, keys: Mapping[str, bytes]) -> list[str]:
        return valid_signers(self.signatures, keys, self.LABEL + self.canonical_bytes())

    @classmethod
    def parse(cls, data: bytes, where: str, version: int) -> tuple[dict[str, Any], envelope.Signatures]:
        doc, s = envelope.open_envelope(data, where, cls.FORMAT, bad_record)
        if s.get("version") != version:
            raise bad_record(where, f"version {s.get('version')!r} is not supported (upgrade dvc-secure)")
        envelope.keyring_id_of(s, where, bad_record)
        created, objects = envelope.created_and_objects(s, where, bad_record)
        if len(created) != _DATE_TIME_LEN or created[10] != "T" or not created.endswith("Z"):
            raise bad_record(where, "'created' must be YYYY-MM-DDTHH:MM:SSZ")
        if not all(isinstance(o, str) and o for o in objects) or len(set(objects)) != len(objects):
            raise bad_record(where, "'objects' must be a list of distinct object ids")
        if objects != sorted(objects):
            raise bad_record(where, "'objects' must be sorted")
        epoch = s.get("epoch")
        if not isinstance(epoch, int) or isinstance(epoch, bool) or not 1 <= epoch < 1 << 32:
            raise bad_record(where, "'epoch' must be an integer >= 1")
        domain = s.get("domain")
        if not isinstance(domain, str) or not DOMAIN_NAME.match(domain):
            raise bad_record(where, "'domain' must be a valid domain name")
        for key in ("reason", "by"):
            if not isinstance(s.get(key), str) or not s[key].strip():
                raise bad_record(where, f"'{key}' must be a non-empty string")
        return s, envelope.signatures_of(doc, where, bad_record)

    def problems(self, keyring_id: str, admin_keys: Mapping[str, bytes], threshold: int,
                 file_domain: str | None, where: str) -> list[str]:
        """Why this record may not be used (empty: it may). ``file_domain``: from the file
        name; a record copied onto another domain's name is refused."""
        out = []
        if file_domain is not None and file_domain != self.domain:
            out.append(f"{where} is stored as domain '{file_domain}' but is about "
                       f"'{self.domain}' (replayed onto another domain)")
        if self.keyring_id != keyring_id:
            out.append(f"{where} belongs to another keyring")
        signers = self.valid_signers(admin_keys)
        if len(signers) < max(threshold, 1):
            out.append(f"{where} is signed by {len(signers)} admin(s) of the keyring; "
                       f"{max(threshold, 1)} needed")
        return out
