"""KMS providers by name (the extension point of docs/custody.md): each entry imports its
module, and through it the provider's client library, only when a keyring asks for it."""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from dvc_secure.core.keys.custody import KeyWrapper
from dvc_secure.errors import CustodyError

# provider name -> (module under dvc_secure.adapters.custody, pip extra)
PROVIDERS: Mapping[str, tuple[str, str]] = {
    "aws-kms": ("aws_kms", "aws-kms"),
    # "gcp-kms": ("gcp_kms", "gcp-kms"), "azure-kv": ("azure_kv", "azure-kv"): docs/custody.md
}

_wrappers: dict[str, KeyWrapper] = {}


def wrapper_for(provider: str) -> KeyWrapper:
    """The (process-wide, cached) key wrapper of ``provider``."""
    if provider not in _wrappers:
        if provider not in PROVIDERS:
            raise CustodyError(f"this keyring needs the KMS provider '{provider}', which this "
                               "version of dvc-secure does not know",
                               hint="upgrade dvc-secure (pip install -U dvc-secure)")
        module, _extra = PROVIDERS[provider]
        mod = importlib.import_module(f"dvc_secure.adapters.custody.{module}")
        _wrappers[provider] = mod.make_wrapper()
    return _wrappers[provider]


def forget_unwrapped() -> None:
    """Drop every cached wrapper and the secrets they unwrapped (tests; long processes)."""
    _wrappers.clear()
