"""S3 lists at most 1000 keys per page: with more objects than one page, ``dvc status -c``
and ``dvc gc -c`` through secure:// must still see every object (hidden names are found
only by listing, so a listing that stopped at the first page would lose objects)."""

from __future__ import annotations

import json
from collections.abc import Callable

from .conftest import BackendRepo
from .helpers import local_oids, object_keys, wipe_local
from .stores import S3Store, Store

N_FILES = 1100  # + the .dir listing: 1101 objects, two pages of S3 ListObjectsV2
N_DROPPED = 150


def test_more_objects_than_one_listing_page(
        make_backend_store: Callable[[str], Store],
        make_backend_repo: Callable[..., BackendRepo]) -> None:
    store = make_backend_store("s3")
    assert isinstance(store, S3Store)
    repo = make_backend_repo(store)
    data = repo.root / "data"
    data.mkdir()
    for i in range(N_FILES):
        (data / f"f{i:05d}.txt").write_text(f"object {i}\n")
    repo.dvc("add", "-q", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "v1")
    repo.dvc("push", "-q")

    # the provider's own listing, page by page: all 1101 objects, none under an md5 name
    pages = list(store.client().get_paginator("list_objects_v2").paginate(
        Bucket=store.bucket, Prefix=store.prefix + "/"))
    own = store.prefix + "/dvc-secure/"  # the plugin's own files (the push's audit event)
    assert len(pages) == 2 and sum(1 for p in pages for o in p.get("Contents", [])
                                   if not o["Key"].startswith(own)) == N_FILES + 1
    keys = object_keys(store)
    oids = local_oids(repo.root)
    assert len(keys) == len(oids) == N_FILES + 1
    assert not {k.replace("/", "") for k in keys} & {o[2:] for o in oids}

    # status -c lists the whole remote (DVC traverses for many ids): everything is found
    status = repo.dvc("status", "-c", "--json")
    assert json.loads(status.stdout or "{}") == {}, status.stdout[:2000]

    # v2 drops 150 files; gc -c must see (and delete) exactly the garbage across both pages
    for i in range(N_DROPPED):
        (data / f"f{i * 7:05d}.txt").unlink()
    repo.dvc("add", "-q", "data")
    repo.git("add", "-A")
    repo.git("commit", "-q", "-m", "v2")
    repo.dvc("push", "-q")
    assert len(object_keys(store)) == N_FILES + 2
    repo.dvc("gc", "-c", "-w", "-f", "-q")
    remaining = N_FILES - N_DROPPED + 1
    assert len(object_keys(store)) == remaining
    small_pages = store.keys(page_size=100)
    assert len([k for k in small_pages if not k.startswith("dvc-secure/")]) == remaining

    # and everything still needed comes back
    wipe_local(repo.root, ["data"])
    repo.dvc("pull", "-q")
    names = sorted(p.name for p in data.iterdir())
    assert len(names) == N_FILES - N_DROPPED
    assert (data / "f00001.txt").read_text() == "object 1\n"
    status = repo.dvc("status", "-c", "--json")
    assert json.loads(status.stdout or "{}") == {}, status.stdout[:2000]
