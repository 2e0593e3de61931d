"""Where identities live (docs/spec/identity.md §4): resolution order and the 0600 rule."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dvc_secure.errors import IdentityError
from dvc_secure.identity_store import (
    ENV_IDENTITY,
    ENV_IDENTITY_FILE,
    default_identity_path,
    default_output_path,
    identity_source,
    load_identity,
    save_identity,
)
from dvc_secure.keys.identity import Identity

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def ident() -> Identity:
    return Identity.generate()


def test_keygen_file_is_mode_0600_even_with_a_permissive_umask(
    tmp_path: Path, ident: Identity
) -> None:
    path = tmp_path / "config" / "dvc-secure" / "identity.txt"
    old = os.umask(0)
    try:
        save_identity(ident, path, "now")
    finally:
        os.umask(old)
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700
    assert load_identity({ENV_IDENTITY_FILE: str(path)}) == ident


def test_keygen_refuses_to_overwrite(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "identity.txt"
    save_identity(ident, path, "now")
    other = Identity.generate()
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        save_identity(other, path, "now")
    assert load_identity({ENV_IDENTITY_FILE: str(path)}) == ident
    save_identity(other, path, "now", force=True)
    assert load_identity({ENV_IDENTITY_FILE: str(path)}) == other
    assert mode(path) == 0o600


def test_keygen_refuses_to_write_through_a_symlink(tmp_path: Path, ident: Identity) -> None:
    target = tmp_path / "elsewhere.txt"
    link = tmp_path / "identity.txt"
    link.symlink_to(target)  # dangling: exists() is False, the link is still there
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        save_identity(ident, link, "now")
    assert not target.exists()


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o660, 0o644, 0o610, 0o601])
def test_group_or_world_accessible_identity_file_refused(
    tmp_path: Path, ident: Identity, bad_mode: int
) -> None:
    path = tmp_path / "identity.txt"
    save_identity(ident, path, "now")
    path.chmod(bad_mode)
    with pytest.raises(IdentityError, match="readable by other users") as info:
        load_identity({ENV_IDENTITY_FILE: str(path)})
    assert f"chmod 600 {path}" in str(info.value)


@pytest.mark.parametrize("good_mode", [0o600, 0o400, 0o700])
def test_owner_only_modes_accepted(tmp_path: Path, ident: Identity, good_mode: int) -> None:
    path = tmp_path / "identity.txt"
    save_identity(ident, path, "now")
    path.chmod(good_mode)
    assert load_identity({ENV_IDENTITY_FILE: str(path)}) == ident


def test_resolution_order(tmp_path: Path) -> None:
    env_ident, file_ident, xdg_ident, home_ident = (Identity.generate() for _ in range(4))
    explicit = tmp_path / "explicit.txt"
    save_identity(file_ident, explicit, "now")
    xdg = tmp_path / "xdg"
    save_identity(xdg_ident, xdg / "dvc-secure" / "identity.txt", "now")
    home = tmp_path / "home"
    save_identity(home_ident, home / ".config" / "dvc-secure" / "identity.txt", "now")
    env = {
        ENV_IDENTITY: env_ident.to_text("now"),
        ENV_IDENTITY_FILE: str(explicit),
        "XDG_CONFIG_HOME": str(xdg),
        "HOME": str(home),
    }
    assert load_identity(env) == env_ident
    assert identity_source(env) == f"${ENV_IDENTITY}"
    env[ENV_IDENTITY] = ""  # empty means unset
    assert load_identity(env) == file_ident
    assert identity_source(env) == str(explicit)
    del env[ENV_IDENTITY_FILE]
    assert load_identity(env) == xdg_ident
    assert default_identity_path(env) == xdg / "dvc-secure" / "identity.txt"
    del env["XDG_CONFIG_HOME"]
    assert load_identity(env) == home_ident


def test_identity_text_from_the_environment_needs_no_file(tmp_path: Path) -> None:
    ident = Identity.generate()
    env = {ENV_IDENTITY: ident.to_text("now"), "HOME": str(tmp_path)}
    assert load_identity(env) == ident
    with pytest.raises(IdentityError, match=r"\$DVC_SECURE_IDENTITY"):
        load_identity({ENV_IDENTITY: "garbage", "HOME": str(tmp_path)})


def test_missing_identity_explains_what_to_do(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "cfg")}
    with pytest.raises(IdentityError, match="no identity found") as info:
        load_identity(env)
    assert "dvc-secure keygen" in str(info.value)


def test_keygen_writes_where_load_looks(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path), ENV_IDENTITY_FILE: str(tmp_path / "mine.txt")}
    assert default_output_path(env) == tmp_path / "mine.txt"
    del env[ENV_IDENTITY_FILE]
    assert default_output_path(env) == tmp_path / ".config" / "dvc-secure" / "identity.txt"
