#!/usr/bin/env bash
# Installs what tests need from outside PyPI: libfaketime (expiry tests) and the storage
# servers the backend tests (tests/integration/backends/) start on
# 127.0.0.1: OpenSSH's sshd (Debian package), Microsoft's Azurite blob emulator (npm, into
# the project-local, gitignored .ci-tools/), and checks the Python-side servers (moto's
# S3 server, gcp-storage-emulator) that come with the project's [test] extra.
#
# The tests themselves start the servers on free loopback ports and stop them at the end
# of the session (tests/integration/backends/servers.py); nothing here leaves a daemon.
#
# Usage: ci/servers/install.sh [PYTHON]   (PYTHON: the interpreter of the test venv)
set -euo pipefail
cd "$(dirname "$0")/../.."

PY=${1:-${PYTHON:-python3}}
AZURITE_VERSION=${AZURITE_VERSION:-3.37.0}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }

if [ ! -x /usr/sbin/sshd ]; then
    echo "installing openssh-server"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        openssh-server openssh-client >/dev/null
fi
# the Debian package starts a system sshd on port 22 where an init system runs; the tests
# never use it (they start their own on a free port)

# libfaketime: tests/integration/test_expiry.py runs a member's client with its clock set back
if [ ! -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] && command -v apt-get >/dev/null; then
    echo "installing faketime"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        faketime >/dev/null
fi

# SoftHSM2: the PKCS#11 token of tests/integration/custody (each test session initialises a
# throwaway token in a temporary directory; nothing system-wide is configured)
if ! command -v softhsm2-util >/dev/null && command -v apt-get >/dev/null; then
    echo "installing softhsm2"
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
        softhsm2 >/dev/null
fi

if [ ! -x .ci-tools/node_modules/.bin/azurite-blob ]; then
    if ! command -v npm >/dev/null; then
        echo "installing nodejs + npm"
        as_root apt-get update -qq
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
            nodejs npm >/dev/null
    fi
    echo "installing azurite $AZURITE_VERSION into .ci-tools/"
    mkdir -p .ci-tools
    npm install --prefix .ci-tools --no-audit --no-fund --silent "azurite@$AZURITE_VERSION"
fi

# Python-side servers and clients come from pyproject's [test] extra; fail early and clearly
"$PY" - <<'PYEOF'
import importlib.util, sys
missing = [m for m in ("moto", "boto3", "gcp_storage_emulator", "dvc_ssh", "dvc_s3",
                       "dvc_azure", "dvc_gs", "pkcs11") if importlib.util.find_spec(m) is None]
if missing:
    sys.exit(f"missing Python packages for the backend tests: {', '.join(missing)} "
             "(pip install -e '.[test,aws-kms,pkcs11]')")
PYEOF
echo "backend test servers: sshd $(/usr/sbin/sshd -V 2>&1 | head -1 || true); azurite $(.ci-tools/node_modules/.bin/azurite-blob --version 2>/dev/null || echo '?')"
