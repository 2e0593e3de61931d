"""The former-signer content rule (docs/spec/object-format.md §8.4), unit level."""

from __future__ import annotations

import hashlib
import io
from typing import Any, cast

import pytest

from dvc_secure.adapters.dvc.content_check import (
    Md5Sink,
    PeekedSource,
    authenticated_ciphertext,
    check_former_signer_content,
)
from dvc_secure.core.format.object_format import HEADER_LEN, EncryptingReader, ObjectSeal
from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.errors import ContentMismatchError, ObjectFormatError

CURRENT, FORMER = b"c" * 32, b"f" * 32
CONTENT = b"the rows\n"
MD5 = hashlib.md5(CONTENT).hexdigest()
SHA = hashlib.sha256(CONTENT).digest()


class Signers:
    def is_current_writer(self, public: bytes) -> bool:
        return public == CURRENT

    def content_check_needed(self, epoch: int | None) -> bool:
        return epoch is None or epoch <= 1


def _seal(signer: bytes) -> ObjectSeal:
    return ObjectSeal(epoch=1, plaintext_size=len(CONTENT), plaintext_sha256=SHA, signer=signer,
                      ciphertext_size=0)


def test_current_writer_objects_are_not_checked() -> None:
    check_former_signer_content("runs/aa/bb/cc", _seal(CURRENT), None, Signers())


@pytest.mark.parametrize("rel", [f"files/md5/{MD5[:2]}/{MD5[2:]}",
                                 f"files/md5/{MD5[:2]}/{MD5[2:]}.dir"])
def test_former_signer_object_matching_its_id_is_accepted(rel: str) -> None:
    check_former_signer_content(rel, _seal(FORMER), MD5, Signers())


@pytest.mark.parametrize("rel,md5", [
    ("files/md5/00/" + "0" * 30, MD5),          # other content under a known id
    (f"files/md5/{MD5[:2]}/{MD5[2:]}", None),   # not hashed: never accepted
    ("runs/aa/bb/cc", MD5),                     # a name that is no content hash
    (f"{MD5[:2]}/{MD5[2:]}", MD5),              # DVC 2 layout (md5-dos2unix): not checkable
])
def test_former_signer_object_not_matching_its_name_is_refused(rel: str, md5: str | None) -> None:
    with pytest.raises(ContentMismatchError):
        check_former_signer_content(rel, _seal(FORMER), md5, Signers())


def test_former_signer_manifest_is_checked_by_sha256() -> None:
    check_former_signer_content(f"secure/manifests/{SHA.hex()}", _seal(FORMER), None, Signers())
    with pytest.raises(ContentMismatchError):
        check_former_signer_content("secure/manifests/" + "0" * 64, _seal(FORMER), None,
                                    Signers())


def test_peeked_source_returns_every_byte_once() -> None:
    data = bytes(range(256)) * 3
    src = PeekedSource(io.BytesIO(data))
    assert src.epoch() is None  # not a header
    out = src.read(10) + src.read(HEADER_LEN) + src.read(-1)
    assert out == data
    sink = Md5Sink(io.BytesIO())
    sink.write(data)
    assert sink.md5.hexdigest() == hashlib.md5(data).hexdigest()


class _Keys(Signers):
    """What ``authenticated_ciphertext`` asks of a repository's keys."""

    def __init__(self, key: bytes) -> None:
        from dvc_secure.core.keys.keyring import KeySet

        self.keyset = KeySet(data_keys={1: key}, name_secret=bytes(32), current_epoch=1)

    def is_trusted_signer(self, public: bytes, epoch: int) -> bool:
        return public == CURRENT_KEY.public

    def is_current_writer(self, public: bytes) -> bool:
        return public == CURRENT_KEY.public


CURRENT_KEY = SigningKeyPair.from_private(hashlib.sha256(b"content check writer").digest())


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("size", [0, 5000, (1 << 20) + 7])
def test_authenticated_ciphertext_is_the_digest_of_the_stored_bytes(version: int, size: int) -> None:
    """v2 objects take the reader's own digest (one pass), v1 objects are hashed as read."""
    key, rel = hashlib.sha256(b"data key").digest(), "files/md5/ab/" + "c" * 30
    writer = EncryptingReader(io.BytesIO(bytes(size)), data_key=key, epoch=1,
                              object_id=rel.encode(), signer=CURRENT_KEY, version=version)
    stored = writer.read()
    keys = _Keys(key)
    got = authenticated_ciphertext(io.BytesIO(stored), rel, "x/y", cast(Any, keys))
    assert got == (len(stored), hashlib.sha256(stored).hexdigest())
    with pytest.raises(ObjectFormatError):
        authenticated_ciphertext(io.BytesIO(stored[:-1]), rel, "x/y", cast(Any, keys))
