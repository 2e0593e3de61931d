"""One isolated storage location per test on a running server, plus the backend's OWN client
(boto3, azure-storage-blob, google-cloud-storage, an SSH/SFTP session) to look at what the
storage provider really holds, independent of DVC and of dvc-secure."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from .servers import HOST, Server


def _unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:20]}"


class Store(ABC):
    """A DVC remote location on one backend: ``url`` + ``options`` are what a user writes with
    ``dvc remote add`` / ``dvc remote modify``; ``credentials`` go to ``--local``."""

    kind: str
    url: str
    options: dict[str, Any]
    credentials: dict[str, Any]

    def remote_config(self) -> dict[str, Any]:
        return {"url": self.url, **self.options, **self.credentials}

    @abstractmethod
    def objects(self) -> dict[str, bytes]:
        """Every object under the location: key relative to ``url`` -> stored bytes."""

    @abstractmethod
    def keys(self) -> list[str]:
        """Every object key under the location, relative to ``url`` (a listing only)."""

    @abstractmethod
    def wipe(self) -> None:
        """Delete everything under the location (a lost primary, for disaster recovery)."""


class SSHStore(Store):
    kind = "ssh"

    def __init__(self, server: Server, root: Path) -> None:
        self.server = server
        self.root = root / _unique("store-")
        self.url = f"ssh://{HOST}:{server.port}{self.root}"
        self.options = {}
        self.credentials = {"user": server.info["user"], "keyfile": server.info["keyfile"]}

    def _fs(self) -> Any:
        from sshfs import SSHFileSystem

        return SSHFileSystem(host=HOST, port=self.server.port, username=self.server.info["user"],
                             client_keys=[self.server.info["keyfile"]], known_hosts=None)

    def keys(self) -> list[str]:
        fs = self._fs()
        try:
            found = fs.find(str(self.root))
        except FileNotFoundError:
            return []
        return sorted(p[len(str(self.root)) + 1:] for p in found)

    def objects(self) -> dict[str, bytes]:
        fs = self._fs()
        return {k: fs.cat_file(f"{self.root}/{k}") for k in self.keys()}

    def wipe(self) -> None:
        fs = self._fs()
        if fs.exists(str(self.root)):
            fs.rm(str(self.root), recursive=True)


class S3Store(Store):
    kind = "s3"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.bucket = _unique("b")
        self.prefix = "dvc/store"
        self.url = f"s3://{self.bucket}/{self.prefix}"
        self.options = {"endpointurl": server.endpoint, "region": "us-east-1"}
        self.credentials = dict(server.info)
        self.client().create_bucket(Bucket=self.bucket)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.server.endpoint, region_name="us-east-1",
                            aws_access_key_id=self.server.info["access_key_id"],
                            aws_secret_access_key=self.server.info["secret_access_key"])

    def keys(self, page_size: int = 1000) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + "/", PaginationConfig={"PageSize": page_size})
        return sorted(o["Key"][len(self.prefix) + 1:] for page in pages
                      for o in page.get("Contents", []))

    def objects(self) -> dict[str, bytes]:
        c = self.client()
        return {k: c.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{k}")["Body"].read()
                for k in self.keys()}

    def wipe(self) -> None:
        c = self.client()
        keys = [f"{self.prefix}/{k}" for k in self.keys()]
        for i in range(0, len(keys), 1000):
            c.delete_objects(Bucket=self.bucket,
                             Delete={"Objects": [{"Key": k} for k in keys[i:i + 1000]]})


class AzureStore(Store):
    kind = "azure"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.container = _unique("c")
        self.prefix = "dvc/store"
        self.url = f"azure://{self.container}/{self.prefix}"
        self.options = {}
        self.credentials = {"connection_string": server.info["connection_string"]}
        self.client().create_container()

    def client(self) -> Any:
        from azure.storage.blob import ContainerClient

        return ContainerClient.from_connection_string(self.server.info["connection_string"],
                                                      self.container)

    def keys(self) -> list[str]:
        return sorted(b.name[len(self.prefix) + 1:]
                      for b in self.client().list_blobs(name_starts_with=self.prefix + "/"))

    def objects(self) -> dict[str, bytes]:
        c = self.client()
        return {k: c.download_blob(f"{self.prefix}/{k}").readall() for k in self.keys()}

    def wipe(self) -> None:
        c = self.client()
        for k in self.keys():
            c.delete_blob(f"{self.prefix}/{k}")


class GCSStore(Store):
    kind = "gs"

    def __init__(self, server: Server) -> None:
        self.server = server
        self.bucket = _unique("g")
        self.prefix = "dvc/store"
        self.url = f"gs://{self.bucket}/{self.prefix}"
        self.options = {"endpointurl": server.endpoint}
        self.credentials = {}
        self.client().create_bucket(self.bucket)

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="dvc-secure-test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.server.endpoint})

    def _blobs(self) -> list[Any]:
        return list(self.client().list_blobs(self.bucket, prefix=self.prefix + "/"))

    def keys(self) -> list[str]:
        return sorted(b.name[len(self.prefix) + 1:] for b in self._blobs())

    def objects(self) -> dict[str, bytes]:
        return {b.name[len(self.prefix) + 1:]: b.download_as_bytes() for b in self._blobs()}

    def wipe(self) -> None:
        for b in self._blobs():
            b.delete()


def make_store(kind: str, server: Server, scratch: Path) -> Store:
    if kind == "ssh":
        return SSHStore(server, scratch)
    if kind == "s3":
        return S3Store(server)
    if kind == "azure":
        return AzureStore(server)
    if kind == "gs":
        return GCSStore(server)
    raise ValueError(kind)
