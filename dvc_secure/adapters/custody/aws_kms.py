"""AWS KMS as a key wrapper (``aws-kms://<key id | alias/NAME | ARN>``), through boto3.

Credentials, region and endpoint come from boto3's own chain: environment, shared config,
web-identity (OIDC) federation in CI (``AWS_ROLE_ARN`` + ``AWS_WEB_IDENTITY_TOKEN_FILE``),
instance roles; ``AWS_ENDPOINT_URL_KMS`` points it at another KMS-protocol server. Every
unwrap is a KMS ``Decrypt`` with the keyring id and epoch as EncryptionContext, so it shows
in CloudTrail with both. Unwrapped secrets are cached in this process only.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from dvc_secure.errors import CustodyError, KmsDeniedError

EXTRA = "aws-kms"

_DENIED = {
    "AccessDeniedException": "refused by IAM or the key policy (no kms:{op} for you), or the "
                             "key does not exist in this account and region",
    "DisabledException": "the key is disabled",
    "KMSInvalidStateException": "the key is pending deletion or otherwise unusable",
    "NotFoundException": "the key does not exist (deleted?)",
    "KeyUnavailableException": "the key is unavailable",
}
_BROKEN = {
    "InvalidCiphertextException": "the wrapped secret does not open (tampered keyring, or "
                                  "wrapped for another keyring or epoch)",
    "IncorrectKeyException": "the wrapped secret belongs to another KMS key",
}


def _boto3() -> Any:
    try:
        import boto3
    except ImportError:
        raise CustodyError(
            "this repository's keys are wrapped by AWS KMS, and boto3 is not installed",
            hint=f"pip install 'dvc-secure[{EXTRA}]'") from None
    return boto3


def _region_of(key: str) -> str | None:
    parts = key.split(":")
    return parts[3] if key.startswith("arn:") and len(parts) > 4 and parts[3] else None


class AwsKms:
    provider = "aws-kms"

    def __init__(self) -> None:
        self._clients: dict[str | None, Any] = {}
        self._cache: dict[tuple[str, bytes, tuple[tuple[str, str], ...]], bytes] = {}
        self._lock = threading.Lock()

    def _client(self, key: str) -> Any:
        region = _region_of(key)
        if region not in self._clients:
            boto3 = _boto3()
            try:
                self._clients[region] = boto3.client("kms", region_name=region)
            except Exception as exc:  # NoRegionError and friends: configuration
                raise CustodyError(f"cannot set up the AWS KMS client: {type(exc).__name__}",
                                   hint="set AWS_REGION (or use the key's ARN) and credentials "
                                   "(docs/custody.md)") from None
        return self._clients[region]

    def wrap(self, key: str, secret: bytes, context: Mapping[str, str]) -> bytes:
        response = self._call("Encrypt", key, lambda c: c.encrypt(
            KeyId=key, Plaintext=secret, EncryptionContext=dict(context)))
        return bytes(response["CiphertextBlob"])

    def unwrap(self, key: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        slot = (key, ciphertext, tuple(sorted(context.items())))
        with self._lock:
            if slot in self._cache:
                return self._cache[slot]
            response = self._call("Decrypt", key, lambda c: c.decrypt(
                KeyId=key, CiphertextBlob=ciphertext, EncryptionContext=dict(context)))
            secret = bytes(response["Plaintext"])
            self._cache[slot] = secret
        return secret

    def _call(self, op: str, key: str, call: Any) -> Any:
        client = self._client(key)
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"aws-kms://{key}"
        try:
            return call(client)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", "?"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in ("AccessDenied", "403") or (status == 403 and code not in _DENIED):
                code = "AccessDeniedException"  # IAM's own denial (HTTP 403) names no KMS code
            if code in _DENIED:
                raise KmsDeniedError(f"AWS KMS refused to {op.lower()} with {where} ({code}): "
                                     + _DENIED[code].format(op=op)) from None
            if code in _BROKEN:
                raise CustodyError(f"AWS KMS {op} with {where} failed ({code}): {_BROKEN[code]}",
                                   hint="restore .dvc/secure/keyring.json from git history"
                                   ) from None
            raise CustodyError(f"AWS KMS {op} with {where} failed ({code})") from None
        except BotoCoreError as exc:  # no credentials, no region, endpoint unreachable
            raise CustodyError(f"AWS KMS {op} with {where} could not be made: "
                               f"{type(exc).__name__}",
                               hint="check AWS credentials and region (in CI: OIDC federation, "
                               "docs/custody.md), and AWS_ENDPOINT_URL_KMS if set") from None


def make_wrapper() -> AwsKms:
    _boto3()  # fail here, with the extra to install, before anything else
    return AwsKms()
