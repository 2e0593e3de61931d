"""The remote pin: which DVC remotes a dvc-secure repository may push to, signed in the
keyring (docs/spec/keyring.md §4b).

``.dvc/config`` is an ordinary git-tracked file that anyone with push access can edit: a
commit that points ``vault`` at a plain path, switches ``core.remote`` to a plain remote or
sets ``hide_names = false`` would make the next plain ``dvc push`` leak. The keyring's
signed ``remotes`` member pins every secure remote's definition and the default remote;
the DVC adapter compares DVC's effective configuration with it before it opens a remote
(``adapters/dvc/registration.py``). Pure: parsing, canonical form, comparison.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from dvc_secure.core.format.names import NAME_ID_LEN, NAMES_V2, SUPPORTED_NAME_SCHEMES
from dvc_secure.core.format.primitives import random_bytes
from dvc_secure.errors import KeyringError

_SCHEME = re.compile(r"^\w+://")
_NAME_ID = re.compile(r"^[0-9a-f]{32}$")


def _str(d: dict[str, Any], key: str, where: str, empty: bool = False) -> str:
    value = d.get(key)
    if not isinstance(value, str) or (not empty and not value):
        raise KeyringError(f"keyring: {where}.{key} must be a {'' if empty else 'non-empty '}string")
    return value


def _bool(d: dict[str, Any], key: str, where: str) -> bool:
    value = d.get(key)
    if not isinstance(value, bool):
        raise KeyringError(f"keyring: {where}.{key} must be true or false")
    return value


@dataclass(frozen=True)
class NamesPin:
    """How a pinned secure remote names its objects (docs/spec/hidden-names.md §1): scheme 2
    with the remote's random name id; ``legacy``: objects may still be stored under the
    scheme-1 names of the repository (read, never written)."""

    scheme: int
    id: str  # 32 lowercase hex digits (16 random bytes), unique among the pinned remotes
    legacy: bool
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.unknown, "scheme": self.scheme, "id": self.id, "legacy": self.legacy}

    @property
    def id_bytes(self) -> bytes:
        return bytes.fromhex(self.id)

    @classmethod
    def from_dict(cls, d: Any, where: str) -> NamesPin:
        if not isinstance(d, dict):
            raise KeyringError(f"keyring: {where}.names must be an object")
        scheme = d.get("scheme")
        if not isinstance(scheme, int) or isinstance(scheme, bool):
            raise KeyringError(f"keyring: {where}.names.scheme must be an integer")
        if scheme not in SUPPORTED_NAME_SCHEMES or scheme != NAMES_V2:
            raise KeyringError(
                f"keyring: {where} uses hidden-name scheme {scheme}, which this dvc-secure "
                f"does not know (it reads scheme 1, the absence of 'names', and scheme 2)",
                hint="upgrade dvc-secure: pip install -U dvc-secure")
        name_id = d.get("id")
        if not isinstance(name_id, str) or not _NAME_ID.match(name_id):
            raise KeyringError(f"keyring: {where}.names.id must be 32 lowercase hex digits")
        return cls(scheme=scheme, id=name_id, legacy=_bool(d, "legacy", f"{where}.names"),
                   unknown={k: v for k, v in d.items() if k not in {"scheme", "id", "legacy"}})


@dataclass(frozen=True)
class SecureRemotePin:
    """One secure remote: ``<name>`` = ``secure://<wraps>[/<subpath>]``, ``<wraps>`` at ``url``."""

    name: str
    wraps: str
    subpath: str
    url: str  # the wrapped remote's URL as DVC's config holds it (relative: to .dvc/)
    hide_names: bool
    allow_gc_sealed: bool
    unknown: dict[str, Any] = field(default_factory=dict)
    names: NamesPin | None = None  # None: scheme 1 (pinned before name ids existed)

    def to_dict(self) -> dict[str, Any]:
        names = {"names": self.names.to_dict()} if self.names is not None else {}
        return {**self.unknown, "name": self.name, "wraps": self.wraps, "subpath": self.subpath,
                "url": self.url, "hide_names": self.hide_names,
                "allow_gc_sealed": self.allow_gc_sealed, **names}

    @classmethod
    def from_dict(cls, d: Any) -> SecureRemotePin:
        if not isinstance(d, dict):
            raise KeyringError("keyring: a pinned secure remote must be an object")
        name = _str(d, "name", "remotes.secure[]")
        where = f"remotes.secure '{name}'"
        subpath = _str(d, "subpath", where, empty=True)
        if subpath != subpath.strip("/") or "//" in subpath:
            raise KeyringError(f"keyring: {where}.subpath must have no leading, trailing or "
                               "doubled '/'")
        known = {"name", "wraps", "subpath", "url", "hide_names", "allow_gc_sealed", "names"}
        names = NamesPin.from_dict(d["names"], where) if "names" in d else None
        return cls(name=name, wraps=_str(d, "wraps", where), subpath=subpath,
                   url=_str(d, "url", where), hide_names=_bool(d, "hide_names", where),
                   allow_gc_sealed=_bool(d, "allow_gc_sealed", where),
                   unknown={k: v for k, v in d.items() if k not in known}, names=names)

    @property
    def secure_url(self) -> str:
        return f"secure://{self.wraps}" + (f"/{self.subpath}" if self.subpath else "")


@dataclass(frozen=True)
class RemotePolicy:
    """The ``remotes`` member of the keyring's signed part."""

    default: str | None
    secure: tuple[SecureRemotePin, ...]
    unknown: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.unknown, "default": self.default,
                "secure": [p.to_dict() for p in self.secure]}

    @classmethod
    def from_dict(cls, d: Any) -> RemotePolicy:
        if not isinstance(d, dict):
            raise KeyringError("keyring: remotes must be an object")
        if "default" not in d:
            raise KeyringError("keyring: remotes lacks 'default' (a remote name or null)")
        default = d["default"]
        if default is not None and (not isinstance(default, str) or not default):
            raise KeyringError("keyring: remotes.default must be a non-empty string or null")
        pins = d.get("secure")
        if not isinstance(pins, list) or not pins:
            raise KeyringError("keyring: remotes.secure must be a non-empty array")
        secure = tuple(SecureRemotePin.from_dict(p) for p in pins)
        names = [p.name for p in secure]
        if len(set(names)) != len(names):
            raise KeyringError("keyring: a pinned secure remote's name repeats")
        ids = [p.names.id for p in secure if p.names is not None]
        if len(set(ids)) != len(ids):
            raise KeyringError("keyring: two pinned secure remotes have the same names.id (they "
                               "would store objects under the same hidden names)")
        if any(p.wraps in names for p in secure):
            raise KeyringError("keyring: a pinned secure remote wraps another secure remote")
        if default is not None and default not in names:
            raise KeyringError(f"keyring: remotes.default '{default}' is not a pinned secure "
                               "remote")
        known = {"default", "secure"}
        return cls(default=default, secure=secure,
                   unknown={k: v for k, v in d.items() if k not in known})

    def pin(self, name: str) -> SecureRemotePin | None:
        return next((p for p in self.secure if p.name == name), None)

    def wrapped_names(self) -> frozenset[str]:
        return frozenset(p.wraps for p in self.secure)

    def configuration(self) -> RemotePolicy:
        """The pin without its name ids: what ``.dvc/config`` can be compared with."""
        return replace(self, secure=tuple(replace(p, names=None) for p in self.secure))


def assign_names(policy: RemotePolicy, previous: RemotePolicy | None, *, fresh: bool,
                 new_id: Callable[[], str] = lambda: random_bytes(NAME_ID_LEN).hex()
                 ) -> RemotePolicy:
    """``policy`` (DVC's configuration) with every remote's ``names``: kept from the previous
    pin of the same name; else a new random id — with ``legacy`` unless scheme-1 objects
    cannot exist there (``fresh``: a new keyring; or a remote new to a policy that already
    pinned remotes, which DVC refused to use unpinned)."""
    pins = []
    for p in policy.secure:
        old = previous.pin(p.name) if previous is not None else None
        if old is not None and old.names is not None:
            names = old.names
        else:
            legacy = not fresh and (previous is None or old is not None)
            names = NamesPin(scheme=NAMES_V2, id=new_id(), legacy=legacy)
        pins.append(replace(p, names=names))
    return replace(policy, secure=tuple(pins))


@dataclass(frozen=True)
class ConfiguredRemote:
    """A secure remote as DVC's effective configuration defines it now."""

    name: str
    wraps: str
    subpath: str
    url: str  # the wrapped remote's URL as DVC resolved it (local paths absolute)
    hide_names: bool
    allow_gc_sealed: bool


def same_url(pinned: str, actual: str, config_dir: str) -> bool:
    """Do the pinned URL (as written in ``.dvc/config``) and DVC's resolved URL name the same
    storage? URLs with a scheme compare as text without trailing ``/``; a relative local path
    is resolved against ``config_dir`` (the absolute ``.dvc`` directory), as DVC does."""
    if _SCHEME.match(pinned) or _SCHEME.match(actual):
        return pinned.rstrip("/") == actual.rstrip("/")
    if not posixpath.isabs(pinned):
        pinned = posixpath.join(config_dir, pinned)
    return posixpath.normpath(pinned) == posixpath.normpath(actual)


def pin_problems(policy: RemotePolicy, remote: ConfiguredRemote, default: str | None,
                 config_dir: str) -> list[str]:
    """How the secure remote ``remote`` (and DVC's default remote) differ from the pin."""
    pin = policy.pin(remote.name)
    if pin is None:
        return [f"secure remote '{remote.name}' is not one the repository policy pins "
                f"(pinned: {', '.join(p.name for p in policy.secure)})"]
    problems = []
    if (remote.wraps, remote.subpath) != (pin.wraps, pin.subpath):
        problems.append(f"it wraps '{remote.wraps}{'/' + remote.subpath if remote.subpath else ''}'"
                        f", the policy pins {pin.secure_url}")
    if not same_url(pin.url, remote.url, config_dir):
        problems.append(f"its storage '{remote.wraps}' is at '{remote.url}', the policy pins "
                        f"'{pin.url}'")
    if remote.hide_names != pin.hide_names:
        problems.append(f"hide_names is {str(remote.hide_names).lower()}, the policy pins "
                        f"{str(pin.hide_names).lower()}")
    if remote.allow_gc_sealed != pin.allow_gc_sealed:
        problems.append(f"allow_gc_sealed is {str(remote.allow_gc_sealed).lower()}, the policy "
                        f"pins {str(pin.allow_gc_sealed).lower()}")
    if policy.default is not None and default != policy.default:
        problems.append(f"the default remote (core.remote) is '{default or ''}', the policy "
                        f"pins '{policy.default}'")
    return problems


def mark_names_migrated(policy: RemotePolicy, remotes: Iterable[str]) -> RemotePolicy:
    """``policy`` with scheme-1 names no longer read on ``remotes`` (migration finished)."""
    wanted = set(remotes)
    unknown = sorted(wanted - {p.name for p in policy.secure if p.names is not None})
    if unknown:
        raise KeyringError(f"no pinned secure remote with its own hidden names is called "
                           f"{', '.join(repr(u) for u in unknown)}",
                           hint="'dvc-secure remote-policy' lists the pinned remotes")
    return replace(policy, secure=tuple(
        replace(p, names=replace(p.names, legacy=False))
        if p.name in wanted and p.names is not None else p for p in policy.secure))
