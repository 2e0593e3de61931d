"""X25519 keys are loaded without importing cryptography's whole OpenSSL backend module
(start-up cost): the key, its public half and the shared secrets must be exactly what the
public ``X25519PrivateKey.from_private_bytes`` gives."""

from __future__ import annotations

import os
import subprocess
import sys

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from dvc_secure.core.format.primitives import X25519KeyPair, x25519_unwrap, x25519_wrap


def test_same_keys_and_secrets_as_the_public_api() -> None:
    for _ in range(20):
        a, b = os.urandom(32), os.urandom(32)
        pair_a, pair_b = X25519KeyPair.from_private(a), X25519KeyPair.from_private(b)
        ref_a, ref_b = X25519PrivateKey.from_private_bytes(a), X25519PrivateKey.from_private_bytes(b)
        assert pair_a.public == ref_a.public_key().public_bytes_raw()
        assert pair_a.exchange(pair_b.public) == ref_a.exchange(ref_b.public_key())
        eph, body = x25519_wrap(pair_a.public, b"secret" * 4, b"label")
        assert x25519_unwrap(pair_a, eph, body, b"label") == b"secret" * 4


def test_loading_a_key_does_not_import_the_openssl_backend_module() -> None:
    code = ("import sys\n"
            "from dvc_secure.core.format.primitives import X25519KeyPair\n"
            "X25519KeyPair.from_private(bytes(range(32))).exchange(bytes([9]) + bytes(31))\n"
            "print('cryptography.hazmat.backends.openssl.backend' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
