"""The ONLY module that patches DVC internals (DESIGN.md §3).

Three patches, each checking the shape of what it changes and refusing loudly on a
surprise (RegistrationError), each idempotent:

1. ``dvc_objects.fs.known_implementations``: the ``secure`` scheme -> our filesystem
   (and ``dvc_objects.fs.generic.as_atomic``: no move of a download we refused, see
   :func:`patch_atomic_download`).
2. the ``ByUrl`` closure behind ``dvc.config_schema.SCHEMA["remote"][str]`` (and
   ``REMOTE_SCHEMAS`` where it exists): a schema for ``secure://`` remotes, and a guard on
   the local schema that refuses ``secure:`` URLs without a remote name, which DVC would
   otherwise accept as plaintext local paths.
3. ``dvc.fs._resolve_remote_refs``: ``secure://name/sub`` resolves the wrapped remote
   ``name`` (like DVC's own ``remote://``) and hands its configuration to our filesystem.
   Every DVC command resolves a remote here before it builds a filesystem, so this is
   also where the remote pin of the signed keyring is enforced (``remote_pin``): a secure
   remote must match its pinned definition, and a named plain remote in a repository
   whose policy pins its remotes is marked so that every remote schema (2.) refuses it
   when DVC builds its filesystem — before any byte leaves.
"""

from __future__ import annotations

import inspect
import logging
import os
import re
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any
from urllib.parse import urlparse

from dvc_secure.adapters.local.plugin_manifest import load_manifest, parse_version
from dvc_secure.errors import ConfigurationError, RegistrationError

logger = logging.getLogger("dvc_secure")

_MARK = "_dvc_secure_patched"
TARGET_MODULES = ("dvc_objects.fs", "dvc.config_schema", "dvc.fs")


def _shape_error(what: str) -> RegistrationError:
    import dvc

    m = load_manifest()
    return RegistrationError(
        f"dvc-secure cannot register with DVC {getattr(dvc, '__version__', '?')}: {what}",
        hint=f"install a DVC release between {'.'.join(map(str, m.min_dvc))} and "
        f"{'.'.join(map(str, m.max_dvc))} (see .dvc-plugin.toml), or upgrade dvc-secure",
    )


# --- 1. filesystem registry --------------------------------------------------------------


def patch_fs_registry(module: ModuleType) -> None:
    m = load_manifest()
    table = getattr(module, "known_implementations", None)
    if not isinstance(table, dict) or not isinstance(table.get("s3"), dict) or "class" not in table["s3"]:
        raise _shape_error("dvc_objects.fs.known_implementations is not the expected dict")
    entry = {"class": m.filesystem, "err": "secure is supported, but requires 'dvc-secure'"}
    current = table.get(m.scheme)
    if current is not None and current.get("class") != m.filesystem:
        raise _shape_error(f"another plugin already registered the '{m.scheme}' scheme")
    table[m.scheme] = entry
    generic = getattr(module, "generic", None)
    if isinstance(generic, ModuleType):
        patch_atomic_download(generic)


class _NothingToMove(Exception):
    pass


def patch_atomic_download(generic: ModuleType) -> None:
    """``dvc_objects.fs.generic.as_atomic``: skip the final move of a download that a secure
    remote refused (tampered object, …). DVC reports the failure through its error handler
    and then moves the temporary file into the cache; our filesystem writes no file for a
    rejected object, so that move raised FileNotFoundError, an "unexpected error" (exit
    255) after the clear message, instead of DVC's "N files failed" (exit 1). Only paths
    our filesystem marked as failed are skipped. A different shape: left alone (this is a
    message fix, nothing is accepted that would not be)."""
    import contextlib

    from dvc_secure.adapters.dvc import service_hooks

    original = getattr(generic, "as_atomic", None)
    if original is None or getattr(original, _MARK, False):
        return
    try:
        params = list(inspect.signature(original).parameters)
    except (TypeError, ValueError):
        return
    if params[:3] != ["fs", "to_info", "create_parents"]:
        logger.debug("dvc-secure: dvc_objects as_atomic has another shape; not patched")
        return

    @contextlib.contextmanager
    def as_atomic(fs: Any, to_info: Any, create_parents: bool = False) -> Any:
        try:
            with original(fs, to_info, create_parents=create_parents) as tmp:
                yield tmp
                if service_hooks.was_failed_download(tmp) and not fs.exists(tmp):
                    raise _NothingToMove
        except _NothingToMove:
            return

    setattr(as_atomic, _MARK, True)
    as_atomic.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(generic, "as_atomic", as_atomic)  # noqa: B010 - module attribute patch


# --- 2. config schema ------------------------------------------------------------------------


def _closure_schemas(validator: Callable[..., Any]) -> dict[str, Any]:
    for cell in getattr(validator, "__closure__", None) or ():
        try:
            value = cell.cell_contents
        except ValueError:
            continue
        if isinstance(value, dict) and "" in value and "s3" in value:
            return value
    raise _shape_error("the remote URL validator (ByUrl) no longer keeps its schemas in a closure")


def secure_schema(config_schema: ModuleType) -> dict[Any, Any]:
    from voluptuous import Any as AnyOf
    from voluptuous import Optional

    m = load_manifest()
    common = getattr(config_schema, "REMOTE_COMMON", None)
    bool_type = getattr(config_schema, "Bool", None)
    if not isinstance(common, dict) or bool_type is None:
        raise _shape_error("dvc.config_schema has no REMOTE_COMMON / Bool")
    types = {"bool": bool_type, "str": str, "int": int}
    schema: dict[Any, Any] = dict(common)
    for opt in m.options:
        schema[Optional(opt.name, default=opt.default)] = types[opt.type]
    # filled in by the resolver below, never by users
    schema[Optional("secure_inner")] = dict
    schema[Optional("secure_dvc_dir")] = AnyOf(str, None)
    return schema


# set by the resolver (3.) on a plain named remote the signed remote pin forbids; every
# remote schema refuses a configuration that carries it, so DVC cannot build its
# filesystem (``dvc doctor``, which only asks for the protocol, still works)
REFUSED_KEY = "secure_refused"


def _refused(data: Any) -> None:
    from voluptuous import Invalid

    reason = data.get(REFUSED_KEY) if isinstance(data, dict) else None
    if reason is not None:
        raise Invalid(str(reason))


class _RefusePinnedPlain:
    """Wraps a plain scheme's schema: refuses a remote the resolver marked (REFUSED_KEY)."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        setattr(self, _MARK, True)

    def __call__(self, data: Any) -> Any:
        _refused(data)
        return self.schema(data)


class _RefuseNamelessSecure:
    """Wraps DVC's local-path schema: ``secure:///x`` or ``secure:x`` must never be a path."""

    def __init__(self, local: Any, scheme: str) -> None:
        self.local = local
        self.scheme = scheme
        setattr(self, _MARK, True)

    def _nameless(self, url: str) -> bool:
        if urlparse(url).scheme == self.scheme:
            return True
        # DVC rewrites a relative local path before this schema sees it: ``secure:x`` is
        # validated as ``/repo/.dvc/secure:x`` (load) or ``../secure:x`` (dvc remote add).
        # So any path component starting with ``secure:`` is refused too.
        prefix = f"{self.scheme}:"
        return any(part.lower().startswith(prefix) for part in re.split(r"[\\/]", url))

    def __call__(self, data: Any) -> Any:
        from voluptuous import Invalid

        _refused(data)
        url = data.get("url") if isinstance(data, dict) else None
        if isinstance(url, str) and self._nameless(url):
            raise Invalid(
                f"'{url}' has no remote name: secure remotes are written "
                f"{self.scheme}://<remote-name>[/sub/path]; refusing to treat it as a local path, "
                "where DVC would store plaintext"
            )
        return self.local(data)


def patch_config_schema(module: ModuleType) -> None:
    from voluptuous import Schema

    m = load_manifest()
    try:
        validator = module.SCHEMA["remote"][str]
    except (AttributeError, KeyError, TypeError):
        raise _shape_error("dvc.config_schema.SCHEMA['remote'][str] is missing") from None
    schemas = _closure_schemas(validator)
    schema = secure_schema(module)
    if not getattr(schemas[""], _MARK, False):
        schemas[""] = _RefuseNamelessSecure(schemas[""], m.scheme)
    for scheme, plain in list(schemas.items()):
        if scheme not in ("", m.scheme) and not getattr(plain, _MARK, False):
            schemas[scheme] = _RefusePinnedPlain(plain)
    schemas[m.scheme] = Schema(schema)
    remote_schemas = getattr(module, "REMOTE_SCHEMAS", None)
    if remote_schemas is not None:  # DVC >= 3.64 also exposes the raw table
        if not isinstance(remote_schemas, dict):
            raise _shape_error("dvc.config_schema.REMOTE_SCHEMAS is not a dict")
        remote_schemas[m.scheme] = schema


# --- 3. remote reference resolution -------------------------------------------------------


def patch_fs_module(module: ModuleType) -> None:
    from dvc_secure.adapters.dvc import remote_pin
    from dvc_secure.adapters.dvc.compat import DvcSecureDvcError
    from dvc_secure.adapters.dvc.storage_names import parse_secure_url

    m = load_manifest()
    original = getattr(module, "_resolve_remote_refs", None)
    if original is None or not callable(original):
        raise _shape_error("dvc.fs._resolve_remote_refs is missing")
    if getattr(original, _MARK, False):
        return
    if list(inspect.signature(original).parameters) != ["config", "remote_conf"]:
        raise _shape_error("dvc.fs._resolve_remote_refs(config, remote_conf) changed signature")
    get_fs_config = getattr(module, "get_fs_config", None)
    if get_fs_config is None:
        raise _shape_error("dvc.fs.get_fs_config is missing")
    # the remote pin is enforced here only if every named remote resolves through it
    if "_resolve_remote_refs" not in getattr(getattr(get_fs_config, "__code__", None),
                                             "co_names", ()):
        raise _shape_error("dvc.fs.get_fs_config no longer resolves remotes through "
                           "_resolve_remote_refs")

    def _resolve_remote_refs(config: Any, remote_conf: Any) -> Any:
        url = remote_conf.get("url") if isinstance(remote_conf, dict) else None
        if not isinstance(url, str) or urlparse(url).scheme != m.scheme:
            # a plain remote: marked refused when the signed policy pins the remotes, so
            # the schema check in get_cloud_fs refuses to build its filesystem (a marked
            # configuration validates nowhere: unknown keys are refused by every schema)
            try:
                reason = remote_pin.plain_refusal(config, remote_conf)
            except ConfigurationError as exc:
                raise DvcSecureDvcError(exc) from None
            resolved = original(config, remote_conf)
            if reason is not None and isinstance(resolved, dict):
                return {**resolved, REFUSED_KEY: reason}
            return resolved
        try:
            name, sub = parse_secure_url(url)
            with remote_pin.resolving_wrapped():
                base = module.get_fs_config(config, name=name)
            if urlparse(str(base.get("url", ""))).scheme == m.scheme:
                raise ConfigurationError(
                    f"secure remote '{url}' wraps '{name}', which is itself a secure remote",
                    hint="point secure:// at a plain storage remote (local, s3, ssh, …)",
                )
            # before any filesystem exists: the definition must be the signed pin's
            remote_pin.check_secure(config, remote_conf, name,
                                    "/".join(p for p in sub.split("/") if p), base)
        except ConfigurationError as exc:
            raise DvcSecureDvcError(exc) from None
        return {
            **remote_conf,
            "secure_inner": dict(base),
            "secure_dvc_dir": _local_dvc_dir(config),
        }

    setattr(_resolve_remote_refs, _MARK, True)
    _resolve_remote_refs.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(module, "_resolve_remote_refs", _resolve_remote_refs)  # noqa: B010 - module attribute patch


def _is_within(path: str, root: str) -> bool:
    path, root = os.path.realpath(path), os.path.realpath(root)
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _local_dvc_dir(config: Any) -> str | None:
    """The repository's ``.dvc`` directory on this machine, or None. DVC reads another
    repository (``dvc get/import/ls URL``) through a git filesystem whose root is ``/``:
    its ``dvc_dir`` is then ``/.dvc`` *inside that tree*, not a local path, and must not
    be used for the keyring or the push journal (which would be created at ``/.dvc``)."""
    local = getattr(config, "local_dvc_dir", None)
    if local and _is_within(os.getcwd(), os.path.dirname(os.path.abspath(str(local)))):
        # the .dvc directory of the clone this command runs in: for an older revision
        # (dvc push --all-commits) ``dvc_dir`` is a path inside git's tree ("/.dvc"). A
        # repository DVC only reads (dvc get/import URL) is a temporary clone elsewhere.
        return str(local)
    dvc_dir = getattr(config, "dvc_dir", None)
    fs, wfs = getattr(config, "fs", None), getattr(config, "wfs", None)
    if dvc_dir is None or (fs is not None and wfs is not None
                           and not isinstance(fs, type(wfs))):
        return None
    return str(dvc_dir)


# --- entry points ------------------------------------------------------------------------------

PATCHES: dict[str, Callable[[ModuleType], None]] = {
    "dvc_objects.fs": patch_fs_registry,
    "dvc.config_schema": patch_config_schema,
    "dvc.fs": patch_fs_module,
}


def check_dvc_version() -> None:
    import dvc

    m = load_manifest()
    version = parse_version(getattr(dvc, "__version__", "0"))
    if not (m.min_dvc <= version and version[:1] < (m.below_major,)):
        raise _shape_error(f"DVC {dvc.__version__} is outside the supported range")
    if version[:3] > m.max_dvc:
        warnings.warn(
            f"dvc-secure was tested up to DVC {'.'.join(map(str, m.max_dvc))}; "
            f"DVC {dvc.__version__} passed the registration shape checks",
            stacklevel=2,
        )


def patch_module(name: str, module: ModuleType) -> None:
    """Apply the patch for one freshly imported module (called by the import hook)."""
    PATCHES[name](module)


def register() -> None:
    """Explicit, idempotent registration (for processes that imported DVC before the hook)."""
    import importlib

    check_dvc_version()
    for name in TARGET_MODULES:
        PATCHES[name](importlib.import_module(name))


def is_registered() -> bool:
    import dvc.fs
    import dvc_objects.fs

    m = load_manifest()
    resolver = getattr(dvc.fs, "_resolve_remote_refs", None)
    return m.scheme in dvc_objects.fs.known_implementations and bool(
        getattr(resolver, _MARK, False)
    )
