"""Added latency of key custody (issue 19), measured on loopback components:

    python benchmarks/custody_latency.py [--repeat 5]

- ``dvc pull`` (fresh cache and workspace) from a KMS-wrapped repository vs the same data in
  a plain one, the KMS being moto's server on 127.0.0.1 (one Decrypt per epoch per process;
  a real AWS KMS adds its network round trip, typically 10-50 ms, instead of moto's);
- ``dvc-secure seal`` and ``dvc push`` by a PKCS#11 identity on SoftHSM2 vs a file
  identity, and the raw Ed25519 signature and X25519 agreement on the token vs in memory.

Needs ``pip install -e '.[test,aws-kms,pkcs11]'`` and ``bash ci/servers/install.sh``.
Prints median seconds and the difference; paired, interleaved runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dvc_secure.adapters.local.identity_store import ENV_IDENTITY_FILE  # noqa: E402
from tests.conftest import base_env  # noqa: E402
from tests.integration.custody.conftest import new_kms_key  # noqa: E402
from tests.integration.custody.servers import (  # noqa: E402
    OPEN_CREDENTIALS,
    TOKEN_LABEL,
    client_env,
    softhsm_token,
    start_kms,
)
from tests.integration.custody.test_kms import make_repo  # noqa: E402
from tests.integration.secure_helpers import wipe_cache_and_workspace  # noqa: E402


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(name: str, plain: list[float], custody: list[float], unit: str = "s") -> None:
    p, c = statistics.median(plain), statistics.median(custody)
    scale = 1000.0 if unit == "ms" else 1.0
    print(f"{name:<44} plain {p * scale:8.3f} {unit}   custody {c * scale:8.3f} {unit}   "
          f"added {(c - p) * scale:+8.3f} {unit}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dvc-secure-custody-bench-"))
    server = start_kms(work / "kms", enforce_iam=False)
    try:
        home = work / "home"
        home.mkdir()
        env = {**base_env(home), **client_env(server, OPEN_CREDENTIALS)}
        _key, alias = new_kms_key(server)
        (work / "plain").mkdir()
        (work / "kms-repo").mkdir()
        plain = make_repo(work / "plain", env, None)
        kms = make_repo(work / "kms-repo", env, f"aws-kms://{alias}")
        for repo in (plain, kms):
            repo.dvc("push")
        pulls: dict[str, list[float]] = {"plain": [], "kms": []}
        for _ in range(args.repeat):
            for name, repo in (("plain", plain), ("kms", kms)):
                wipe_cache_and_workspace(repo)
                pulls[name].append(timed(lambda r=repo: r.dvc("pull")))
        report("dvc pull, 6 files / 2.6 MiB (moto KMS)", pulls["plain"], pulls["kms"])

        token = softhsm_token(work / "softhsm")
        os.environ["SOFTHSM2_CONF"] = token["SOFTHSM2_CONF"]
        token_env = {"SOFTHSM2_CONF": token["SOFTHSM2_CONF"],
                     "DVC_SECURE_PKCS11_PIN_FILE": token["pin_file"]}
        file_repo = plain
        (work / "token").mkdir()
        tok_repo = make_repo(work / "token", {**env, **token_env}, None)
        bob = work / "token" / "bob.txt"
        gen = tok_repo.secure("keygen", "--pkcs11", token["module"], "--token", TOKEN_LABEL,
                              "--output", str(bob))
        card = dict(ln.split(": ", 1) for ln in gen.stdout.splitlines() if ": " in ln)
        tok_repo.secure("grant", card["recipient"], "--signing-key", card["signing-key"],
                        "--role", "writer", "--name", "bob")
        tok_repo.git("commit", "-qam", "grant")
        tok_repo.env[ENV_IDENTITY_FILE] = str(bob)
        seals: dict[str, list[float]] = {"file": [], "token": []}
        pushes: dict[str, list[float]] = {"file": [], "token": []}
        for i in range(args.repeat):
            for name, repo in (("file", file_repo), ("token", tok_repo)):
                (repo.root / "model.bin").write_bytes(os.urandom(100_000) + str(i).encode())
                repo.dvc("add", "model.bin")
                pushes[name].append(timed(lambda r=repo: r.dvc("push")))
                seals[name].append(timed(lambda r=repo: r.secure("seal", "model.bin")))
        report("dvc push of one changed file (signature)", pushes["file"], pushes["token"])
        report("dvc-secure seal of one dataset", seals["file"], seals["token"])
        micro(token, bob)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


def micro(token: dict[str, str], bob: Path) -> None:
    from dvc_secure.adapters.local.identity_store import load_identity
    from dvc_secure.core.format.primitives import X25519KeyPair
    from dvc_secure.core.keys.identity import Identity

    env = {ENV_IDENTITY_FILE: str(bob), "DVC_SECURE_PKCS11_PIN_FILE": token["pin_file"]}
    on_token = load_identity(env)
    in_memory = Identity.generate()
    peer = X25519KeyPair.generate().public
    n = 200
    for what, op in (("Ed25519 signature", lambda i: i.signing.sign(b"m" * 200)),
                     ("X25519 agreement", lambda i: i.encryption.exchange(peer))):
        plain = [timed(lambda o=op: o(in_memory)) for _ in range(n)]
        tok = [timed(lambda o=op: o(on_token)) for _ in range(n)]
        report(f"{what} (median of {n})", plain, tok, unit="ms")


if __name__ == "__main__":
    raise SystemExit(main())
