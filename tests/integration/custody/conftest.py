"""Session fixtures: the KMS-protocol servers (moto) and the SoftHSM2 token."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.backends.servers import Server

from .servers import OPEN_CREDENTIALS, kms_client, moto_available, require, start_kms

_alias_numbers = itertools.count(1)


@pytest.fixture(scope="session")
def kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """moto's server, KMS protocol, IAM not enforced."""
    if not moto_available():
        require("moto's server is not installed (pip install 'moto[server]' boto3)")
    server = start_kms(tmp_path_factory.mktemp("kms"), enforce_iam=False)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def kms_iam_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """moto's server, KMS protocol, with IAM enforced: users 'admin' and 'outsider'."""
    if not moto_available():
        require("moto's server is not installed (pip install 'moto[server]' boto3)")
    server = start_kms(tmp_path_factory.mktemp("kms-iam"), enforce_iam=True)
    yield server
    server.stop()


def new_kms_key(server: Server, credentials: dict[str, str] | None = None) -> tuple[str, str]:
    """(key id, alias name) of a fresh symmetric KMS key."""
    client = kms_client(server, credentials or OPEN_CREDENTIALS)
    key_id = client.create_key(Description="dvc-secure test")["KeyMetadata"]["KeyId"]
    alias = f"alias/dvc-secure-test-{next(_alias_numbers)}"
    client.create_alias(AliasName=alias, TargetKeyId=key_id)
    return key_id, alias


@pytest.fixture
def kms_key(kms_server: Server) -> tuple[str, str]:
    return new_kms_key(kms_server)


def tmp_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return home


@pytest.fixture
def softhsm(tmp_path: Path) -> dict[str, str]:
    """A fresh SoftHSM2 token for this test (skip outside CI / fail in CI when missing)."""
    from .servers import softhsm_token

    return softhsm_token(tmp_path / "softhsm")
