"""Keys and policy for one secure remote, loaded lazily: the glue between the keyring
file, the user's identity and the object format. No DVC imports here."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from dvc_secure.errors import ConfigurationError, KeyringError
from dvc_secure.format.names import derive_name_key
from dvc_secure.format.primitives import SigningKeyPair
from dvc_secure.identity_store import identity_source, load_identity
from dvc_secure.keys.identity import Identity
from dvc_secure.keys.keyring import SIGNING_ROLES, Keyring, KeySet
from dvc_secure.repo_keyring import load_keyring


@dataclass
class RepoKeys:
    """Everything a secure remote needs from the keyring and the identity."""

    keyring: Keyring
    identity: Identity
    keyset: KeySet

    @cached_property
    def name_key(self) -> bytes:
        return derive_name_key(self.keyset.name_secret)

    @cached_property
    def writer_keys(self) -> frozenset[bytes]:
        return self.keyring.writer_keys()

    def is_trusted_signer(self, public: bytes) -> bool:
        return public in self.writer_keys

    @cached_property
    def _checked_signer(self) -> SigningKeyPair:
        return self._check_signer()

    def signer(self) -> SigningKeyPair:
        """The signing key for pushes (checked once); refuses readers with a clear message."""
        return self._checked_signer

    def _check_signer(self) -> SigningKeyPair:
        member = self.keyring.member_for(self.identity)
        if member is None or member.role not in SIGNING_ROLES or self.identity.signing is None:
            role = member.role if member else "not a member"
            raise KeyringError(
                f"your identity may not push to this secure remote (role: {role}); only "
                "writers and admins sign objects",
                hint="ask a repository admin for 'dvc-secure grant <recipient> --role writer'",
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

    def get(self) -> RepoKeys:
        if self._keys is None:
            with self._lock:
                if self._keys is None:
                    self._keys = self._load()
        return self._keys

    def _load(self) -> RepoKeys:
        if not self._dvc_dir:
            raise ConfigurationError(
                "a secure:// remote was opened outside a DVC repository, so there is no keyring",
                hint="run the command inside the repository that owns the remote",
            )
        ring = load_keyring(self._dvc_dir)
        identity = load_identity(self._env)
        try:
            keyset = ring.unwrap(identity)
        except KeyringError as exc:
            exc.message += f" [identity: {identity_source(self._env)}]"
            raise
        return RepoKeys(keyring=ring, identity=identity, keyset=keyset)
