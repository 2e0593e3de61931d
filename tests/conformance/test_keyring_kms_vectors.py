"""KMS-wrapped keyring vectors (fixtures/keyring/kms.json, docs/spec/keyring.md §5a, §6a):
parsing and MUST-reject rules, signatures, successors, and the data keys a member gets once
the KMS answers, computed through the implementation's extension point with a KMS that
answers exactly the vector's request."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from dvc_secure.core.keys.custody import data_keyset
from dvc_secure.core.keys.identity import Identity
from dvc_secure.core.keys.keyring import Keyring
from dvc_secure.errors import DvcSecureError, KmsDeniedError
from fixtures import custody_vectors, generate_vectors

FILE = Path(generate_vectors.__file__).parent / "keyring" / "kms.json"
DOC = json.loads(FILE.read_text(encoding="utf-8"))
PEOPLE = {name: Identity.from_text(v["text"], name) for name, v in DOC["identities"].items()}
VALID = Keyring.from_json(next(v for v in DOC["vectors"] if v["name"] == "kms-valid")["keyring"])


def test_kms_vectors_are_up_to_date() -> None:
    assert FILE.read_text(encoding="utf-8") == custody_vectors.render()


class VectorKms:
    """Answers the requests listed in a vector, refuses anything else."""

    provider = "aws-kms"

    def __init__(self, requests: Mapping[str, Any]) -> None:
        self.requests = requests
        self.calls = 0

    def wrap(self, key: str, secret: bytes, context: Mapping[str, str]) -> bytes:
        raise AssertionError("no wrapping when reading")

    def unwrap(self, key: str, ciphertext: bytes, context: Mapping[str, str]) -> bytes:
        self.calls += 1
        for req in self.requests.values():
            if (key, base64.b64encode(ciphertext).decode(), dict(context)) == (
                    req["key"], req["ciphertext"], req["context"]):
                return bytes.fromhex(req["kms_secret"])
        raise KmsDeniedError("the simulated KMS refuses this request")


@pytest.mark.parametrize("vector", DOC["vectors"], ids=lambda v: v["name"])
def test_kms_vector(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    if expected["parse"] != "ok":
        with pytest.raises(DvcSecureError) as err:
            Keyring.from_json(vector["keyring"])
        assert type(err.value).__name__ == expected["parse"]
        return
    ring = Keyring.from_json(vector["keyring"])
    if "verify" in expected:
        if isinstance(expected["verify"], str):
            with pytest.raises(DvcSecureError) as err:
                ring.verify_signatures()
            assert type(err.value).__name__ == expected["verify"]
        else:
            assert ring.verify_signatures() == expected["verify"]
    if expected.get("roundtrip"):
        assert ring.to_json() == vector["keyring"]
    if "successor_of_kms_valid" in expected:
        problems = VALID.transition_problems(ring)
        assert (not problems) is (expected["successor_of_kms_valid"] == "ok"), problems
    for who, keys in expected.get("data_keys", {}).items():
        kms = VectorKms(expected["kms"])
        keyset = data_keyset(ring.unwrap(PEOPLE[who]), [ring], lambda _p, k=kms: k)
        for epoch, key in keys.items():
            assert keyset.key_for_epoch(int(epoch)).hex() == key
            assert keyset.key_for_epoch(int(epoch)).hex() == key  # cached: one KMS call
        assert kms.calls == sum(1 for e in keys if e in expected["kms"])


def test_member_key_alone_is_not_the_data_key() -> None:
    vector = next(v for v in DOC["vectors"] if v["name"] == "kms-valid")
    member = VALID.unwrap(PEOPLE["alice"])
    assert member.key_for_epoch(2).hex() != vector["expected"]["data_keys"]["alice"]["2"]
    refused = data_keyset(member, [VALID], lambda _p: VectorKms({}))
    assert refused.key_for_epoch(1) == member.key_for_epoch(1)  # no KMS for epoch 1
    for _ in range(2):  # the refusal is remembered, and raised every time
        with pytest.raises(KmsDeniedError):
            refused.key_for_epoch(2)


# --- PKCS#11 token identity files (docs/spec/identity.md §9) ------------------------------

TOKEN_FILE = Path(generate_vectors.__file__).parent / "identity" / "pkcs11.json"
TOKEN_DOC = json.loads(TOKEN_FILE.read_text(encoding="utf-8"))


def test_token_identity_vectors_are_up_to_date() -> None:
    assert TOKEN_FILE.read_text(encoding="utf-8") == custody_vectors.render_token_identities()


@pytest.mark.parametrize("vector", TOKEN_DOC["vectors"], ids=lambda v: v["name"])
def test_token_identity_vector(vector: dict[str, Any]) -> None:
    from dvc_secure.adapters.custody.pkcs11_token import TokenRef
    from dvc_secure.adapters.local.identity_store import text_kind

    expected = vector["expected"]
    if isinstance(expected, str):
        with pytest.raises(DvcSecureError) as err:
            TokenRef.from_text(vector["text"], "the file")
        assert type(err.value).__name__ == expected
        return
    assert text_kind(vector["text"]) == "pkcs11"
    ref = TokenRef.from_text(vector["text"], "the file")
    assert (ref.module, ref.token, ref.key_id.hex()) == (
        expected["module"], expected["token"], expected["id"])
    assert TokenRef.from_text(ref.to_line(), "again") == ref
