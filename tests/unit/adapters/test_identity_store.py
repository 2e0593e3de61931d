"""Where identities live (docs/spec/identity.md §4, §7.4, §8): resolution order, the 0600
rule, passphrase sources and OS keyring pointers (a real keyring backend: keyrings.alt)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import (
    ENV_IDENTITY,
    ENV_IDENTITY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
    KeyringPointer,
    default_identity_path,
    default_output_path,
    identity_source,
    load_identity,
    protect,
    read_passphrase,
    save_identity,
    save_protected_identity,
    save_to_os_keyring,
    write_secret_file,
)
from dvc_secure.core.format.passphrase import ScryptParams
from dvc_secure.core.keys.identity import Identity
from dvc_secure.errors import IdentityError, PassphraseError

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
    assert identity_source(env) == f"file {explicit}"
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


# --- passphrase-protected files ------------------------------------------------------------

FAST = ScryptParams(log2_n=10)  # the format is the same at 18; only the cost differs
PW = "tr0ub4dor&3 horse"


def test_protected_file_round_trip_with_the_passphrase_from_the_environment(
    tmp_path: Path, ident: Identity
) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    assert mode(path) == 0o600
    assert "AGE-SECRET-KEY" not in path.read_text().upper()
    env = {ENV_IDENTITY_FILE: str(path), ENV_PASSPHRASE: PW, "HOME": str(tmp_path)}
    assert load_identity(env) == ident
    assert identity_source(env) == f"passphrase-protected file {path}"


def test_protected_identity_in_the_environment_variable(tmp_path: Path, ident: Identity) -> None:
    env = {ENV_IDENTITY: protect(ident, "now", PW, FAST), ENV_PASSPHRASE: PW, "HOME": str(tmp_path)}
    assert load_identity(env) == ident
    assert identity_source(env) == f"${ENV_IDENTITY} (passphrase-protected)"


def test_wrong_passphrase_never_yields_an_identity(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    env = {ENV_IDENTITY_FILE: str(path), ENV_PASSPHRASE: PW + "x"}
    with pytest.raises(PassphraseError, match="wrong passphrase") as info:
        load_identity(env)
    assert str(path) in str(info.value)
    assert PW not in str(info.value)


def test_passphrase_file_wins_over_the_variable(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    pw_file = tmp_path / "pw"
    write_secret_file(pw_file, PW + "\n")  # one trailing line end is not part of it
    env = {ENV_IDENTITY_FILE: str(path), ENV_PASSPHRASE_FILE: str(pw_file), ENV_PASSPHRASE: "nope"}
    assert load_identity(env) == ident


@pytest.mark.parametrize("bad_mode", [0o640, 0o604, 0o644])
def test_passphrase_file_readable_by_others_is_refused(tmp_path: Path, bad_mode: int) -> None:
    pw_file = tmp_path / "pw"
    write_secret_file(pw_file, PW)
    pw_file.chmod(bad_mode)
    with pytest.raises(PassphraseError, match="readable by other users") as info:
        read_passphrase({ENV_PASSPHRASE_FILE: str(pw_file)})
    assert f"chmod 600 {pw_file}" in str(info.value)
    assert PW not in str(info.value)


def test_passphrase_file_missing_or_empty(tmp_path: Path) -> None:
    with pytest.raises(PassphraseError, match="cannot read passphrase file"):
        read_passphrase({ENV_PASSPHRASE_FILE: str(tmp_path / "absent")})
    empty = tmp_path / "empty"
    write_secret_file(empty, "\n")
    with pytest.raises(PassphraseError, match="is empty"):
        read_passphrase({ENV_PASSPHRASE_FILE: str(empty)})


def test_no_passphrase_and_no_terminal_says_which_variable_to_set(
    tmp_path: Path, ident: Identity
) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    assert not sys.stdin.isatty()  # pytest captures stdin
    with pytest.raises(PassphraseError) as info:
        load_identity({ENV_IDENTITY_FILE: str(path)})
    assert ENV_PASSPHRASE_FILE in str(info.value)
    assert ENV_PASSPHRASE in str(info.value)


def test_prompt_is_used_when_no_variable_is_set(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    asked: list[str] = []

    def prompt(question: str) -> str:
        asked.append(question)
        return PW

    assert load_identity({ENV_IDENTITY_FILE: str(path)}, prompt=prompt) == ident
    assert asked == [f"passphrase for {path}: "]


def test_keygen_confirmation_mismatch_is_refused() -> None:
    answers = iter(["one passphrase", "another one"])
    with pytest.raises(PassphraseError, match="differ"):
        read_passphrase({}, confirm=True, prompt=lambda _q: next(answers))
    answers = iter(["same", "same"])
    assert read_passphrase({}, confirm=True, prompt=lambda _q: next(answers)) == "same"


def test_broken_envelope_is_refused_before_asking_for_the_passphrase(
    tmp_path: Path, ident: Identity
) -> None:
    text = protect(ident, "now", PW, FAST).replace("Scrypt-Log2-N: 10", "Scrypt-Log2-N: 23")
    path = tmp_path / "identity.txt"
    write_secret_file(path, text)

    def prompt(_q: str) -> str:
        raise AssertionError("asked for a passphrase for a file that cannot be opened")

    with pytest.raises(PassphraseError, match="outside"):
        load_identity({ENV_IDENTITY_FILE: str(path)}, prompt=prompt)


def test_protected_file_readable_by_others_is_refused(tmp_path: Path, ident: Identity) -> None:
    path = tmp_path / "identity.txt"
    save_protected_identity(ident, path, "now", PW, params=FAST)
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="readable by other users"):
        load_identity({ENV_IDENTITY_FILE: str(path), ENV_PASSPHRASE: PW})


def test_plain_identity_loads_without_importing_scrypt_or_keyring(
    tmp_path: Path, ident: Identity
) -> None:
    """load_identity runs in git hooks: a plain file must stay cheap."""
    path = tmp_path / "identity.txt"
    save_identity(ident, path, "now")
    code = (
        "import sys; from dvc_secure.adapters.local.identity_store import load_identity; load_identity(); "
        "bad = [m for m in ('dvc_secure.core.format.passphrase', 'keyring') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, ENV_IDENTITY_FILE: str(path)}
    env.pop(ENV_IDENTITY, None)
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- OS keyring pointers (real keyrings.alt file backend) -----------------------------------


@pytest.fixture
def os_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """A real keyring backend (keyrings.alt's plaintext file) under a temporary data dir."""
    import keyring
    from keyrings.alt import file as plaintext

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    previous = keyring.get_keyring()
    backend = plaintext.PlaintextKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


def test_keyring_pointer_round_trip(tmp_path: Path, ident: Identity, os_keyring: object) -> None:
    path = tmp_path / "identity.txt"
    pointer = save_to_os_keyring(ident, path, "now", "alice")
    text = path.read_text()
    assert text == "DVC-SECURE-OS-KEYRING v1 service=dvc-secure user=alice\n"
    assert mode(path) == 0o600
    env = {ENV_IDENTITY_FILE: str(path)}
    assert load_identity(env) == ident
    assert identity_source(env) == (
        f"OS keyring service=dvc-secure user=alice (pointer file {path})"
    )
    assert pointer == KeyringPointer("dvc-secure", "alice")


def test_keyring_entry_may_itself_be_passphrase_protected(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    path = tmp_path / "identity.txt"
    save_to_os_keyring(ident, path, "now", "bob", secret=PW, params=FAST)
    import keyring

    stored = keyring.get_password("dvc-secure", "bob")
    assert stored is not None and "AGE-SECRET-KEY" not in stored.upper()
    assert load_identity({ENV_IDENTITY_FILE: str(path), ENV_PASSPHRASE: PW}) == ident
    with pytest.raises(PassphraseError):
        load_identity({ENV_IDENTITY_FILE: str(path)})


def test_deleted_keyring_entry_is_an_identity_error(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    path = tmp_path / "identity.txt"
    save_to_os_keyring(ident, path, "now", "carol")
    import keyring

    keyring.delete_password("dvc-secure", "carol")
    with pytest.raises(IdentityError, match="holds no identity") as info:
        load_identity({ENV_IDENTITY_FILE: str(path)})
    assert str(path) in str(info.value)


def test_keyring_entry_is_not_overwritten_without_force(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    save_to_os_keyring(ident, tmp_path / "a.txt", "now", "dave")
    other = Identity.generate()
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        save_to_os_keyring(other, tmp_path / "b.txt", "now", "dave")
    assert not (tmp_path / "b.txt").exists()
    assert load_identity({ENV_IDENTITY_FILE: str(tmp_path / "a.txt")}) == ident
    save_to_os_keyring(other, tmp_path / "a.txt", "now", "dave", force=True)
    assert load_identity({ENV_IDENTITY_FILE: str(tmp_path / "a.txt")}) == other


def test_existing_pointer_path_is_checked_before_the_keyring_is_touched(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    path = tmp_path / "identity.txt"
    save_identity(ident, path, "now")
    with pytest.raises(IdentityError, match="refusing to overwrite"):
        save_to_os_keyring(Identity.generate(), path, "now", "erin")
    import keyring

    assert keyring.get_password("dvc-secure", "erin") is None


def test_pointer_file_readable_by_others_is_refused(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    path = tmp_path / "identity.txt"
    save_to_os_keyring(ident, path, "now", "frank")
    path.chmod(0o644)
    with pytest.raises(IdentityError, match="readable by other users"):
        load_identity({ENV_IDENTITY_FILE: str(path)})


def test_pointer_in_the_environment_variable_is_refused(tmp_path: Path) -> None:
    env = {ENV_IDENTITY: KeyringPointer("dvc-secure", "alice").to_text(), "HOME": str(tmp_path)}
    with pytest.raises(IdentityError, match="pointer, not an identity"):
        load_identity(env)


def test_environment_identity_wins_over_a_pointer_file(
    tmp_path: Path, ident: Identity, os_keyring: object
) -> None:
    path = tmp_path / "identity.txt"
    save_to_os_keyring(ident, path, "now", "gina")
    other = Identity.generate()
    env = {ENV_IDENTITY: other.to_text("now"), ENV_IDENTITY_FILE: str(path)}
    assert load_identity(env) == other


def test_missing_keyring_package_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "identity.txt"
    write_secret_file(path, KeyringPointer("dvc-secure", "alice").to_text())
    monkeypatch.setitem(sys.modules, "keyring", None)  # as if not installed: import fails
    with pytest.raises(IdentityError, match="'keyring'") as info:
        load_identity({ENV_IDENTITY_FILE: str(path)})
    assert "pip install" in str(info.value)


def test_no_keyring_backend_is_an_identity_error(tmp_path: Path) -> None:
    import keyring
    from keyring.backends import fail

    path = tmp_path / "identity.txt"
    write_secret_file(path, KeyringPointer("dvc-secure", "alice").to_text())
    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        with pytest.raises(IdentityError, match="OS keyring is not usable") as info:
            load_identity({ENV_IDENTITY_FILE: str(path)})
    finally:
        keyring.set_keyring(previous)
    assert "--passphrase" in str(info.value)


def test_bad_keyring_user_name_is_refused(tmp_path: Path, ident: Identity) -> None:
    with pytest.raises(IdentityError, match="not allowed"):
        save_to_os_keyring(ident, tmp_path / "x.txt", "now", "has space")
    assert not (tmp_path / "x.txt").exists()
