"""Small shims over DVC APIs that moved between 3.x releases (no patching here)."""

from __future__ import annotations

import inspect
from typing import Any

from dvc.exceptions import DvcException

from dvc_secure.errors import DvcSecureError, RegistrationError


class DvcSecureDvcError(DvcException, DvcSecureError):  # type: ignore[misc]
    """Carries a dvc-secure error through DVC, which prints DvcException messages as-is
    (anything else is an "unexpected error", exit code 255). Still a DvcSecureError, with
    the wrapped error's message, hint and exit code, for dvc-secure's own callers."""

    def __init__(self, error: DvcSecureError) -> None:
        DvcException.__init__(self, str(error))
        self.error = error
        self.message = error.message
        self.hint = error.hint
        self.exit_code = error.exit_code


def cloud_fs_getter() -> Any:
    """``(repo_config, **remote_conf) -> (cls, conf, path)`` on every DVC 3.x."""
    import dvc.fs as dvcfs

    getter = getattr(dvcfs, "get_cloud_fs", None)
    if getter is not None:
        first = next(iter(inspect.signature(getter).parameters), "")
        if first == "repo_config":  # DVC >= 3.? takes the config itself
            return getter
    legacy = getattr(dvcfs, "_get_cloud_fs", None)  # DVC 3.0 - 3.x: takes a config here
    if legacy is not None:
        first = next(iter(inspect.signature(legacy).parameters), "")
        if first == "repo_config":
            return legacy
    raise RegistrationError(
        "this DVC release has neither get_cloud_fs(repo_config, …) nor _get_cloud_fs(repo_config, …)",
        hint="install a DVC release in the range given in .dvc-plugin.toml",
    )


def build_inner_fs(inner_conf: dict[str, Any]) -> tuple[Any, str]:
    """Instantiate the wrapped remote's filesystem from its resolved configuration."""
    cls, conf, path = cloud_fs_getter()({}, **inner_conf)
    return cls(**conf), path


def fs_join(fs: Any, *parts: str) -> str:
    """``fs.join`` (dvc-objects >= 1) or ``fs.path.join`` (dvc-objects 0.x, DVC 3.0)."""
    join = getattr(fs, "join", None)
    if join is None:
        join = fs.path.join
    return str(join(*parts))
