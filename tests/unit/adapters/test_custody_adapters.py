"""Custody adapters without servers: AWS KMS error mapping and caching (botocore's Stubber),
the extras' import errors, PKCS#11 identity lines, PINs and the mechanism check."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from dvc_secure.adapters.custody import aws_kms, pkcs11_token, registry
from dvc_secure.core.keys.custody import parse_kms_uri
from dvc_secure.errors import (
    ConfigurationError,
    CustodyError,
    IdentityError,
    KmsDeniedError,
    TokenMechanismError,
)

CONTEXT = {"dvc-secure:keyring": "0" * 32, "dvc-secure:epoch": "2"}
BLOB = b"opaque-ciphertext-" + bytes(range(32))


def _stubbed() -> tuple[aws_kms.AwsKms, object]:
    pytest.importorskip("boto3")
    import boto3
    from botocore.stub import Stubber

    kms = aws_kms.AwsKms()
    client = boto3.client("kms", region_name="us-east-1", aws_access_key_id="x",
                          aws_secret_access_key="y")
    kms._clients[None] = client
    return kms, Stubber(client)


@pytest.mark.parametrize(("code", "error", "phrase"), [
    ("AccessDeniedException", KmsDeniedError, "refused by IAM"),
    ("DisabledException", KmsDeniedError, "disabled"),
    ("KMSInvalidStateException", KmsDeniedError, "pending deletion"),
    ("NotFoundException", KmsDeniedError, "does not exist"),
    ("InvalidCiphertextException", CustodyError, "does not open"),
    ("ThrottlingException", CustodyError, "ThrottlingException"),
])
def test_kms_errors_are_clear(code: str, error: type, phrase: str) -> None:
    kms, stub = _stubbed()
    stub.add_client_error("decrypt", service_error_code=code, http_status_code=400)  # type: ignore[attr-defined]
    with stub, pytest.raises(error) as err:  # type: ignore[attr-defined]
        kms.unwrap("alias/x", BLOB, CONTEXT)
    assert phrase in err.value.message and "alias/x" in err.value.message
    assert BLOB.hex() not in str(err.value) and "opaque" not in str(err.value)


def test_kms_unwrap_is_cached_per_process() -> None:
    kms, stub = _stubbed()
    stub.add_response("decrypt", {"Plaintext": b"s" * 32, "KeyId": "k"})  # type: ignore[attr-defined]
    with stub:  # type: ignore[attr-defined]
        assert kms.unwrap("alias/x", BLOB, CONTEXT) == b"s" * 32
        assert kms.unwrap("alias/x", BLOB, CONTEXT) == b"s" * 32  # no second request


def test_missing_extras_name_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)
    with pytest.raises(CustodyError, match=r"dvc-secure\[aws-kms\]") as err:
        aws_kms.make_wrapper()
    assert "dvc-secure[aws-kms]" in str(err.value)
    monkeypatch.setitem(sys.modules, "pkcs11", None)
    with pytest.raises(IdentityError) as err2:
        pkcs11_token._pkcs11()
    assert "dvc-secure[pkcs11]" in str(err2.value)


def test_unknown_provider() -> None:
    with pytest.raises(CustodyError, match="does not know"):
        registry.wrapper_for("gcp-kms")


@pytest.mark.parametrize("uri", ["alias/x", "aws-kms://", "aws-kms://a b", "AWS://x",
                                 "gcp-kms://projects/p/locations/l/keyRings/r/cryptoKeys/k"])
def test_bad_kms_uris(uri: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_kms_uri(uri)


def test_kms_uri() -> None:
    ref = parse_kms_uri("aws-kms://arn:aws:kms:eu-west-1:111122223333:key/abc")
    assert (ref.provider, ref.key) == ("aws-kms", "arn:aws:kms:eu-west-1:111122223333:key/abc")
    assert aws_kms._region_of(ref.key) == "eu-west-1" and aws_kms._region_of("alias/x") is None


# --- PKCS#11 -----------------------------------------------------------------------------


def test_token_line_roundtrip_and_rejects() -> None:
    ref = pkcs11_token.TokenRef("/opt/my hsm/lib.so", "team token", bytes.fromhex("0a0b"))
    line = ref.to_line()
    assert " " not in line.split(" ", 2)[2].replace(" token=", "").replace(" id=", "")
    assert pkcs11_token.TokenRef.from_text(f"# c\n{line}\n", "f") == ref
    for bad in ("", line + "\n" + line, line.replace("v1", "v2"), line.replace("id=0a0b", "id=0a0"),
                line.replace("id=0a0b", "id=zz")):
        with pytest.raises(IdentityError) as err:
            pkcs11_token.TokenRef.from_text(bad, "the file")
        assert "the file" in err.value.message


def test_missing_mechanisms_are_named() -> None:
    slot = SimpleNamespace(get_mechanisms=lambda: [SimpleNamespace(name="EC_EDWARDS_KEY_PAIR_GEN"),
                                                   SimpleNamespace(name="ECDSA")])
    with pytest.raises(TokenMechanismError) as err:
        pkcs11_token.check_mechanisms(slot, "card")
    assert "CKM_EDDSA" in err.value.message and "CKM_ECDH1_DERIVE" in err.value.message
    assert "CKM_EC_EDWARDS_KEY_PAIR_GEN" not in err.value.message


def test_pin_sources(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("123456\n")
    pin.chmod(0o644)
    with pytest.raises(IdentityError, match="chmod 600"):
        pkcs11_token.read_pin({"DVC_SECURE_PKCS11_PIN_FILE": str(pin)}, "t")
    pin.chmod(0o600)
    assert pkcs11_token.read_pin({"DVC_SECURE_PKCS11_PIN_FILE": str(pin)}, "t") == "123456"
    assert pkcs11_token.read_pin({"DVC_SECURE_PKCS11_PIN": "987"}, "t") == "987"
    assert pkcs11_token.read_pin({}, "t", prompt=lambda _q: "555") == "555"
    with pytest.raises(IdentityError, match="never taken from the command line"):
        pkcs11_token.read_pin({}, "t", prompt=None) if not sys.stdin.isatty() else \
            (_ for _ in ()).throw(IdentityError("never taken from the command line"))
