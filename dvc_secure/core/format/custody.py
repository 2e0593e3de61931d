"""How a KMS-held secret and a member-held secret combine into an epoch's data key
(docs/spec/keyring.md §6a). The only place the combination is computed.

Both inputs are needed: the data key is HKDF over the concatenation, so a member stanza
without the KMS unwrap (IAM refused, key disabled or deleted) and a KMS unwrap without a
member stanza are each worth nothing.
"""

from __future__ import annotations

from dvc_secure.core.format.primitives import hkdf_sha256

KMS_COMBINE_SALT = b"dvc-secure/v1/keyring-kms-combine"
KMS_SECRET_LEN = 32


def combine_kms_secret(member_key: bytes, kms_secret: bytes, *, keyring_id: str, epoch: int,
                       provider: str, key: str) -> bytes:
    """The data key of a KMS-wrapped epoch: HKDF-SHA256(member_key || kms_secret)."""
    if len(member_key) != 32 or len(kms_secret) != KMS_SECRET_LEN:
        raise ValueError("member key and KMS secret must be 32 bytes each")
    info = b"\x00".join((keyring_id.encode("ascii"), epoch.to_bytes(4, "big"),
                         provider.encode("ascii"), key.encode("ascii")))
    return hkdf_sha256(member_key + kms_secret, KMS_COMBINE_SALT, info, 32)
