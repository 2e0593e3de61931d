"""DVC's remote configuration against the remote pin of the signed keyring.

``.dvc/config`` is not signed; the keyring's ``remotes`` member is (docs/spec/keyring.md
§4b). ``registration``'s patch of ``dvc.fs._resolve_remote_refs`` — the one place every
DVC command resolves a remote before it builds a filesystem — calls :func:`check_secure`
for ``secure://`` remotes and :func:`plain_refusal` for every other named remote (whose
configuration it then marks refused), so a ``.dvc/config`` edited to leak is refused
before any byte leaves. This module patches
nothing.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from dvc_secure.adapters.dvc.storage_names import parse_secure_url
from dvc_secure.adapters.local.repo_keyring import (
    keyring_path,
    load_trusted_keyrings,
    pinned_keyring,
)
from dvc_secure.core.keys.remote_policy import (
    ConfiguredRemote,
    RemotePolicy,
    SecureRemotePin,
    pin_problems,
)
from dvc_secure.errors import ConfigurationError, RemotePinError

# set while a secure remote resolves the storage remote it wraps (that one may be plain)
_WRAPPED = contextvars.ContextVar("dvc_secure_resolving_wrapped", default=False)

_FIX = ("restore .dvc/config to the pinned definition (git checkout <last good commit> -- "
        ".dvc/config); if the change is intended, an admin pins it: 'dvc-secure remote-policy'")


@contextlib.contextmanager
def resolving_wrapped() -> Iterator[None]:
    token = _WRAPPED.set(True)
    try:
        yield
    finally:
        _WRAPPED.reset(token)


def _dvc_dir(config: Any) -> str | None:
    d = getattr(config, "dvc_dir", None)
    return os.path.abspath(d) if isinstance(d, str) and d else None


def remote_name(config: Any, remote_conf: Any) -> str | None:
    """The name of the configured remote whose section ``remote_conf`` is (None: a URL)."""
    remotes = config.get("remote", {}) if isinstance(config, Mapping) else {}
    if not isinstance(remotes, Mapping):
        return None
    for name, conf in remotes.items():
        if conf is remote_conf:
            return str(name)
    for name, conf in remotes.items():
        if conf == remote_conf:
            return str(name)
    return None


_POLICIES: dict[tuple[str, int, int], RemotePolicy | None] = {}


def policy_of(dvc_dir: str) -> RemotePolicy | None:
    """The remote pin of the newest keyring this clone trusts (None: none pinned, or no
    keyring and no trust pin: not a dvc-secure repository). An untrusted keyring raises
    (fail closed); a deleted keyring does not switch the pin off while this clone's trust
    pin holds one. Cached per keyring file state: DVC resolves a remote several times."""
    path = keyring_path(dvc_dir)
    try:
        st = path.stat()
    except FileNotFoundError:
        pinned = pinned_keyring(dvc_dir)[0]
        if pinned is not None and pinned.remotes is not None:
            raise RemotePinError(
                f"{path} is missing, but this clone trusts a keyring that pins its remotes: "
                "refusing to use DVC remotes without the policy",
                hint="restore it: git checkout <last good commit> -- .dvc/secure/keyring.json"
            ) from None
        if pinned is None:
            _refuse_keyring_deleted_in_history(dvc_dir)
        return None
    key = (str(path), st.st_mtime_ns, st.st_size)
    if key not in _POLICIES:
        _POLICIES[key] = load_trusted_keyrings(dvc_dir).newest.remotes
    return _POLICIES[key]


_HISTORY_CHECKED: set[str] = set()


def _refuse_keyring_deleted_in_history(dvc_dir: str) -> None:
    """A fresh clone (no trust pin yet) of a history whose keyring a later commit deleted
    must not fall back to plain DVC: a dvc-secure history cannot be un-adopted, and the
    deleting commit may also have made a plain remote of the attacker's the default (issue
    13 item 6). One ``git log`` per process, and only for a repository without keyring."""
    if dvc_dir in _HISTORY_CHECKED:
        return
    from dvc_secure.adapters.git.plumbing import last_version_of
    from dvc_secure.adapters.local.keyring_history import KEYRING_GIT_PATH
    from dvc_secure.core.keys.keyring import Keyring
    from dvc_secure.errors import KeyringError

    found = last_version_of(Path(dvc_dir).parent, KEYRING_GIT_PATH)
    if found is not None:
        commit, data = found
        try:
            pins = data is None or Keyring.from_json(data.decode("utf-8")).remotes is not None
        except (KeyringError, UnicodeDecodeError):
            pins = True  # unreadable: fail closed
        if pins:
            raise RemotePinError(
                f"{keyring_path(dvc_dir)} is missing, but this repository's git history has a "
                f"keyring that pins its remotes (last changed in commit {commit[:10]}): a "
                "dvc-secure history cannot be un-adopted, so DVC remotes are refused without "
                "the policy (a commit that deletes the keyring may also have pointed the "
                "default remote elsewhere)",
                hint=f"restore it from before the deletion ('git log -- {KEYRING_GIT_PATH}'; "
                f"if {commit[:10]} deleted it: git checkout {commit[:10]}^ -- "
                f"{KEYRING_GIT_PATH}), then check .dvc/config with 'dvc-secure remote-policy'")
    _HISTORY_CHECKED.add(dvc_dir)


def _default(config: Any) -> str | None:
    core = config.get("core", {}) if isinstance(config, Mapping) else {}
    value = core.get("remote") if isinstance(core, Mapping) else None
    return str(value).lower() if value else None


def plain_refusal(config: Any, remote_conf: Any) -> str | None:
    """Why the named plain remote ``remote_conf`` may not be used (None: it may): in a
    repository whose signed policy pins its remotes, only a secure remote opening the
    storage it wraps may use a plain one."""
    if _WRAPPED.get():
        return None
    dvc_dir = _dvc_dir(config)
    if dvc_dir is None:
        return None
    name = remote_name(config, remote_conf)
    if name is None:
        return None  # a URL (import-url, ls-url), not one of the repository's remotes
    policy = policy_of(dvc_dir)
    if policy is None:
        return None
    pinned = ", ".join(f"{p.name} = {p.secure_url}" for p in policy.secure)
    good = policy.default or policy.secure[0].name
    return (f"DVC remote '{name}' is not a secure remote, and this repository's signed "
            f"policy pins its remotes ({pinned}): dvc-secure refuses to let DVC use it, as "
            "its data would leave this machine unencrypted and under DVC's MD5 names. "
            f"Use 'dvc push -r {good}' (and 'dvc remote default {good}'); " + _FIX)


def check_secure(config: Any, remote_conf: Any, wraps: str, subpath: str,
                 base: Mapping[str, Any]) -> None:
    """Refuse a secure remote whose definition, options or the default remote differ from
    the pin (no-op in a repository whose keyring pins no remotes)."""
    dvc_dir = _dvc_dir(config)
    if dvc_dir is None:
        return
    policy = policy_of(dvc_dir)
    if policy is None:
        return
    name = remote_name(config, remote_conf)
    if name is None:  # opened by URL: it must be exactly a pinned remote
        match = [p for p in policy.secure if (p.wraps, p.subpath) == (wraps, subpath)]
        name = match[0].name if match else f"secure://{wraps}"
    conf = remote_conf if isinstance(remote_conf, Mapping) else {}
    configured = ConfiguredRemote(
        name=name, wraps=wraps, subpath=subpath, url=str(base.get("url", "")),
        hide_names=_flag(conf.get("hide_names"), True),
        allow_gc_sealed=_flag(conf.get("allow_gc_sealed"), False))
    pin = policy.pin(name)
    if pin is not None and configured.allow_gc_sealed and not pin.allow_gc_sealed \
            and _local_gc_opt_out(dvc_dir, name):
        # the documented one-off erasure (docs/verification.md): set in this clone's
        # config.local, which no commit can write; the repository config cannot
        configured = replace(configured, allow_gc_sealed=False)
    # the default remote is not compared here: what DVC really uses is checked (this secure
    # remote against its own pin; any plain remote is refused by plain_refusal), so a changed
    # core.remote can only select another pinned secure remote. DVC also rewrites core.remote
    # internally for 'dvc push -r NAME', so comparing it would refuse legitimate pushes.
    problems = pin_problems(policy, configured, policy.default, dvc_dir)
    if problems:
        raise RemotePinError(
            f"secure remote '{name}' does not match the repository's signed remote policy: "
            f"{'; '.join(problems)}; refusing to use it (a commit to .dvc/config could "
            "otherwise redirect or weaken where your data goes)", hint=_FIX)


def _local_gc_opt_out(dvc_dir: str, name: str) -> bool:
    """Does this clone's own ``config.local`` (never in git) set allow_gc_sealed for ``name``?"""
    from dvc_secure.adapters.dvc.config_file import parse_config_text
    from dvc_secure.adapters.git import plumbing

    local = Path(dvc_dir, "config.local")
    try:
        text = local.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    root = Path(dvc_dir).parent
    tracked = plumbing.git(["ls-files", "--", str(local)], root)
    if tracked.returncode != 0 or tracked.stdout.strip():
        return False  # committed (git add -f) or unknown: not this clone's own choice
    section = parse_config_text(text, "config.local").get(f'remote "{name}"', {})
    return _flag(section.get("allow_gc_sealed"), False)


def _flag(value: Any, default: bool) -> bool:
    """A boolean option as DVC's schema reads it (raw config text before validation)."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("true", "1", "yes", "on")


def current_policy(dvc_dir: Path) -> RemotePolicy | None:
    """The remote pin that describes DVC's configuration now: every ``secure://`` remote
    (wrapped storage URL as written in the config), and the default remote if secure."""
    from dvc.config import Config

    from dvc_secure.adapters.dvc.config_file import dvc_remotes

    config = Config(dvc_dir=str(dvc_dir))
    raw = dvc_remotes(dvc_dir)
    pins = []
    for name, conf in sorted(config.get("remote", {}).items()):
        url = str(conf.get("url", ""))
        if not url.startswith("secure://"):
            continue
        wraps, subpath = parse_secure_url(url)
        wrapped_url = raw.urls.get(wraps)
        if wrapped_url is None:
            raise ConfigurationError(f"secure remote '{name}' wraps '{wraps}', which has no URL",
                                     hint=f"dvc remote add {wraps} <url>")
        pins.append(SecureRemotePin(
            name=str(name), wraps=wraps, subpath=subpath.strip("/"), url=wrapped_url,
            hide_names=_flag(conf.get("hide_names"), True),
            allow_gc_sealed=_flag(conf.get("allow_gc_sealed"), False)))
    if not pins:
        return None
    default = _default(config)
    return RemotePolicy(default=default if default in {p.name for p in pins} else None,
                        secure=tuple(pins))
