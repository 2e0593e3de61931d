"""Key custody operations that are not keyring policy changes of ``access`` (docs/custody.md):
requiring a KMS key when a keyring is created."""

from __future__ import annotations

from dvc_secure.adapters.custody.registry import wrapper_for
from dvc_secure.core.keys.custody import KmsRef, parse_kms_uri, require_kms, wrap_epoch
from dvc_secure.core.keys.keyring import Keyring

__all__ = ["parse_kms_uri", "require_kms_at_creation"]


def require_kms_at_creation(ring: Keyring, ref: KmsRef) -> None:
    """Wrap the new keyring's first epoch by ``ref`` and require it for every later one
    (the caller signs). Raises before changing ``ring`` if the KMS refuses."""
    wrap_epoch(ring, ring.current_epoch, ref, wrapper_for(ref.provider))
    require_kms(ring, ref)
