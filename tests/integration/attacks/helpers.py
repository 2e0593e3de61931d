"""Shared moves of the adversarial tests (issue 13 item 6): what an attacker does by hand
with the public formats and their own keys, and how the defenders look at the result."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from dvc_secure.core.keys.identity import Identity, key_fingerprint
from dvc_secure.core.sidecar.model import Sidecar
from tests.conftest import SecureRepo
from tests.integration.test_access import add_and_push

__all__ = ["add_and_push", "finding_codes", "forge_sidecar", "identity_of"]


def identity_of(path: Path) -> Identity:
    return Identity.from_text(path.read_text(), path.name)


def forge_sidecar(repo: SecureRepo, metafile: str, signer: Identity | None,
                  change: Callable[[Sidecar], Sidecar] = lambda sc: sc) -> Path:
    """Seal the next version of ``<metafile>.seal`` by hand, as the real sealer would (the
    version moves forward, chained to the current one), but with ``change`` applied to the
    signed part and signed by ``signer`` (None: left unsigned)."""
    path = repo.root / f"{metafile}.seal"
    current = Sidecar.from_bytes(path.read_bytes(), str(path))
    sidecar = dataclasses.replace(current, version=current.version + 1,
                                  previous=(current.digest,), signatures=())
    if signer is not None:
        assert signer.signing is not None
        sidecar = dataclasses.replace(sidecar,
                                      signer_keyid=key_fingerprint(signer.signing.public))
    sidecar = change(sidecar)
    if signer is not None:
        assert signer.signing is not None
        sidecar = sidecar.sign(signer.signing)
    path.write_bytes(sidecar.to_bytes())
    return path


def finding_codes(repo: SecureRepo, *args: str, env: dict[str, str] | None = None,
                  ) -> tuple[int, list[str]]:
    """(exit code, finding codes) of ``dvc-secure verify --json *args``."""
    from tests.conftest import DVC_SECURE, run

    proc = run([*DVC_SECURE, "verify", "--json", *args], repo.root, env or repo.env,
               check=False)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["verified"] == (proc.returncode == 0)
    return proc.returncode, [f["code"] for f in doc["findings"]]
