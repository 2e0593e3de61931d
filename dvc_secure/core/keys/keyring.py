"""The repository keyring: members, and one data key per epoch wrapped to each member.

Pure model (docs/spec/keyring.md): parse, canonicalise, sign, verify, wrap and unwrap.
Unknown fields are preserved so that newer writers' additions survive a round trip.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dvc_secure.core.format.primitives import (
    AeadFailure,
    SigningKeyPair,
    random_bytes,
    valid_signers,
    x25519_unwrap,
    x25519_wrap,
)
from dvc_secure.core.keys.custody_fields import check_custody_fields, format_version
from dvc_secure.core.keys.identity import (
    Identity,
    decode_recipient,
    decode_signing_key,
    key_fingerprint,
)
from dvc_secure.core.keys.remote_policy import RemotePolicy
from dvc_secure.errors import IdentityError, KeyringError, NoKeyForEpochError

KEYRING_FORMAT = "dvc-secure-keyring"
KEYRING_VERSION = 1
ROLES = ("reader", "writer", "admin")
SIGNING_ROLES = ("writer", "admin")
WRAP_LABEL = b"dvc-secure/v1/keyring-X25519"
SIGN_LABEL = b"dvc-secure/v1/keyring-signature\x00"
SECRET_LEN = 64  # data key (32) || name secret (32)
_KEYRING_ID = re.compile(r"[0-9a-f]{32}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_date(text: str, where: str) -> dt.date:
    """A calendar date ``YYYY-MM-DD`` (the only form ``expires`` may take)."""
    if not _DATE.fullmatch(text):
        raise KeyringError(f"keyring: {where} must be a date YYYY-MM-DD, not {text!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise KeyringError(f"keyring: {where} is not a valid date ({text!r})") from None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (ValueError, TypeError):
        raise KeyringError(f"keyring: {what} is not valid base64") from None


def _require(obj: dict[str, Any], key: str, typ: type, where: str) -> Any:
    if key not in obj:
        raise KeyringError(f"keyring: {where} lacks '{key}'")
    value = obj[key]
    if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
        raise KeyringError(f"keyring: {where}.{key} must be {typ.__name__}")
    return value


def _check_key(decode: Callable[[str], bytes], text: str, where: str) -> None:
    try:
        decode(text)
    except IdentityError as exc:
        raise KeyringError(f"keyring: {where} is invalid: {exc.message}") from None


@dataclass
class Member:
    name: str
    recipient: str
    role: str
    signing_key: str | None = None
    added: str = ""
    unknown: dict[str, Any] = field(default_factory=dict)
    # last day (UTC, inclusive) the grant is valid; None: no expiry
    expires: str | None = None

    @property
    def fingerprint(self) -> str:
        return key_fingerprint(decode_recipient(self.recipient))

    @property
    def signing_keyid(self) -> str | None:
        return key_fingerprint(decode_signing_key(self.signing_key)) if self.signing_key else None

    def expired(self, today: dt.date) -> bool:
        return self.expires is not None and today > parse_date(self.expires, "expires")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {**self.unknown, "name": self.name, "recipient": self.recipient,
                             "role": self.role, "added": self.added}
        if self.signing_key:
            d["signing_key"] = self.signing_key
        if self.expires is not None:
            d["expires"] = self.expires
        return d

    @classmethod
    def from_dict(cls, d: Any) -> Member:
        if not isinstance(d, dict):
            raise KeyringError("keyring: a member must be an object")
        name = _require(d, "name", str, "member")
        recipient = _require(d, "recipient", str, f"member '{name}'")
        _check_key(decode_recipient, recipient, f"member '{name}'.recipient")
        role = _require(d, "role", str, f"member '{name}'")
        if role not in ROLES:
            raise KeyringError(f"keyring: member '{name}' has unknown role '{role}'")
        signing = d.get("signing_key")
        if signing is not None:
            if not isinstance(signing, str):
                raise KeyringError(f"keyring: member '{name}'.signing_key must be a string")
            _check_key(decode_signing_key, signing, f"member '{name}'.signing_key")
        if role in SIGNING_ROLES and not signing:
            raise KeyringError(f"keyring: {role} '{name}' has no signing key")
        expires = None
        if "expires" in d:
            expires = _require(d, "expires", str, f"member '{name}'")
            parse_date(expires, f"member '{name}'.expires")
        known = {"name", "recipient", "role", "signing_key", "added", "expires"}
        return cls(name=name, recipient=recipient, role=role, signing_key=signing,
                   added=str(d.get("added", "")), expires=expires,
                   unknown={k: v for k, v in d.items() if k not in known})


@dataclass
class FormerSigner:
    """A removed or demoted writer/admin: still trusted for objects of epochs up to
    ``last_epoch`` (so what they pushed keeps verifying), never for later ones."""

    name: str
    signing_key: str
    last_epoch: int
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.unknown, "name": self.name, "signing_key": self.signing_key,
                "last_epoch": self.last_epoch}

    @classmethod
    def from_dict(cls, d: Any) -> FormerSigner:
        if not isinstance(d, dict):
            raise KeyringError("keyring: a former signer must be an object")
        name = _require(d, "name", str, "former signer")
        signing = _require(d, "signing_key", str, f"former signer '{name}'")
        _check_key(decode_signing_key, signing, f"former signer '{name}'.signing_key")
        last = _require(d, "last_epoch", int, f"former signer '{name}'")
        if not 1 <= last < 1 << 32:
            raise KeyringError(f"keyring: former signer '{name}'.last_epoch {last} out of range")
        known = {"name", "signing_key", "last_epoch"}
        return cls(name=name, signing_key=signing, last_epoch=last,
                   unknown={k: v for k, v in d.items() if k not in known})


@dataclass
class Stanza:
    recipient: str
    ephemeral: bytes
    body: bytes
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.unknown, "recipient": self.recipient, "ephemeral": _b64(self.ephemeral),
                "body": _b64(self.body)}

    @classmethod
    def from_dict(cls, d: Any) -> Stanza:
        if not isinstance(d, dict):
            raise KeyringError("keyring: a stanza must be an object")
        eph = _unb64(_require(d, "ephemeral", str, "stanza"), "stanza.ephemeral")
        body = _unb64(_require(d, "body", str, "stanza"), "stanza.body")
        if len(eph) != 32 or len(body) != SECRET_LEN + 16:
            raise KeyringError("keyring: stanza has the wrong length")
        known = {"recipient", "ephemeral", "body"}
        return cls(recipient=_require(d, "recipient", str, "stanza"), ephemeral=eph, body=body,
                   unknown={k: v for k, v in d.items() if k not in known})


@dataclass
class Epoch:
    number: int
    created: str
    stanzas: list[Stanza]
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.unknown, "epoch": self.number, "created": self.created,
                "stanzas": [s.to_dict() for s in self.stanzas]}

    @classmethod
    def from_dict(cls, d: Any) -> Epoch:
        if not isinstance(d, dict):
            raise KeyringError("keyring: an epoch must be an object")
        number = _require(d, "epoch", int, "epoch")
        if not 1 <= number < 1 << 32:
            raise KeyringError(f"keyring: epoch number {number} out of range")
        stanzas = _require(d, "stanzas", list, f"epoch {number}")
        known = {"epoch", "created", "stanzas"}
        return cls(number=number, created=str(d.get("created", "")),
                   stanzas=[Stanza.from_dict(s) for s in stanzas],
                   unknown={k: v for k, v in d.items() if k not in known})


@dataclass(frozen=True)
class KeySet:
    """Unwrapped secrets: every epoch the identity can read, and the name secret."""

    data_keys: dict[int, bytes]
    name_secret: bytes
    current_epoch: int

    def key_for_epoch(self, epoch: int) -> bytes:
        try:
            return self.data_keys[epoch]
        except KeyError:
            raise NoKeyForEpochError(
                f"no data key for key epoch {epoch} is wrapped to your identity",
                hint="ask an admin of this repository to run 'dvc-secure grant <your recipient>'"
                " (print it with 'dvc-secure whoami'), then 'git pull'",
            ) from None

    def __repr__(self) -> str:
        return f"KeySet(epochs={sorted(self.data_keys)})"


def _keyring_id(value: str) -> str:
    if not _KEYRING_ID.fullmatch(value):
        raise KeyringError("keyring: keyring_id must be 32 lowercase hex digits")
    return value


def _wrap_label(keyring_id: str, epoch: int) -> bytes:
    return WRAP_LABEL + b"\x00" + keyring_id.encode() + b"\x00" + epoch.to_bytes(4, "big")


@dataclass
class Keyring:
    keyring_id: str
    current_epoch: int
    members: list[Member]
    epochs: list[Epoch]
    signatures: list[dict[str, str]] = field(default_factory=list)
    unknown: dict[str, Any] = field(default_factory=dict)
    # trust policy (TUF-root style): each change bumps policy_version, names its
    # predecessor's digest and must be signed by `threshold` admins of the predecessor
    threshold: int = 1
    policy_version: int = 1
    previous: str | None = None
    # writers/admins who lost the signing right, with the last epoch they could write
    former_signers: list[FormerSigner] = field(default_factory=list)
    # the secure remotes and default remote DVC may push to (remote_policy.py); None: unpinned
    remotes: RemotePolicy | None = None

    # --- construction -----------------------------------------------------------------

    @classmethod
    def create(cls, admin: Identity, admin_name: str, now: str) -> Keyring:
        if admin.signing is None:
            raise KeyringError("the initialising identity needs a signing key",
                               hint="create one with 'dvc-secure keygen'")
        member = Member(name=admin_name, recipient=admin.recipient, role="admin",
                        signing_key=admin.signing_key, added=now)
        ring = cls(keyring_id=random_bytes(16).hex(), current_epoch=1, members=[member],
                   epochs=[])
        secret = random_bytes(SECRET_LEN)
        ring.epochs.append(Epoch(1, now, [ring.wrap_to(member.recipient, 1, secret)]))
        ring.sign(admin.signing)
        return ring

    def wrap_to(self, recipient: str, epoch: int, secret: bytes) -> Stanza:
        eph, body = x25519_wrap(decode_recipient(recipient), secret, _wrap_label(self.keyring_id, epoch))
        return Stanza(recipient=recipient, ephemeral=eph, body=body)

    # --- serialisation ------------------------------------------------------------------

    def signed_part(self) -> dict[str, Any]:
        part: dict[str, Any] = {
            **self.unknown,
            "format": KEYRING_FORMAT,
            "version": format_version(self.unknown, (e.unknown for e in self.epochs), KEYRING_VERSION),
            "keyring_id": self.keyring_id,
            "policy_version": self.policy_version,
            "previous": self.previous,
            "threshold": self.threshold,
            "current_epoch": self.current_epoch,
            "members": [m.to_dict() for m in self.members],
            "epochs": [e.to_dict() for e in self.epochs],
        }
        # omitted when empty, so keyrings written before the field existed keep their bytes
        if self.former_signers:
            part["former_signers"] = [f.to_dict() for f in self.former_signers]
        if self.remotes is not None:
            part["remotes"] = self.remotes.to_dict()
        return part

    def canonical_bytes(self) -> bytes:
        return json.dumps(self.signed_part(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True).encode()

    def to_json(self) -> str:
        doc = {"signed": self.signed_part(), "signatures": self.signatures}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise KeyringError(f"keyring is not valid JSON ({exc})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("signed"), dict):
            raise KeyringError("keyring: top level must be {'signed': …, 'signatures': […]}")
        s = doc["signed"]
        if s.get("format") != KEYRING_FORMAT:
            raise KeyringError("keyring: 'format' is not 'dvc-secure-keyring'")
        version = s.get("version")
        if version not in (KEYRING_VERSION, 2):  # 2: with key custody (custody_fields.py)
            raise KeyringError(f"keyring version {version!r} is not supported",
                               hint="upgrade dvc-secure")
        sigs = doc.get("signatures", [])
        if not isinstance(sigs, list) or not all(isinstance(x, dict) for x in sigs):
            raise KeyringError("keyring: 'signatures' must be a list of objects")
        known = {"format", "version", "keyring_id", "current_epoch", "members", "epochs",
                 "threshold", "policy_version", "previous", "former_signers", "remotes"}
        former = s.get("former_signers")
        if former is not None and (not isinstance(former, list) or not former):
            raise KeyringError("keyring: former_signers must be a non-empty array when present")
        threshold = s.get("threshold", 1)
        policy_version = s.get("policy_version", 1)
        previous = s.get("previous")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise KeyringError("keyring: threshold must be an integer >= 1")
        if not isinstance(policy_version, int) or isinstance(policy_version, bool) or policy_version < 1:
            raise KeyringError("keyring: policy_version must be an integer >= 1")
        if (previous is None) != (policy_version == 1) or (
                previous is not None and not (isinstance(previous, str) and len(previous) == 64)):
            raise KeyringError("keyring: previous must be null for policy version 1 and the "
                               "64-hex digest of the predecessor after")
        ring = cls(
            threshold=threshold,
            policy_version=policy_version,
            previous=previous,
            keyring_id=_keyring_id(_require(s, "keyring_id", str, "keyring")),
            current_epoch=_require(s, "current_epoch", int, "keyring"),
            members=[Member.from_dict(m) for m in _require(s, "members", list, "keyring")],
            epochs=[Epoch.from_dict(e) for e in _require(s, "epochs", list, "keyring")],
            former_signers=[FormerSigner.from_dict(f) for f in former or []],
            remotes=RemotePolicy.from_dict(s["remotes"]) if "remotes" in s else None,
            signatures=sigs,
            unknown={k: v for k, v in s.items() if k not in known},
        )
        ring.check_consistency()
        check_custody_fields(version, ring.unknown, {e.number: e.unknown for e in ring.epochs},
                             ring.current_epoch)
        return ring

    def check_consistency(self) -> None:
        numbers = [e.number for e in self.epochs]
        if len(set(numbers)) != len(numbers):
            raise KeyringError("keyring: an epoch number repeats")
        if self.current_epoch not in numbers:
            raise KeyringError(f"keyring: current epoch {self.current_epoch} has no keys")
        if self.current_epoch != max(numbers):
            raise KeyringError("keyring: current epoch is not the newest one")
        names = [m.name for m in self.members]
        if len(set(names)) != len(names):
            raise KeyringError("keyring: a member name repeats")
        admins = sum(1 for m in self.members if m.role == "admin")
        if self.threshold > admins:
            raise KeyringError(f"keyring: threshold {self.threshold} exceeds the {admins} admin(s)")
        for f in self.former_signers:
            if f.last_epoch > self.current_epoch:
                raise KeyringError(f"keyring: former signer '{f.name}' has last_epoch "
                                   f"{f.last_epoch} after the current epoch")
        former = [f.signing_key for f in self.former_signers]
        if len(set(former)) != len(former):
            raise KeyringError("keyring: a former signer's key repeats")

    # --- signatures ---------------------------------------------------------------------

    def sign(self, signer: SigningKeyPair) -> None:
        msg = SIGN_LABEL + self.canonical_bytes()
        keyid = key_fingerprint(signer.public)
        self.signatures = [s for s in self.signatures if s.get("keyid") != keyid]
        self.signatures.append({"keyid": keyid, "sig": _b64(signer.sign(msg))})

    def admin_keys(self, as_of: dt.date | None = None) -> dict[str, bytes]:
        """``as_of``: leave out admins whose grant had expired by that date."""
        return {key_fingerprint(k): k for k in (
            decode_signing_key(m.signing_key) for m in self.members if m.role == "admin"
            and m.signing_key and not (as_of is not None and m.expired(as_of)))}

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.canonical_bytes()).hexdigest()

    @property
    def policy_id(self) -> str:
        return self.digest

    def successor(self) -> Keyring:
        """A copy to edit as the next policy version (unsigned until admins sign it)."""
        nxt = Keyring.from_json(self.to_json())
        nxt.policy_version = self.policy_version + 1
        nxt.previous = self.digest
        nxt.signatures = []
        return nxt

    def signed_by(self, admins: dict[str, bytes]) -> list[str]:
        """Key ids among ``admins`` with a valid signature over this keyring."""
        pairs = ((str(sig.get("keyid")), sig.get("sig")) for sig in self.signatures)
        return sorted(valid_signers(pairs, admins, SIGN_LABEL + self.canonical_bytes()))

    def transition_problems(self, successor: object, as_of: dt.date | None = None) -> list[str]:
        """Why ``successor`` may not follow this policy (empty: it may). ``as_of``: the date
        the change is judged on; admins whose grant had expired by then do not count."""
        if not isinstance(successor, Keyring):
            return ["the successor is not a dvc-secure keyring"]
        if successor.keyring_id != self.keyring_id:
            return ["the keyring was replaced by another one (different keyring_id)"]
        if successor.policy_version <= self.policy_version:
            return [f"policy version went from {self.policy_version} to "
                    f"{successor.policy_version} (rollback)"]
        if successor.policy_version != self.policy_version + 1:
            return [f"policy version jumped from {self.policy_version} to {successor.policy_version}"]
        problems = []
        if successor.previous != self.digest:
            problems.append("the new policy does not name its predecessor's digest")
        signers = successor.signed_by(self.admin_keys(as_of))
        if len(signers) < self.threshold:
            lapsed = sorted(m.name for m in self.members if m.signing_keyid in set(
                successor.signed_by(self.admin_keys())) - set(signers))
            problems.append(f"signed by {len(signers)} of the previous admins; the previous "
                            f"policy requires {self.threshold}" + (
                                f" (the grant of {', '.join(lapsed)} had expired by {as_of}, "
                                "the date this verifier judges the change on)" if lapsed else ""))
        return problems

    def verify_signatures(self, threshold: int | None = None) -> list[str]:
        """Key ids of admins with a valid signature; raises below the threshold."""
        threshold = self.threshold if threshold is None else threshold
        good = self.signed_by(self.admin_keys())
        if len(good) < threshold:
            raise KeyringError(
                "the repository keyring is not signed by an admin listed in it (edited by hand "
                "or tampered with)",
                hint="restore it with 'git checkout <last good commit> -- .dvc/secure/keyring.json'",
            )
        return good

    # --- access -------------------------------------------------------------------------

    def writer_keys(self) -> frozenset[bytes]:
        return frozenset(decode_signing_key(m.signing_key) for m in self.members
                         if m.role in SIGNING_ROLES and m.signing_key)

    def sealer_keys(self) -> dict[str, bytes]:
        """Trust view for verification: key id -> public key of members who may seal."""
        return {key_fingerprint(k): k for k in self.writer_keys()}

    def former_signer_epochs(self) -> dict[bytes, int]:
        """Public key -> last epoch it may have signed objects in (former writers only)."""
        return {decode_signing_key(f.signing_key): f.last_epoch for f in self.former_signers}

    def trusts_object_signer(self, public: bytes, epoch: int) -> bool:
        """May an object of key epoch ``epoch`` be signed by ``public``? Current writers:
        any epoch; former writers: only epochs they could write in."""
        if public in self.writer_keys():
            return True
        last = self.former_signer_epochs().get(public)
        return last is not None and epoch <= last

    def expired_members(self, today: dt.date) -> list[Member]:
        return [m for m in self.members if m.expired(today)]

    def holds_current_epoch(self, member: Member) -> bool:
        current = next(e for e in self.epochs if e.number == self.current_epoch)
        return any(st.recipient == member.recipient for st in current.stanzas)

    def role_of(self, keyid: str) -> str | None:
        member = self.member_by_keyid(keyid)
        return member.role if member else None

    def sealer_expiry(self, keyid: str) -> str | None:
        member = self.member_by_keyid(keyid)
        return member.expires if member else None

    def member_by_keyid(self, keyid: str) -> Member | None:
        for m in self.members:
            if m.signing_key and key_fingerprint(decode_signing_key(m.signing_key)) == keyid:
                return m
        return None

    def find_member(self, who: str) -> Member:
        """A member by name, recipient, or key fingerprint (recipient or signing key)."""
        for m in self.members:
            if who in (m.name, m.recipient, m.signing_key, m.fingerprint, m.signing_keyid):
                return m
        raise KeyringError(f"no member '{who}' in the keyring",
                           hint="list them with 'dvc-secure members'")

    def member_for(self, identity: Identity) -> Member | None:
        for m in self.members:
            if m.recipient == identity.recipient:
                return m
        return None

    def unwrap(self, identity: Identity) -> KeySet:
        data_keys: dict[int, bytes] = {}
        name_secret: bytes | None = None
        recipient = identity.recipient
        for epoch in self.epochs:
            for stanza in epoch.stanzas:
                if stanza.recipient != recipient:
                    continue
                try:
                    secret = x25519_unwrap(identity.encryption, stanza.ephemeral, stanza.body,
                                           _wrap_label(self.keyring_id, epoch.number))
                except AeadFailure:
                    raise KeyringError(
                        f"the key for epoch {epoch.number} wrapped to your recipient does not "
                        "open (keyring tampered with, or stanza copied from elsewhere)"
                    ) from None
                data_keys[epoch.number] = secret[:32]
                if name_secret is not None and name_secret != secret[32:]:
                    raise KeyringError("keyring: epochs disagree about the name secret")
                name_secret = secret[32:]
        if name_secret is None:
            raise NoKeyForEpochError(
                f"your identity ({recipient[:16]}…) is not a member of this repository's "
                f"keyring: no key for the current epoch {self.current_epoch}",
                hint="send your recipient ('dvc-secure whoami') to a repository admin and ask "
                "for 'dvc-secure grant'",
            )
        return KeySet(data_keys=data_keys, name_secret=name_secret,
                      current_epoch=self.current_epoch)





