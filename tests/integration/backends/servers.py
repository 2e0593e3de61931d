"""Real storage servers for the backend tests, each on a free port of 127.0.0.1.

Every server runs as a child process of the pytest process (of each xdist worker), in its
own process group, with a parent-death signal so that even a killed pytest leaves no
server behind. ``stop()`` terminates the group and waits; the session fixtures in
conftest.py call it at the end of the session.

A server whose program is missing raises :class:`ServerUnavailable`; the fixtures turn
that into a skip outside CI and into a failure in CI (``CI`` set). A server that is
installed but does not come up is always an error (with its log).
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = 60.0

# Azurite's well-known development account (public, documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
    "K1SZFPTOtr/KBHBeksoGMGw=="
)
# dummy credentials for moto's S3 server (it accepts any)
S3_KEY_ID = "dvc-secure-test"
S3_SECRET = "dvc-secure-test-secret"


class ServerUnavailable(Exception):
    """The program behind a server is not installed (see ci/servers/install.sh)."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def project_root() -> Path | None:
    """The checkout (or CI copy) this test file lives in, found by its ``.ci-tools``."""
    for d in Path(__file__).resolve().parents:
        if (d / ".ci-tools").is_dir():
            return d
    return None


try:  # resolved before any fork: the child only makes the call
    _PRCTL: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux
    _PRCTL = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the server dies with this pytest process


@dataclass
class Server:
    """A started server process; ``stop()`` is idempotent."""

    name: str
    proc: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    port: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, n: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # children that outlived the leader (none expected) still belong to the group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)


def _spawn(name: str, argv: list[str], workdir: Path, port: int,
           ready: Callable[[], bool], env: dict[str, str] | None = None) -> Server:
    log = workdir / f"{name}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            cwd=workdir, env=env, start_new_session=True, preexec_fn=_die_with_parent,
        )
    server = Server(name, proc, workdir, log, port)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} at start:\n{server.log_tail()}")
        try:
            if ready():
                return server
        except OSError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not answer within {START_TIMEOUT:.0f}s:\n"
                               f"{server.log_tail()}")
        time.sleep(0.1)


def _http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return bool(200 <= r.status < 500)
        except urllib.error.HTTPError as e:  # any HTTP answer means it is serving
            return e.code < 500
    return check


def _tcp_banner(port: int, prefix: bytes) -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection((HOST, port), timeout=2) as s:
            s.settimeout(2)
            return s.recv(64).startswith(prefix)
    return check


def _with_retries(start: Callable[[int], Server], attempts: int = 3) -> Server:
    """Start on a fresh free port; retry if another process took the port meanwhile."""
    error: Exception | None = None
    for _ in range(attempts):
        try:
            return start(free_port())
        except RuntimeError as e:
            error = e
    assert error is not None
    raise error


# --- OpenSSH ----------------------------------------------------------------------------

SSHD = "/usr/sbin/sshd"


def start_sshd(workdir: Path) -> Server:
    """sshd with a throwaway host key; the current user logs in with a throwaway key."""
    sshd = shutil.which("sshd") or (SSHD if os.path.exists(SSHD) else None)
    keygen = shutil.which("ssh-keygen")
    if sshd is None or keygen is None:
        raise ServerUnavailable("OpenSSH server not installed (apt-get install openssh-server; "
                                "see ci/servers/install.sh)")
    privsep = Path("/run/sshd")  # sshd refuses to start without its privilege separation dir
    if not privsep.is_dir():
        if os.geteuid() != 0:
            raise ServerUnavailable(f"{privsep} is missing and only root can create it")
        privsep.mkdir(mode=0o755, parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chmod(workdir, 0o700)
    host_key, user_key = workdir / "host_ed25519", workdir / "user_ed25519"
    for key in (host_key, user_key):
        if not key.exists():
            subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-C", "dvc-secure-test",
                            "-f", str(key)], check=True, capture_output=True)
    user = getpass.getuser()

    def start(port: int) -> Server:
        cfg = workdir / "sshd_config"
        cfg.write_text(
            f"ListenAddress {HOST}\n"
            f"Port {port}\n"
            f"HostKey {host_key}\n"
            f"AuthorizedKeysFile {user_key}.pub\n"
            f"PidFile {workdir / 'sshd.pid'}\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            f"AllowUsers {user}\n"
            "MaxSessions 64\n"
            "MaxStartups 64:30:128\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel ERROR\n"
        )
        test = subprocess.run([sshd, "-t", "-f", str(cfg)], capture_output=True, text=True)
        if test.returncode != 0:
            raise RuntimeError(f"sshd -t rejected {cfg}: {test.stderr.strip()}")
        return _spawn("sshd", [sshd, "-D", "-e", "-f", str(cfg)], workdir, port,
                      _tcp_banner(port, b"SSH-2.0-"))

    server = _with_retries(start)
    server.info = {"user": user, "keyfile": str(user_key), "host": HOST}
    return server


# --- S3 (moto) -------------------------------------------------------------------------------


def start_moto(workdir: Path) -> Server:
    if not all(importlib.util.find_spec(m) for m in ("moto", "flask", "flask_cors")):
        raise ServerUnavailable("moto's S3 server not installed (pip install 'moto[server]')")
    workdir.mkdir(parents=True, exist_ok=True)

    def start(port: int) -> Server:
        return _spawn("moto", [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                      workdir, port, _http_ok(f"http://{HOST}:{port}/moto-api/"))

    server = _with_retries(start)
    server.info = {"access_key_id": S3_KEY_ID, "secret_access_key": S3_SECRET}
    return server


# --- Azure Blob (Azurite) ------------------------------------------------------------------


def azurite_executable() -> str | None:
    """$AZURITE_BLOB_BIN, else .ci-tools/ (ci/servers/install.sh), else azurite-blob on PATH."""
    override = os.environ.get("AZURITE_BLOB_BIN")
    if override is not None:
        return override if os.access(override, os.X_OK) else None
    root = project_root()
    if root is not None:
        candidate = root / ".ci-tools" / "node_modules" / ".bin" / "azurite-blob"
        if candidate.exists():
            return str(candidate)
    return shutil.which("azurite-blob")


def start_azurite(workdir: Path) -> Server:
    exe = azurite_executable()
    if exe is None or shutil.which("node") is None:
        raise ServerUnavailable("Azurite not installed (ci/servers/install.sh puts it in "
                                ".ci-tools/node_modules)")
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)

    def start(port: int) -> Server:
        return _spawn("azurite", [exe, "--blobHost", HOST, "--blobPort", str(port),
                                  "--location", str(data), "--silent", "--skipApiVersionCheck",
                                  "--loose", "--disableTelemetry"],
                      workdir, port, _http_ok(f"http://{HOST}:{port}/{AZURITE_ACCOUNT}?comp=list"))

    server = _with_retries(start)
    server.info = {
        "connection_string": (
            "DefaultEndpointsProtocol=http;"
            f"AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://{HOST}:{server.port}/{AZURITE_ACCOUNT};"
        )
    }
    return server


# --- Google Cloud Storage (gcp-storage-emulator) -----------------------------------------


def start_gcs(workdir: Path) -> Server:
    if importlib.util.find_spec("gcp_storage_emulator") is None:
        raise ServerUnavailable("gcp-storage-emulator not installed "
                                "(pip install gcp-storage-emulator)")
    workdir.mkdir(parents=True, exist_ok=True)
    def start(port: int) -> Server:
        return _spawn("gcs", [sys.executable, "-m", "gcp_storage_emulator", "start", "--host", HOST,
                              "--port", str(port), "--in-memory"],
                      workdir, port, _http_ok(f"http://{HOST}:{port}/storage/v1/b"))

    return _with_retries(start)


STARTERS: dict[str, Callable[[Path], Server]] = {
    "ssh": start_sshd,
    "s3": start_moto,
    "azure": start_azurite,
    "gs": start_gcs,
}
