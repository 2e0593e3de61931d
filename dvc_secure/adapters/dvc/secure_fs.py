"""The DVC-facing filesystem class registered for the ``secure`` scheme (.dvc-plugin.toml).

DVC builds it from a remote's configuration (resolved by ``registration``); it opens the
wrapped storage, the repository's keys, the push journal and the gc pins, and hands every
call to :class:`~dvc_secure.adapters.dvc.secure_fsspec.SecureFsspec`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

from dvc_objects.fs.base import FileSystem

from dvc_secure.adapters.dvc import service_hooks
from dvc_secure.adapters.dvc.compat import DvcSecureDvcError, build_inner_fs, fs_join
from dvc_secure.adapters.dvc.secure_fsspec import SecureFsspec
from dvc_secure.adapters.dvc.storage_names import SCHEME, memoise, parse_secure_url
from dvc_secure.adapters.local.push_journal import PushJournal, journal_path
from dvc_secure.adapters.local.repo_keys import LazyRepoKeys, RepoKeys
from dvc_secure.errors import DvcSecureError


def _sealed_pins(dvc_dir: Path, fs: SecureFsspec) -> dict[str, str]:
    def listing(oid: str) -> list[dict[str, str]]:
        local = dvc_dir / "cache" / "files" / "md5" / oid[:2] / oid[2:]
        data = local.read_bytes() if local.is_file() else None
        if data is None:
            with fs.open(f"/files/md5/{oid[:2]}/{oid[2:]}", "rb") as f:
                data = f.read()
        entries = json.loads(data)
        return entries if isinstance(entries, list) else []

    return service_hooks.sealed_objects(dvc_dir.parent, listing)


class _DvcFacingKeys(LazyRepoKeys):
    """Keys of a remote DVC opened: a missing identity or keyring is reported by DVC as an
    error with its message and hint (exit 1), not as an "unexpected error" (exit 255)."""

    def get(self) -> RepoKeys:
        try:
            return super().get()
        except DvcSecureError as exc:
            raise DvcSecureDvcError(exc) from None


class SecureFileSystem(FileSystem):  # type: ignore[misc]
    """The DVC-facing filesystem class registered for the ``secure`` scheme."""

    protocol = SCHEME
    REQUIRES = {"dvc-secure": "dvc_secure"}  # noqa: RUF012 - DVC's own declaration style
    PARAM_CHECKSUM = None

    def __init__(self, fs: Any = None, **kwargs: Any) -> None:
        super().__init__(fs, **kwargs)

    @classmethod
    def _strip_protocol(cls, path: str) -> str:
        if "://" in path or path.startswith(f"{SCHEME}:"):
            parse_secure_url(path)
            return "/"
        return path

    def unstrip_protocol(self, path: str) -> str:
        return f"{SCHEME}://{self._config.get('secure_remote', '')}{path}"

    @staticmethod
    def _get_kwargs_from_urls(urlpath: str) -> dict[str, Any]:
        name, sub = parse_secure_url(urlpath)
        return {"secure_remote": name, "secure_subpath": sub}

    @property
    def fs(self) -> SecureFsspec:
        # cached by hand: DVC's base class declares ``fs`` as a cached_property
        cached = self.__dict__.get("_secure_fs")
        if cached is None:
            cached = self.__dict__["_secure_fs"] = self._make_fs()
        return cast(SecureFsspec, cached)

    @fs.setter
    def fs(self, value: SecureFsspec) -> None:
        self.__dict__["_secure_fs"] = value

    def _make_fs(self) -> SecureFsspec:
        conf = self._config
        inner_conf = conf.get("secure_inner")
        if not isinstance(inner_conf, dict):
            raise DvcSecureDvcError(
                DvcSecureError(
                    f"secure remote '{conf.get('secure_remote')}' was not resolved by the "
                    "dvc-secure plugin (is it installed in this Python environment?)",
                    hint="pip install dvc-secure, then check 'dvc doctor' lists 'secure'",
                )
            )
        inner, inner_path = build_inner_fs(inner_conf)
        sub = conf.get("secure_subpath") or ""
        root = fs_join(inner, inner_path, *sub.split("/")) if sub else inner_path
        seed = f"{getattr(inner, 'protocol', '')}|{inner_conf.get('url')}|{sub}"
        fs = SecureFsspec(
            inner=inner,
            inner_root=root,
            keys=_DvcFacingKeys(conf.get("secure_dvc_dir")),
            hide_names=bool(conf.get("hide_names", True)),
            fsid_seed=seed,
        )
        dvc_dir = conf.get("secure_dvc_dir")
        if dvc_dir:
            fs.journal = PushJournal(journal_path(dvc_dir))
            service_hooks.watch(dvc_dir, fs.keys)  # one push/pull audit event at exit
        if dvc_dir and not conf.get("allow_gc_sealed", False):
            fs.pins = memoise(lambda: _sealed_pins(Path(dvc_dir), fs))
        return fs

    @property
    def fsid(self) -> str:
        try:
            return self.fs.fsid
        except Exception:  # DVC silently skips a remote whose fsid raises: never raise
            return "secure_unresolved"

    def find(self, path: Any, prefix: bool = False, batch_size: int | None = None,
             **kwargs: Any) -> Iterator[str]:
        paths = [path] if isinstance(path, str) else list(path)
        for p in paths:
            yield from self.fs.find(p, prefix=prefix)

    def upload_fobj(self, fobj: IO[bytes], to_info: str, **kwargs: Any) -> None:
        self.fs.upload_stream(fobj, to_info)
