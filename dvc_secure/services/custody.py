"""Key custody operations that are not keyring policy changes of ``access`` (docs/custody.md):
requiring a KMS key when a keyring is created; an identity generated on a PKCS#11 token."""

from __future__ import annotations

from pathlib import Path

from dvc_secure.adapters.custody.registry import wrapper_for
from dvc_secure.adapters.local import env_secrets
from dvc_secure.adapters.local.identity_store import save_identity_text
from dvc_secure.core.keys.custody import KmsRef, parse_kms_uri, require_kms, wrap_epoch
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import IdentityError

__all__ = ["keygen_on_token", "parse_kms_uri", "require_kms_at_creation"]


def require_kms_at_creation(ring: Keyring, ref: KmsRef) -> None:
    """Wrap the new keyring's first epoch by ``ref`` and require it for every later one
    (the caller signs). Raises before changing ``ring`` if the KMS refuses."""
    wrap_epoch(ring, ring.current_epoch, ref, wrapper_for(ref.provider))
    require_kms(ring, ref)


def keygen_on_token(module: str, token: str, path: Path, force: bool) -> tuple[Identity, str]:
    """Generate an identity on a PKCS#11 token and write its identity file (no secret) at
    ``path``; returns the identity and a description of the token."""
    from dvc_secure.adapters.custody.pkcs11_token import generate_token_identity

    if (path.exists() or path.is_symlink()) and not force:  # before touching the token
        raise IdentityError(f"{path} already exists; refusing to overwrite an identity",
                            hint="use --output for a new file, or --force to replace it")
    identity, text = generate_token_identity(module, token, env_secrets.environ())
    save_identity_text(path, text, force)
    return identity, f"PKCS#11 token '{token}'"
