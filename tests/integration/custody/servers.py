"""Key-custody test components, on loopback only: moto's server speaking the AWS KMS
protocol (one open, one enforcing IAM), and a throwaway SoftHSM2 token.

Missing components skip outside CI and FAIL in CI (``CI`` set), like the storage backend
tests (tests/integration/backends/conftest.py); ci/servers/install.sh installs them.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.backends.servers import HOST, Server, _http_ok, _spawn, _with_retries, in_ci

REGION = "us-east-1"
# moto's server accepts any credentials while IAM is not enforced (public dummies)
OPEN_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "dvc-secure-test", "AWS_SECRET_ACCESS_KEY": "test-secret"}
# requests the IAM-enforcing server lets through without authentication: the set-up below
IAM_SETUP_REQUESTS = 9


def require(reason: str) -> None:
    if in_ci():
        pytest.fail(f"{reason} [CI is set: custody tests must run; see ci/servers/install.sh]",
                    pytrace=False)
    pytest.skip(reason)


def moto_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("moto", "flask", "flask_cors", "boto3"))


def start_kms(workdir: Path, enforce_iam: bool) -> Server:
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
    if enforce_iam:
        env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(IAM_SETUP_REQUESTS)

    def start(port: int) -> Server:
        return _spawn("moto-kms-iam" if enforce_iam else "moto-kms",
                      [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
                      workdir, port, _http_ok(f"http://{HOST}:{port}/moto-api/"), env=env)

    server = _with_retries(start)
    if enforce_iam:
        server.info = _iam_users(server.endpoint)
    return server


def client_env(server: Server, credentials: dict[str, str]) -> dict[str, str]:
    """What a dvc-secure process needs to reach this KMS (boto3's own variables)."""
    return {"AWS_ENDPOINT_URL_KMS": server.endpoint, "AWS_DEFAULT_REGION": REGION,
            "AWS_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true", **credentials}


def kms_client(server: Server, credentials: dict[str, str]) -> Any:
    import boto3

    return boto3.client("kms", endpoint_url=server.endpoint, region_name=REGION,
                        aws_access_key_id=credentials["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=credentials["AWS_SECRET_ACCESS_KEY"])


def _iam_users(endpoint: str) -> dict[str, dict[str, str]]:
    """Two IAM users: 'admin' (kms:*) and 'outsider' (may describe keys, not decrypt)."""
    import boto3

    iam = boto3.client("iam", endpoint_url=endpoint, region_name=REGION,
                       **{k.lower(): v for k, v in OPEN_CREDENTIALS.items()})
    users = {}
    for name, actions in (("admin", ["kms:*"]), ("outsider", ["kms:DescribeKey"])):
        iam.create_user(UserName=name)
        iam.put_user_policy(UserName=name, PolicyName="kms", PolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
        key = iam.create_access_key(UserName=name)["AccessKey"]
        users[name] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                       "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return users


# --- SoftHSM2 --------------------------------------------------------------------------------

SOFTHSM_MODULES = ("/usr/lib/softhsm/libsofthsm2.so",
                   "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                   "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so")
TOKEN_LABEL = "dvc-secure-test"


def softhsm_token(workdir: Path) -> dict[str, str]:
    """A throwaway SoftHSM2 token in ``workdir``: the environment to reach it (its config)
    and the module path; the user PIN is in ``workdir/pin`` (mode 0600)."""
    import secrets
    import shutil
    import subprocess

    module = next((m for m in SOFTHSM_MODULES if Path(m).exists()), None)
    util = shutil.which("softhsm2-util")
    if module is None or util is None:
        require("SoftHSM2 is not installed (apt-get install softhsm2; ci/servers/install.sh)")
    if importlib.util.find_spec("pkcs11") is None:
        require("python-pkcs11 is not installed (pip install -e '.[pkcs11]')")
    tokens = workdir / "tokens"
    tokens.mkdir(parents=True)
    conf = workdir / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                    "log.level = ERROR\nslots.removable = false\n")
    pin, so_pin = secrets.token_hex(8), secrets.token_hex(8)
    pin_file = workdir / "pin"
    pin_file.write_text(pin + "\n")
    pin_file.chmod(0o600)
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}
    # softhsm2-util takes PINs only as arguments: a throwaway token's, never a dvc-secure key
    subprocess.run([util, "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", pin,
                    "--so-pin", so_pin], env=env, check=True, capture_output=True)
    return {"SOFTHSM2_CONF": str(conf), "module": str(module), "pin_file": str(pin_file),
            "pin": pin}


def run_watching_argv(cmd: list[str], cwd: Path, env: dict[str, str],
                      needles: list[bytes]) -> tuple[int, str, int]:
    """Run ``cmd`` while sampling every process's argv (/proc/*/cmdline) every few ms;
    fails if any needle appears. Returns (exit code, output, argv samples taken)."""
    import subprocess
    import time

    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    samples = 0
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            samples += 1
            assert not any(n in argv for n in needles), f"a secret in the argv of pid {pid}"
        time.sleep(0.005)
    out = proc.communicate()[0].decode(errors="replace")
    return proc.returncode, out, samples
