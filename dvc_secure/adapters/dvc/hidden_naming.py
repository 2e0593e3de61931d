"""Which hidden names a secure remote uses (docs/spec/hidden-names.md §1 and §9).

The name scheme of a secure remote is part of its signed pin (``names`` in
docs/spec/keyring.md §4b), never of ``.dvc/config``: scheme 2 binds the remote's random
name id into the name key, so two secure remotes of one repository store the same object
under unrelated names. A remote pinned before name ids existed (or an unpinned one) uses
scheme 1, the repository's one name key, and says so on every push. While a pin marks
scheme-1 names as possibly still present (``legacy``), they are read, listed and deleted,
never written; ``dvc-secure migrate-names`` moves them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from dvc_secure.adapters.dvc.storage_names import join_long, split_long
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys
from dvc_secure.core.format.names import (
    NAMES_V1,
    NAMES_V2,
    derive_name_key,
    derive_remote_name_key,
    hide_name,
    reveal_name,
)
from dvc_secure.core.keys.remote_policy import RemotePolicy
from dvc_secure.errors import ConfigurationError

logger = logging.getLogger("dvc_secure")


@dataclass(frozen=True)
class RemoteNaming:
    """A secure remote's pinned name scheme (1 or 2), its name id (scheme 2), whether
    scheme-1 names may remain, and the name ids of the repository's other pinned remotes
    (a sealed remote index lists the names of the remote it was sealed on)."""

    scheme: int = NAMES_V1
    name_id: bytes | None = None
    legacy: bool = False
    remote: str = ""
    others: tuple[bytes, ...] = ()


def naming_in(policy: RemotePolicy | None, wraps: str, subpath: str) -> RemoteNaming:
    """The naming of the secure remote ``secure://<wraps>[/<subpath>]`` under ``policy``."""
    if policy is None:
        return RemoteNaming()
    match = [p for p in policy.secure if (p.wraps, p.subpath) == (wraps, subpath)]
    if len(match) > 1:
        raise ConfigurationError(
            f"the signed remote policy pins {len(match)} secure remotes on the same storage "
            f"secure://{wraps}{'/' + subpath if subpath else ''}: their hidden names would "
            "mix", hint="give each secure remote its own storage or sub path, then an admin "
            "runs 'dvc-secure remote-policy --update'")
    pin = match[0] if match else None
    others = tuple(p.names.id_bytes for p in policy.secure
                   if p.names is not None and p is not pin)
    if pin is None or pin.names is None:
        return RemoteNaming(remote=pin.name if pin else "", others=others)
    return RemoteNaming(scheme=pin.names.scheme, name_id=pin.names.id_bytes,
                        legacy=pin.names.legacy, remote=pin.name, others=others)


class Namer:
    """Storage names (relative to the storage root, long ones split) of one secure remote."""

    def __init__(self, naming: RemoteNaming, keys: LazyRepoKeys) -> None:
        self.naming = naming
        self.keys = keys
        self._keys: dict[bytes | None, bytes] = {}
        self._lock = threading.Lock()
        self._warned = False

    def _key(self, name_id: bytes | None) -> bytes:
        if name_id not in self._keys:
            secret = self.keys.get().keyset.name_secret
            key = derive_name_key(secret) if name_id is None \
                else derive_remote_name_key(secret, name_id)
            with self._lock:
                self._keys[name_id] = key
        return self._keys[name_id]

    @property
    def scheme(self) -> int:
        return self.naming.scheme

    def hidden(self, rel: str) -> str:
        """Where ``rel`` is written: its name under the remote's own scheme."""
        if self.naming.scheme == NAMES_V2:
            return split_long(hide_name(self._key(self.naming.name_id), rel, NAMES_V2))
        return split_long(hide_name(self._key(None), rel, NAMES_V1))

    def legacy(self, rel: str) -> str | None:
        """Its scheme-1 name, while the pin says such names may remain (else None)."""
        if self.naming.scheme == NAMES_V2 and self.naming.legacy:
            return split_long(hide_name(self._key(None), rel, NAMES_V1))
        return None

    def reveal(self, stored: str) -> str | None:
        """The object a stored name is, under the remote's scheme (then scheme 1 while
        legacy names may remain); None for anything else."""
        joined = join_long(stored)
        if joined is None:
            return None
        if self.naming.scheme == NAMES_V2:
            rel = reveal_name(self._key(self.naming.name_id), joined, NAMES_V2)
            if rel is not None or not self.naming.legacy:
                return rel
        return reveal_name(self._key(None), joined, NAMES_V1)

    def reveal_v1(self, stored: str) -> str | None:
        """The object a scheme-1 stored name is (migration); None for anything else."""
        joined = join_long(stored)
        return reveal_name(self._key(None), joined, NAMES_V1) if joined is not None else None

    def reveal_sealed(self, stored: str) -> str | None:
        """The object a name listed in a sealed remote index is: sealed on this remote or
        another pinned one, before or after a migration (needs the name secret)."""
        joined = join_long(stored)
        if joined is None:
            return None
        ids = [self.naming.name_id, *self.naming.others]
        for name_id in [i for i in ids if i is not None]:
            rel = reveal_name(self._key(name_id), joined, NAMES_V2)
            if rel is not None:
                return rel
        return reveal_name(self._key(None), joined, NAMES_V1)

    def warn_scheme1_write(self) -> None:
        """Say so (never silently) before a push writes scheme-1 names."""
        if self.naming.scheme == NAMES_V1 and not self._warned:
            self._warned = True
            who = f"'{self.naming.remote}'" if self.naming.remote else "this secure remote"
            logger.warning(
                "dvc-secure: %s stores objects under hidden names of scheme 1, the same on "
                "every secure remote of this repository (anyone who sees two of them can tell "
                "which objects are the same); an admin runs 'dvc-secure remote-policy "
                "--update' to give each remote its own names, then 'dvc-secure migrate-names "
                "-r <remote>' (docs/spec/hidden-names.md §9)", who)
