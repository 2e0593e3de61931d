"""Keys and policy for one secure remote, loaded lazily: the glue between the keyring
file, the user's identity and the object format. No DVC imports here."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from dvc_secure.adapters.local.identity_store import identity_source, load_identity
from dvc_secure.adapters.local.repo_keyring import load_trusted_keyrings
from dvc_secure.core.format.names import NAMES_V1, derive_name_key, derive_remote_name_key
from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.core.keys.custody_fields import KMS_FIELD
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring, KeySet
from dvc_secure.core.keys.policy_changes import check_may_seal
from dvc_secure.errors import (
    AccessDeniedError,
    ConfigurationError,
    DvcSecureError,
    KeyringError,
    NoKeyForEpochError,
)


def utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


@dataclass
class RepoKeys:
    """Everything a secure remote needs from the keyring and the identity.

    ``keyring`` is the newest keyring this clone trusts (encryption, sealing and signer
    trust follow it even when an old revision is checked out); ``keyset`` holds every
    epoch key the identity gets from it and from the checked-out keyring.
    """

    keyring: Keyring
    identity: Identity
    keyset: KeySet
    # newest epoch N with a valid re-encryption record: former signers' objects of epochs
    # below N are no longer accepted (0: no re-encryption yet)
    reencrypted_to: int = 0

    @cached_property
    def name_key(self) -> bytes:
        return derive_name_key(self.keyset.name_secret)

    def remote_names(self, wraps: str, subpath: str = "") -> tuple[bytes, int]:
        """(name key, name scheme) of the secure remote the newest keyring pins on storage
        ``wraps`` (the repository's scheme-1 key where no pin gives it a name id)."""
        policy = self.keyring.remotes
        pin = next((p for p in policy.secure if (p.wraps, p.subpath) == (wraps, subpath)),
                   None) if policy is not None else None
        if pin is None or pin.names is None:
            return self.name_key, NAMES_V1
        return (derive_remote_name_key(self.keyset.name_secret, pin.names.id_bytes),
                pin.names.scheme)

    @cached_property
    def writer_keys(self) -> frozenset[bytes]:
        return self.keyring.writer_keys()

    def is_trusted_signer(self, public: bytes, epoch: int) -> bool:
        """Current writers for any epoch; removed writers only up to their last epoch, and
        not below an epoch the data was re-encrypted to since."""
        if public in self.writer_keys:
            return True
        last = self._former_signers.get(public)
        return last is not None and self.reencrypted_to <= epoch <= last

    def is_current_writer(self, public: bytes) -> bool:
        return public in self.writer_keys

    def content_check_needed(self, epoch: int | None) -> bool:
        """Could a former signer have signed an object of ``epoch``? (None: unknown.) Then its
        content must be checked against its name (adapters/dvc/content_check.py)."""
        if not self._former_signers:
            return False
        return epoch is None or epoch <= max(self._former_signers.values())

    @cached_property
    def _former_signers(self) -> dict[bytes, int]:
        return self.keyring.former_signer_epochs()

    @cached_property
    def _checked_signer(self) -> SigningKeyPair:
        return self._check_signer()

    def signer(self) -> SigningKeyPair:
        """The signing key for pushes (checked once); refuses readers with a clear message."""
        return self._checked_signer

    def _check_signer(self) -> SigningKeyPair:
        member = check_may_seal(self.keyring.member_for(self.identity), utc_today())
        if self.identity.signing is None:
            raise AccessDeniedError(
                f"your identity has no signing key, so it may not push nor seal as '{member.name}'",
                hint="use the identity file you were granted with (DVC_SECURE_IDENTITY_FILE)",
            )
        if member.signing_key != self.identity.signing_key:
            raise KeyringError(
                f"the signing key in your identity is not the one the keyring lists for "
                f"'{member.name}'",
                hint="use the identity file you were granted with (DVC_SECURE_IDENTITY_FILE)",
            )
        return self.identity.signing


class LazyRepoKeys:
    """Loads keyring + identity on first use, once per remote instance, thread-safe."""

    def __init__(self, dvc_dir: str | None, env: Mapping[str, str] | None = None) -> None:
        self._dvc_dir = dvc_dir
        self._env = env
        self._lock = threading.Lock()
        self._keys: RepoKeys | None = None

    @property
    def dvc_dir(self) -> str | None:
        return self._dvc_dir

    def loaded(self) -> RepoKeys | None:
        """The keys if :meth:`get` already loaded them (never loads: no prompt)."""
        return self._keys

    def get(self) -> RepoKeys:
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._keys = self._load()
        return self._keys

    def _load(self) -> RepoKeys:
        if not self._dvc_dir:
            raise ConfigurationError(
                "a secure:// remote was opened outside a DVC repository on this machine (e.g. "
                "by 'dvc get/import/ls' of another repository), so there is no keyring",
                hint="clone that repository (git clone) and run 'dvc pull' inside it",
            )
        rings = load_trusted_keyrings(self._dvc_dir, self._env)
        identity = load_identity(self._env)
        try:
            try:
                keyset = rings.newest.unwrap(identity)
            except NoKeyForEpochError:
                if rings.workspace is rings.newest:
                    raise
                # removed since this old revision: its epochs only, never the newest one
                old = rings.workspace.unwrap(identity)
                keyset = KeySet(old.data_keys, old.name_secret, rings.newest.current_epoch)
            else:
                if rings.workspace is not rings.newest:
                    keyset = _merge(rings.workspace, identity, keyset)
        except KeyringError as exc:
            exc.message += f" [identity: {identity_source(self._env)}]"
            raise
        # KMS-wrapped epochs (keyring.md §6a): their data keys also need the KMS, on first use
        if any(KMS_FIELD in e.unknown for r in (rings.newest, rings.workspace) for e in r.epochs):
            # imported only then: the custody modules are not needed without a KMS epoch
            from dvc_secure.adapters.custody.registry import wrapper_for
            from dvc_secure.core.keys.custody import data_keyset

            keyset = data_keyset(keyset, [rings.newest, rings.workspace], wrapper_for)
        return RepoKeys(keyring=rings.newest, identity=identity, keyset=keyset,
                        reencrypted_to=reencrypted_epoch(self._dvc_dir, rings.newest))


def reencrypted_epoch(dvc_dir: str, ring: Keyring) -> int:
    """The newest epoch the repository's data was re-encrypted to, by the valid re-encryption
    records in ``.dvc/secure/reencrypted/`` (docs/spec/reencryption.md); 0 if none. A record
    that does not verify against ``ring`` is ignored (it can only make this smaller)."""
    from pathlib import Path

    paths = sorted((Path(dvc_dir) / "secure" / "reencrypted").glob("epoch-*.json"))
    if not paths:
        return 0  # no record: nothing to check (and no need to import the record model)
    from dvc_secure.core.records.reencryption import (
        KeyringView,
        ReencryptionRecord,
        check_record,
        epoch_of_filename,
    )

    view = KeyringView(ring.keyring_id, [e.number for e in ring.epochs], ring.sealer_keys())
    newest = 0
    for path in paths:
        try:
            record = ReencryptionRecord.from_bytes(path.read_bytes(), str(path))
        except (OSError, DvcSecureError):
            continue
        if not check_record(record, view, epoch_of_filename(path.name), str(path)):
            newest = max(newest, record.epoch)
    return newest


def _merge(old: Keyring, identity: Identity, newest: KeySet) -> KeySet:
    """Keys of an older checked-out keyring too (e.g. epochs a member lost later), while
    the current epoch stays the newest keyring's: nothing is encrypted to an old epoch."""
    try:
        extra = old.unwrap(identity)
    except KeyringError:
        return newest
    return KeySet(data_keys={**extra.data_keys, **newest.data_keys},
                  name_secret=newest.name_secret, current_epoch=newest.current_epoch)
