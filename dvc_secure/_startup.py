"""Loaded from ``dvc_secure.pth`` in every Python process: must stay cheap.

Installs a ``sys.meta_path`` finder that applies dvc-secure's registration patches right
after DVC imports the three modules they change. It never imports DVC itself and
imports nothing heavier than ``sys`` (no importlib.abc, no typing, not even
``__future__``, which is a real import at run time: ~0.1 ms in all).
"""

import sys

_TARGETS = frozenset({"dvc_objects.fs", "dvc.config_schema", "dvc.fs"})


class _PatchingLoader:
    def __init__(self, wrapped, name):  # type: ignore[no-untyped-def]
        self._wrapped = wrapped
        self._name = name

    def create_module(self, spec):  # type: ignore[no-untyped-def]
        return self._wrapped.create_module(spec)

    def exec_module(self, module):  # type: ignore[no-untyped-def]
        self._wrapped.exec_module(module)
        from dvc_secure.plugin import on_dvc_module_loaded

        on_dvc_module_loaded(self._name, module)

    def __getattr__(self, item):  # type: ignore[no-untyped-def]
        return getattr(self._wrapped, item)


class DvcSecureFinder:
    """Wraps the loader of DVC's three patched modules; ignores every other import."""

    def find_spec(self, fullname, path, target=None):  # type: ignore[no-untyped-def]
        if fullname not in _TARGETS:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _PatchingLoader(spec.loader, fullname)  # type: ignore[no-untyped-call,assignment]
                return spec
        return None

    def invalidate_caches(self) -> None:
        pass


def install() -> None:
    if not any(isinstance(f, DvcSecureFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, DvcSecureFinder())
    # DVC partly or wholly imported already (e.g. by a test runner): patch those now
    loaded = [name for name in sorted(_TARGETS) if name in sys.modules]
    if loaded:
        from dvc_secure.adapters.dvc.registration import patch_module
        from dvc_secure.plugin import connect

        for name in loaded:
            patch_module(name, sys.modules[name])
        connect()


def take_env_secrets() -> None:
    """Take DVC_SECURE_IDENTITY / DVC_SECURE_PASSPHRASE out of the environment before
    anything can start a child process (adapters/local/env_secrets.py); ``os`` is
    already imported by ``site``, the module below only when a variable is set."""
    import os

    if "DVC_SECURE_IDENTITY" in os.environ or "DVC_SECURE_PASSPHRASE" in os.environ:
        from dvc_secure.adapters.local import env_secrets

        env_secrets.take()


take_env_secrets()
install()
