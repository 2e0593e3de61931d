"""Where identities live: a 0600 file, or the environment (for CI secrets).

Resolution order: ``DVC_SECURE_IDENTITY`` (the identity text itself), then
``DVC_SECURE_IDENTITY_FILE`` (a path), then ``$XDG_CONFIG_HOME/dvc-secure/identity.txt``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from dvc_secure.errors import IdentityError
from dvc_secure.keys.identity import Identity

ENV_IDENTITY = "DVC_SECURE_IDENTITY"
ENV_IDENTITY_FILE = "DVC_SECURE_IDENTITY_FILE"


def default_identity_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "dvc-secure" / "identity.txt"


def default_output_path(env: Mapping[str, str] | None = None) -> Path:
    """Where ``keygen`` writes: where ``load_identity`` will look for a file."""
    env = os.environ if env is None else env
    if env.get(ENV_IDENTITY_FILE):
        return Path(env[ENV_IDENTITY_FILE])
    return default_identity_path(env)


def identity_source(env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    if env.get(ENV_IDENTITY):
        return f"${ENV_IDENTITY}"
    if env.get(ENV_IDENTITY_FILE):
        return env[ENV_IDENTITY_FILE]
    return str(default_identity_path(env))


def load_identity(env: Mapping[str, str] | None = None) -> Identity:
    env = os.environ if env is None else env
    text = env.get(ENV_IDENTITY)
    if text:
        return Identity.from_text(text, f"${ENV_IDENTITY}")
    path = Path(env[ENV_IDENTITY_FILE]) if env.get(ENV_IDENTITY_FILE) else default_identity_path(env)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise IdentityError(
            f"no identity found at {path}",
            hint="create one with 'dvc-secure keygen', or point DVC_SECURE_IDENTITY_FILE at "
            "yours (in CI, put it in the DVC_SECURE_IDENTITY secret)",
        ) from None
    if os.name == "posix" and st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise IdentityError(
            f"identity file {path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o})",
            hint=f"chmod 600 {path}",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise IdentityError(f"cannot read identity file {path}: {exc.__class__.__name__}") from None
    return Identity.from_text(text, str(path))


def write_secret_file(path: Path, text: str) -> None:
    """Create ``path`` with mode 0600 from the start (no window where it is readable)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def save_identity(identity: Identity, path: Path, created: str, force: bool = False) -> None:
    if path.exists() or path.is_symlink():
        if not force:
            raise IdentityError(
                f"{path} already exists; refusing to overwrite an identity",
                hint="use --output for a new file, or --force if you really mean to replace it",
            )
        path.unlink()
    write_secret_file(path, identity.to_text(created))
