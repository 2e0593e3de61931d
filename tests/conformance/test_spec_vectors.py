"""The spec test vectors (fixtures/) against the implementation and against the specs.

Each object vector is checked twice: by the implementation (``decrypt_object``), which
must produce exactly the expected outcome, and by ``spec_open`` below, a second reader
written from docs/spec/object-format.md with pyca/cryptography alone. The second check
is what makes the vectors evidence that the spec describes the code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, AESSIV, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from dvc_secure.core.format.names import derive_name_key, hide_name, reveal_name
from dvc_secure.core.format.object_reader import decrypt_object
from dvc_secure.core.keys import bech32
from dvc_secure.core.keys.identity import Identity, decode_recipient, decode_signing_key
from dvc_secure.core.keys.keyring import Keyring, KeySet
from dvc_secure.errors import DvcSecureError
from fixtures import generate_vectors

FIXTURES = Path(generate_vectors.__file__).parent
OBJECT_FILES = sorted((FIXTURES / "object-format").glob("*.json"))
KEYRING_DOC = json.loads((FIXTURES / "keyring" / "vectors.json").read_text(encoding="utf-8"))
IDENTITY_DOC = json.loads((FIXTURES / "identity" / "vectors.json").read_text(encoding="utf-8"))
NAMES_DOC = json.loads((FIXTURES / "hidden-names" / "vectors.json").read_text(encoding="utf-8"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


# --- the vectors are what the generator makes ------------------------------------------


def test_generated_vectors_are_up_to_date(tmp_path: Path) -> None:
    assert generate_vectors.main([str(tmp_path)]) == 0
    fresh = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.json")}
    committed = {
        p.relative_to(FIXTURES).as_posix()
        for d in generate_vectors.GENERATED_DIRS
        for p in (FIXTURES / d).rglob("*.json")
    }
    assert fresh == committed, "stale or missing vector files: run fixtures/generate_vectors.py"
    for rel in sorted(fresh):
        assert (tmp_path / rel).read_bytes() == (FIXTURES / rel).read_bytes(), rel


def test_every_required_attack_has_a_vector() -> None:
    names = {p.stem for p in OBJECT_FILES}
    required = {
        "success-empty-payload",
        "success-one-byte",
        "success-three-segments",
        "success-stream-fills-one-segment",
        "success-trailer-split-135-1",
        "header-bad-magic",
        "header-reserved-flag",
        "header-segment-log2-15",
        "header-segment-log2-25",
        "header-epoch-zero",
        "header-unsupported-version",
        "header-unsupported-suite",
        "ciphertext-bit-flipped",
        "truncated-at-segment-boundary",
        "truncated-mid-segment",
        "truncated-header-only",
        "trailing-data-after-full-final-segment",
        "wrong-key",
        "swapped-object",
        "reordered-segments",
        "untrusted-signer",
        "signature-bit-flipped",
        "trailer-digest-mismatch",
        "v2-success-one-byte",
        "v2-success-trailer-split-135-1",
        "v2-success-payload-fills-two-segments",
        "v2-downgraded-to-version-1",
        "v2-payload-segment-replaced",
        "v2-payload-sha256-signed",
        "v2-signed-as-version-1",
        "v2-untrusted-signer",
    }
    assert required <= names
    outcomes = {_load(p)["expected"]["outcome"] for p in OBJECT_FILES}
    assert outcomes == {
        "success",
        "HeaderError",
        "UnsupportedVersionError",
        "WrongKeyError",
        "AuthenticationError",
        "TruncationError",
        "TrailingDataError",
        "SignatureError",
        "UntrustedSignerError",
        "NoKeyForEpochError",
    }


# --- object format --------------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


def _inputs(doc: dict[str, Any]) -> tuple[bytes, dict[int, bytes], set[bytes], bytes]:
    inputs = doc["inputs"]
    keys = {int(e): bytes.fromhex(k) for e, k in inputs["data_keys"].items()}
    trusted = {bytes.fromhex(k) for k in inputs["trusted_signers"]}
    return inputs["object_id"].encode(), keys, trusted, bytes.fromhex(doc["ciphertext"])


@pytest.mark.parametrize("path", OBJECT_FILES, ids=lambda p: p.stem)
def test_object_vector_implementation(path: Path) -> None:
    doc = _load(path)
    object_id, keys, trusted, ciphertext = _inputs(doc)
    keyset = KeySet(data_keys=keys, name_secret=bytes(32), current_epoch=max(keys))
    expected = doc["expected"]
    sink = _Sink()
    try:
        seal = decrypt_object(
            io.BytesIO(ciphertext),
            sink,
            object_id=object_id,
            key_for_epoch=keyset.key_for_epoch,
            is_trusted_signer=lambda k, _epoch: k in trusted,
        )
    except DvcSecureError as exc:
        assert type(exc).__name__ == expected["outcome"], str(exc)
        return
    assert expected["outcome"] == "success", f"accepted an object that must fail: {path.stem}"
    assert seal.plaintext_size == expected["payload_size"] == len(sink.data)
    assert seal.plaintext_sha256.hex() == expected["payload_sha256"]
    assert hashlib.sha256(sink.data).hexdigest() == expected["payload_sha256"]
    assert seal.epoch == expected["epoch"]
    assert seal.signer.hex() == expected["signer"]
    assert seal.ciphertext_size == expected["ciphertext_size"] == len(ciphertext)
    if "payload" in expected:
        assert sink.data.hex() == expected["payload"]


MAGIC = b"DVCSEC"
TRAILER = struct.Struct(">Q32s32s64s")


def spec_open(
    ciphertext: bytes, object_id: bytes, keys: dict[int, bytes], trusted: set[bytes]
) -> tuple[str, bytes]:
    """A reader written from docs/spec/object-format.md §8; returns (outcome, payload)."""
    if len(ciphertext) < 78:
        if len(ciphertext) >= 6 and ciphertext[:6] != MAGIC:
            return "HeaderError", b""
        return "TruncationError", b""
    magic, version, suite, seglog, flags, epoch, salt = struct.unpack_from(
        ">6sBBBBI32s", ciphertext
    )
    if magic != MAGIC:
        return "HeaderError", b""
    if version not in (1, 2) or suite != 1:
        return "UnsupportedVersionError", b""
    if not 16 <= seglog <= 24 or flags != 0 or epoch == 0:
        return "HeaderError", b""
    if epoch not in keys:
        return "NoKeyForEpochError", b""
    info = b"dvc-secure/v1/object\x00" + ciphertext[6:14] + struct.pack(">H", len(object_id))
    okm = HKDF(hashes.SHA256(), 64, salt, info + object_id).derive(keys[epoch])
    mac = hmac.new(okm[32:], ciphertext[:46], "sha256").digest()
    if not hmac.compare_digest(mac, ciphertext[46:78]):
        return "WrongKeyError", b""
    body = ciphertext[78:]
    if not body:
        return "TruncationError", b""
    aead = AESGCM(okm[:32])
    n = (1 << seglog) + 16
    chunks = [body[i : i + n] for i in range(0, len(body), n)]
    stream = b""
    for i, chunk in enumerate(chunks):
        final = i == len(chunks) - 1

        def seal_open(as_final: bool, i: int = i, chunk: bytes = chunk) -> bytes | None:
            try:
                nonce = i.to_bytes(11, "big") + (b"\x01" if as_final else b"\x00")
                return aead.decrypt(nonce, chunk, None)
            except InvalidTag:
                return None

        plain = seal_open(final)
        if plain is None:
            if seal_open(not final) is None:
                return "AuthenticationError", b""
            return ("TruncationError" if final else "TrailingDataError"), b""
        if final and i > 0 and not plain:
            return "AuthenticationError", b""
        stream += plain
    if len(stream) < 136:
        return "TruncationError", b""
    payload = stream[:-136]
    size, digest, signer, signature = TRAILER.unpack(stream[-136:])
    if version == 1:
        expected = hashlib.sha256(payload).digest()
        message = b"dvc-secure/v1/object-signature\x00" + struct.pack(">H", len(object_id))
        message += object_id + ciphertext[:78] + struct.pack(">Q", size) + digest
    else:  # §6.4: the content digest; the header is inside it
        m = len(payload) // (1 << seglog)
        expected = hashlib.sha256(
            ciphertext[:78] + b"".join(chunks[:m]) + payload[m * (1 << seglog) :]
        ).digest()
        message = b"dvc-secure/v2/object-signature\x00" + struct.pack(">H", len(object_id))
        message += object_id + struct.pack(">Q", size) + digest
    if size != len(payload) or digest != expected:
        return "SignatureError", b""
    try:
        Ed25519PublicKey.from_public_bytes(signer).verify(signature, message)
    except InvalidSignature:
        return "SignatureError", b""
    if signer not in trusted:
        return "UntrustedSignerError", b""
    return "success", payload


@pytest.mark.parametrize("path", OBJECT_FILES, ids=lambda p: p.stem)
def test_object_vector_matches_spec(path: Path) -> None:
    doc = _load(path)
    object_id, keys, trusted, ciphertext = _inputs(doc)
    outcome, payload = spec_open(ciphertext, object_id, keys, trusted)
    assert outcome == doc["expected"]["outcome"]
    if outcome == "success":
        assert hashlib.sha256(payload).hexdigest() == doc["expected"]["payload_sha256"]


# --- hidden names ----------------------------------------------------------------------------


def _spec_hide(name_secret: bytes, name: str) -> str:
    key = HKDF(hashes.SHA256(), 64, None, b"dvc-secure/v1/names").derive(name_secret)
    raw = name.encode()
    padded = raw + b"\x00" * (max(96, -(-len(raw) // 32) * 32) - len(raw))
    sealed = AESSIV(key).encrypt(padded, [b"dvc-secure/v1/object-name"])
    text = base64.b32encode(sealed).decode().rstrip("=").lower()
    return sealed[:1].hex() + "/" + sealed[1:2].hex() + text


def test_name_key_derivation() -> None:
    secret = bytes.fromhex(NAMES_DOC["name_secret"])
    assert derive_name_key(secret).hex() == NAMES_DOC["name_key"]


@pytest.mark.parametrize("vector", NAMES_DOC["valid"], ids=lambda v: v["description"])
def test_hidden_name_vector(vector: dict[str, str]) -> None:
    key = bytes.fromhex(NAMES_DOC["name_key"])
    secret = bytes.fromhex(NAMES_DOC["name_secret"])
    assert hide_name(key, vector["name"]) == vector["hidden"]
    assert _spec_hide(secret, vector["name"]) == vector["hidden"]
    assert reveal_name(key, vector["hidden"]) == vector["name"]


@pytest.mark.parametrize("vector", NAMES_DOC["foreign"], ids=lambda v: v["description"])
def test_foreign_name_vector(vector: dict[str, str]) -> None:
    assert reveal_name(bytes.fromhex(NAMES_DOC["name_key"]), vector["hidden"]) is None


# --- keyrings ----------------------------------------------------------------------------------

IDENTITIES = {
    name: Identity.from_text(v["text"], name) for name, v in KEYRING_DOC["identities"].items()
}


@pytest.mark.parametrize("vector", KEYRING_DOC["vectors"], ids=lambda v: v["name"])
def test_keyring_vector(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    if expected["parse"] != "ok":
        with pytest.raises(DvcSecureError) as info:
            Keyring.from_json(vector["keyring"])
        assert type(info.value).__name__ == expected["parse"]
        return
    ring = Keyring.from_json(vector["keyring"])
    if isinstance(expected["verify"], str):
        with pytest.raises(DvcSecureError) as info:
            ring.verify_signatures()
        assert type(info.value).__name__ == expected["verify"]
        return
    assert ring.verify_signatures() == expected["verify"]
    if "digest" in expected:
        assert ring.digest == expected["digest"]
    if expected.get("roundtrip"):
        assert ring.to_json() == vector["keyring"]
    for who, want in expected.get("unwrap", {}).items():
        if isinstance(want, str):
            with pytest.raises(DvcSecureError) as info:
                ring.unwrap(IDENTITIES[who])
            assert type(info.value).__name__ == want
            continue
        keys = ring.unwrap(IDENTITIES[who])
        assert {str(e): k.hex() for e, k in keys.data_keys.items()} == want["data_keys"]
        assert keys.name_secret.hex() == want["name_secret"]


def test_valid_keyring_matches_spec() -> None:
    """Canonical bytes, signature and one stanza, checked from keyring.md alone."""
    vector = next(v for v in KEYRING_DOC["vectors"] if v["name"] == "valid")
    doc = json.loads(vector["keyring"])
    canonical = json.dumps(
        doc["signed"], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()
    assert hashlib.sha256(canonical).hexdigest() == vector["expected"]["digest"]
    alice = IDENTITIES["alice"]
    assert alice.signing is not None
    (sig,) = doc["signatures"]
    assert sig["keyid"] == alice.signing.public.hex()[:16]
    Ed25519PublicKey.from_public_bytes(alice.signing.public).verify(
        base64.b64decode(sig["sig"]), b"dvc-secure/v1/keyring-signature\x00" + canonical
    )
    recipient = decode_recipient(alice.recipient)
    keyring_id = doc["signed"]["keyring_id"]
    for epoch in doc["signed"]["epochs"]:
        stanza = next(s for s in epoch["stanzas"] if s["recipient"] == alice.recipient)
        eph = base64.b64decode(stanza["ephemeral"])
        shared = X25519PrivateKey.from_private_bytes(alice.encryption.private).exchange(
            X25519PublicKey.from_public_bytes(eph)
        )
        label = (
            b"dvc-secure/v1/keyring-X25519\x00"
            + keyring_id.encode()
            + b"\x00"
            + struct.pack(">I", epoch["epoch"])
        )
        wrap_key = HKDF(hashes.SHA256(), 32, eph + recipient, label).derive(shared)
        secret = ChaCha20Poly1305(wrap_key).decrypt(
            bytes(12), base64.b64decode(stanza["body"]), None
        )
        want = vector["expected"]["unwrap"]["alice"]
        assert secret[:32].hex() == want["data_keys"][str(epoch["epoch"])]
        assert secret[32:].hex() == want["name_secret"]


# --- identities ------------------------------------------------------------------------------


def _secret_parts(text: str) -> list[str]:
    """The bech32 data of every key-looking line (what an error must never show)."""
    parts = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "1" in line:
            parts.append(line.rsplit("1", 1)[-1].lower())
    return [p for p in parts if len(p) >= 8]


@pytest.mark.parametrize("vector", IDENTITY_DOC["identities"], ids=lambda v: v["name"])
def test_identity_vector(vector: dict[str, Any]) -> None:
    expected = vector["expected"]
    if expected["outcome"] != "ok":
        with pytest.raises(DvcSecureError) as info:
            Identity.from_text(vector["text"], "vector.txt")
        assert type(info.value).__name__ == expected["outcome"]
        shown = str(info.value).lower()
        assert "vector.txt" in shown
        for secret in _secret_parts(vector["text"]):
            assert secret not in shown
        return
    ident = Identity.from_text(vector["text"], "vector.txt")
    assert ident.recipient == expected["recipient"]
    assert ident.encryption.public.hex() == expected["x25519_public"]
    assert ident.signing_key == expected["signing_key"]
    assert (ident.signing.public.hex() if ident.signing else None) == expected["ed25519_public"]


@pytest.mark.parametrize("vector", IDENTITY_DOC["public_keys"], ids=lambda v: v["text"].strip())
def test_public_key_vector(vector: dict[str, str]) -> None:
    decode = decode_recipient if vector["kind"] == "recipient" else decode_signing_key
    if vector["expected"] == "IdentityError":
        with pytest.raises(DvcSecureError) as info:
            decode(vector["text"])
        assert type(info.value).__name__ == "IdentityError"
    else:
        assert decode(vector["text"]).hex() == vector["expected"]


def test_age_keygen_identity_is_a_reader_identity() -> None:
    """fixtures/identity/age-keygen-sample.txt was written by age-keygen 1.1.1 (not generated);
    its '# public key:' comment is age's own recipient for it."""
    text = (FIXTURES / "identity" / "age-keygen-sample.txt").read_text(encoding="utf-8")
    recipient = next(
        line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("# public key:")
    )
    ident = Identity.from_text(text, "age-keygen-sample.txt")
    assert ident.recipient == recipient
    assert ident.signing is None
    secret_line = text.splitlines()[-1]
    assert bech32.encode("age-secret-key-", ident.encryption.private).upper() == secret_line
