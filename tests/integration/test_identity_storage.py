"""Identity storage options through the real CLI (docs/identities.md): a passphrase-protected
file and the OS keyring (keyrings.alt's file backend, a real backend of the `keyring`
package), each used by a real `dvc push` / `dvc pull` through a secure remote."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dvc_secure.adapters.local.identity_store import (
    ENV_IDENTITY_FILE,
    ENV_PASSPHRASE,
    ENV_PASSPHRASE_FILE,
)
from tests.conftest import DVC, DVC_SECURE, SecureRepo, run
from tests.integration.secure_helpers import check_failed

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes and ptys are POSIX")

PW = "integration test passphrase, not a secret"
DATA = b"identity storage round trip\n" * 500


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _round_trip(repo: SecureRepo) -> None:
    """dvc add + push, forget everything local, dvc pull: the same bytes come back."""
    (repo.root / "data.bin").write_bytes(DATA)
    repo.dvc("add", "-q", "data.bin")
    repo.dvc("push", "-q")
    stored = repo.stored_objects()
    assert stored and all(DATA[:64] not in p.read_bytes() for p in stored)
    (repo.root / "data.bin").unlink()
    for p in sorted((repo.root / ".dvc" / "cache").rglob("*"), reverse=True):
        if p.is_file():
            p.unlink()
    repo.dvc("pull", "-q")
    assert (repo.root / "data.bin").read_bytes() == DATA


def _no_tty(cmd: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run with stdin from /dev/null (never the developer's terminal)."""
    return subprocess.run(cmd, cwd=cwd, env=env, text=True, capture_output=True,
                          stdin=subprocess.DEVNULL)


def test_passphrase_protected_identity_pushes_and_pulls(
    make_secure_repo, isolated_env: dict[str, str], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    ident = tmp_path / "protected-identity.txt"
    env = {**isolated_env, ENV_IDENTITY_FILE: str(ident), ENV_PASSPHRASE: PW}
    proc = run([*DVC_SECURE, "keygen", "--passphrase"], tmp_path, env)
    assert "passphrase-protected identity written" in proc.stderr
    assert _mode(ident) == 0o600
    text = ident.read_text()
    assert "-----BEGIN DVC-SECURE PROTECTED IDENTITY-----" in text
    assert "Scrypt-Log2-N: 18" in text
    assert "SECRET-KEY" not in text.upper() and PW not in text
    recipient = proc.stdout.split("recipient: ")[1].split()[0]

    isolated_env[ENV_PASSPHRASE] = PW  # every later command (dvc, hooks) gets it
    repo = make_secure_repo(identity_file=ident)
    whoami = repo.secure("whoami").stdout
    assert f"identity: passphrase-protected file {ident}" in whoami
    assert recipient in whoami
    _round_trip(repo)

    # the passphrase from a 0600 file instead of the variable
    pw_file = tmp_path / "passphrase"
    pw_file.write_text(PW + "\n")
    pw_file.chmod(0o600)
    by_file = {k: v for k, v in repo.env.items() if k != ENV_PASSPHRASE}
    by_file[ENV_PASSPHRASE_FILE] = str(pw_file)
    assert _no_tty([*DVC_SECURE, "whoami"], repo.root, by_file).returncode == 0
    pw_file.chmod(0o644)
    check_failed(_no_tty([*DVC_SECURE, "whoami"], repo.root, by_file),
                 "readable by other users", f"chmod 600 {pw_file}")

    # a wrong passphrase stops dvc itself, with the spec's message and no traceback
    (repo.root / "data.bin").unlink()
    wrong = {**repo.env, ENV_PASSPHRASE: "not it"}
    for p in (repo.root / ".dvc" / "cache").rglob("*"):
        if p.is_file():
            p.unlink()
    out = check_failed(_no_tty([*DVC_SECURE, "whoami"], repo.root, wrong), "wrong passphrase")
    assert "not it" not in out
    pulled = _no_tty([*DVC, "pull"], repo.root, wrong)
    check_failed(pulled, "wrong passphrase")
    assert not (repo.root / "data.bin").exists()

    # neither variable and no terminal: say which variable to set
    none = {k: v for k, v in repo.env.items() if k != ENV_PASSPHRASE}
    check_failed(_no_tty([*DVC_SECURE, "whoami"], repo.root, none),
                 ENV_PASSPHRASE_FILE, ENV_PASSPHRASE)


def test_os_keyring_identity_pushes_and_pulls(
    make_secure_repo, isolated_env: dict[str, str], tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    isolated_env["PYTHON_KEYRING_BACKEND"] = "keyrings.alt.file.PlaintextKeyring"
    isolated_env["XDG_DATA_HOME"] = str(tmp_path / "data-home")
    pointer = tmp_path / "identity-pointer.txt"
    env = {**isolated_env, ENV_IDENTITY_FILE: str(pointer)}
    proc = run([*DVC_SECURE, "keygen", "--store", "os-keyring", "--keyring-user", "alice-ci"],
               tmp_path, env)
    assert "OS keyring service=dvc-secure user=alice-ci" in proc.stderr
    assert pointer.read_text() == "DVC-SECURE-OS-KEYRING v1 service=dvc-secure user=alice-ci\n"
    assert _mode(pointer) == 0o600
    assert list((tmp_path / "data-home").rglob("*.cfg")), "nothing reached the keyring backend"
    # read back through the keyring package itself, in a process with the same environment
    code = ("import keyring; v = keyring.get_password('dvc-secure', 'alice-ci'); "
            "print(v.splitlines()[0] if v else 'MISSING')")
    first_line = run([sys.executable, "-c", code], tmp_path, env).stdout.strip()
    assert first_line.startswith("# dvc-secure identity"), first_line

    # a second keygen for the same entry is refused: the pointer path exists
    again = _no_tty([*DVC_SECURE, "keygen", "--store", "os-keyring", "--keyring-user", "alice-ci"],
                    tmp_path, env)
    check_failed(again, "refusing to overwrite")

    repo = make_secure_repo(identity_file=pointer)
    whoami = repo.secure("whoami").stdout
    assert "identity: OS keyring service=dvc-secure user=alice-ci" in whoami
    _round_trip(repo)

    # no usable backend: an IdentityError that says what to do, not a traceback
    failing = {**repo.env, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    check_failed(_no_tty([*DVC_SECURE, "whoami"], repo.root, failing),
                 "OS keyring is not usable", "--passphrase")


def test_keygen_asks_for_the_passphrase_twice_on_a_terminal(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    """The interactive path: getpass on a real pseudo-terminal; the passphrase is typed."""
    import fcntl
    import pty
    import select
    import termios

    ident = tmp_path / "typed-identity.txt"
    env = {**isolated_env, ENV_IDENTITY_FILE: str(ident)}

    def session(cmd: list[str], answers: list[str]) -> tuple[int, str]:
        master, slave = pty.openpty()

        def make_controlling_tty() -> None:  # after setsid: /dev/tty is the pty
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        child = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdin=slave, stdout=slave,
                                 stderr=slave, start_new_session=True,
                                 preexec_fn=make_controlling_tty)
        os.close(slave)
        seen = b""
        answered_at = 0
        pending = list(answers)
        deadline = time.monotonic() + 120
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([master], [], [], 0.2)
                if ready:
                    try:
                        data = os.read(master, 4096)
                    except OSError:
                        break
                    if not data:
                        break
                    seen += data
                    # answer only a prompt printed after the previous answer: input typed
                    # early would be discarded by getpass (it flushes the terminal)
                    if pending and seen[answered_at:].rstrip().endswith(b":"):
                        os.write(master, (pending.pop(0) + "\n").encode())
                        answered_at = len(seen)
                elif child.poll() is not None:
                    break
            rc = child.wait(timeout=60)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            os.close(master)
        return rc, seen.decode(errors="replace")

    rc, out = session([*DVC_SECURE, "keygen", "--passphrase"], [PW, PW + " typo"])
    assert rc != 0 and "differ" in out
    assert not ident.exists()

    rc, out = session([*DVC_SECURE, "keygen", "--passphrase"], [PW, PW])
    assert rc == 0, out
    assert PW not in out  # getpass does not echo
    assert "-----BEGIN DVC-SECURE PROTECTED IDENTITY-----" in ident.read_text()

    rc, out = session([*DVC_SECURE, "whoami"], [PW])
    assert rc == 0, out
    assert "passphrase-protected file" in out


def test_keyring_user_without_the_os_keyring_store_is_a_usage_error(
    isolated_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**isolated_env, ENV_IDENTITY_FILE: str(tmp_path / "identity.txt")}
    proc = _no_tty([*DVC_SECURE, "keygen", "--keyring-user", "bob"], tmp_path, env)
    assert proc.returncode == 2
    check_failed(proc, "--store os-keyring")
    assert not (tmp_path / "identity.txt").exists()
