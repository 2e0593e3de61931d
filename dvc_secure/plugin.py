"""Composition root: registers dvc-secure with DVC and connects the services the secure
filesystem reports to.

Layers below may not import the ones above (docs/architecture.md); this module, above them
all, hands the DVC adapter two callables that import their service only when called — it
runs inside DVC's own import, so it must import nothing heavy itself.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import ModuleType

    from dvc_secure.adapters.dvc.service_hooks import DirListing, TransferStats


def _sealed_objects(root: Path, listing: DirListing) -> dict[str, str]:
    from dvc_secure.services.history_check import sealed_objects

    return sealed_objects(root, listing)


def _transfers_done(stats: TransferStats) -> None:
    from dvc_secure.services.audit_activity import record_transfers, report_failed_uploads

    with contextlib.suppress(Exception):  # a message never turns a push into a crash at exit
        report_failed_uploads(stats)
    try:
        from dvc_secure.services.upload_records import publish_pending

        publish_pending()  # the signed upload records of what this process stored
    except Exception as exc:  # never turn a finished push into a crash at exit
        print(f"dvc-secure: warning: upload record not written ({exc.__class__.__name__}); "
              "'dvc-secure repair' writes it", file=sys.stderr)
    record_transfers(stats)


def connect() -> None:
    """Connect the DVC adapter to the services (idempotent)."""
    from dvc_secure.adapters.dvc import service_hooks

    service_hooks.connect(_sealed_objects, _transfers_done)


def on_dvc_module_loaded(name: str, module: ModuleType) -> None:
    """Called by the import hook (``_startup``) right after DVC imports a patched module."""
    from dvc_secure.adapters.dvc.registration import check_dvc_version, patch_module

    if name == "dvc.fs":
        check_dvc_version()
    patch_module(name, module)
    connect()


def register() -> None:
    """Explicit, idempotent registration for processes that imported DVC before the import
    hook could see it (some test runners): patches DVC and connects the services."""
    from dvc_secure.adapters.dvc.registration import register as patch_dvc

    patch_dvc()
    connect()
