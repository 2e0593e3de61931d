"""Secrets handed to dvc-secure in the environment (CI): kept in this process only.

``DVC_SECURE_IDENTITY`` (the identity text itself) and ``DVC_SECURE_PASSPHRASE`` are taken
out of ``os.environ`` the first time dvc-secure sees them — at interpreter start-up, by
``dvc_secure._startup`` (the ``.pth`` hook), so that nothing this process starts inherits
them: not DVC's stage commands (``dvc repro``), not a chained git hook, not a tool that
logs its environment. Code that needs them reads :func:`environ` instead of ``os.environ``;
dvc-secure's own DVC child processes get them explicitly (:func:`child_env`) and take them
out of their environment in turn.

Imports nothing but ``os``: it runs in every Python process that has the variables set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

SECRET_VARS = ("DVC_SECURE_IDENTITY", "DVC_SECURE_PASSPHRASE", "DVC_SECURE_PKCS11_PIN")

_taken: dict[str, str] = {}


def take() -> None:
    """Move the secret variables from ``os.environ`` (and the C environment) into this
    process; a value set again later (e.g. by a test) replaces the one taken before."""
    for var in SECRET_VARS:
        value = os.environ.pop(var, None)
        if value is not None:
            _taken[var] = value


def forget() -> None:
    """Drop the secrets taken so far (tests that isolate the environment)."""
    _taken.clear()


def environ() -> Mapping[str, str]:
    """``os.environ`` with the secrets this process took from it."""
    take()
    if not _taken:
        return os.environ
    return {**os.environ, **_taken}


def child_env() -> dict[str, str]:
    """The environment for a dvc-secure-aware child process that needs the secrets (our own
    ``dvc push``): it takes them out of its own environment at start-up."""
    return dict(environ())
