"""Which key opens an object (docs/spec/domain-key.md §4): the header MAC decides, before
any segment is decrypted; no key: the domain store's error, nothing written."""

from __future__ import annotations

import io
from typing import Any, cast

import pytest

from dvc_secure.adapters.dvc.content_check import decrypt_checked
from dvc_secure.core.format.domain_keys import derive_domain_data_key
from dvc_secure.core.format.object_format import EncryptingReader
from dvc_secure.core.format.primitives import SigningKeyPair
from dvc_secure.errors import DomainKeyMissingError, DvcSecureError, ErasedError

EPOCH_KEY = bytes(range(32))
DOMAIN_KEY = derive_domain_data_key(EPOCH_KEY, b"\x05" * 32, "cohort-2024", 1)
WRITER = SigningKeyPair.from_private(bytes(range(64, 96)))
REL = "files/md5/ab/" + "c" * 30
PAYLOAD = b"patient rows\n" * 100


class Keyset:
    current_epoch = 1

    def key_for_epoch(self, epoch: int) -> bytes:
        return EPOCH_KEY


class Keys:
    keyset = Keyset()

    def is_trusted_signer(self, public: bytes, epoch: int) -> bool:
        return public == WRITER.public

    def is_current_writer(self, public: bytes) -> bool:
        return True

    def content_check_needed(self, epoch: int | None) -> bool:
        return False


class Domains:
    def __init__(self, keys: list[bytes], error: DvcSecureError | None = None) -> None:
        self.keys, self.error, self.listed = keys, error, 0

    def candidates(self, epoch: int) -> list[bytes]:
        self.listed += 1
        return self.keys

    def missing(self, rel: str, epoch: int) -> DvcSecureError | None:
        return self.error


def _object(key: bytes) -> bytes:
    return EncryptingReader(io.BytesIO(PAYLOAD), data_key=key, epoch=1, object_id=REL.encode(),
                            signer=WRITER).read()


def test_repository_key_objects_do_not_list_domains() -> None:
    sink, domains = io.BytesIO(), Domains([])
    decrypt_checked(io.BytesIO(_object(EPOCH_KEY)), sink, REL, cast(Any, Keys()), domains)
    assert sink.getvalue() == PAYLOAD and domains.listed == 0


def test_domain_object_opens_with_its_domain_key() -> None:
    sink = io.BytesIO()
    decrypt_checked(io.BytesIO(_object(DOMAIN_KEY)), sink, REL, cast(Any, Keys()),
                    Domains([bytes(32), DOMAIN_KEY]))
    assert sink.getvalue() == PAYLOAD


@pytest.mark.parametrize("error", [ErasedError("erased on 2026-12-07 by alice"),
                                   DomainKeyMissingError("no valid erasure record")])
def test_no_key_fails_with_the_stores_reason_and_writes_nothing(error: DvcSecureError) -> None:
    sink = io.BytesIO()
    with pytest.raises(type(error)):
        decrypt_checked(io.BytesIO(_object(DOMAIN_KEY)), sink, REL, cast(Any, Keys()),
                        Domains([], error))
    assert sink.getvalue() == b""
