"""Dataset generation and storage assertions shared by the backend tests."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

from .stores import Store

MAGIC = b"DVCSEC"
MARKER = b"PLAINTEXT-MARKER-dvc-secure"


def write_dataset(root: Path, seed: int = 1) -> dict[str, bytes]:
    """A small but varied dataset: a directory (nested, an empty file, a 3 MiB file that
    spans several AEAD segments) and a single file. Returns path -> bytes."""
    rng = random.Random(seed)
    files = {
        "data/a.txt": MARKER + b" a\n",
        "data/b.csv": b"id,value\n" + b"".join(b"%d,%d\n" % (i, i * i) for i in range(500)),
        "data/empty.bin": b"",
        "data/sub/deep.txt": MARKER + b" deep\n",
        "data/sub/large.bin": MARKER + rng.randbytes(3 * 1024 * 1024 + 17),
        "model.bin": MARKER + rng.randbytes(70_000),
    }
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content)
    return files


def read_tree(root: Path, rels: list[str]) -> dict[str, bytes]:
    return {rel: (root / rel).read_bytes() for rel in rels}


def local_oids(repo_root: Path) -> set[str]:
    """Every object id in the repo's local cache (files and .dir listings)."""
    base = repo_root / ".dvc" / "cache" / "files" / "md5"
    return {p.parent.name + p.name.removesuffix(".dir") for p in base.glob("*/*")}


def wipe_local(repo_root: Path, outputs: list[str]) -> None:
    """Lose the cache and the workspace copies: only git + the remote are left."""
    shutil.rmtree(repo_root / ".dvc" / "cache", ignore_errors=True)
    for out in outputs:
        p = repo_root / out
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def object_keys(store: Store) -> list[str]:
    """The store's keys that are DVC objects (dvc-secure/ holds the plugin's own files)."""
    keys: list[str] = store.keys()
    return [k for k in keys if not k.startswith("dvc-secure/")]


def assert_only_ciphertext(store: Store, oids: set[str], expected_count: int | None = None,
                           hidden: bool = True) -> dict[str, bytes]:
    """What the provider holds: DVCSEC objects only, no plaintext, no MD5 ids in the names."""
    # dvc-secure/ holds the plugin's own files (audit log, remote index), not DVC objects
    objects = {k: v for k, v in store.objects().items() if not k.startswith("dvc-secure/")}
    assert objects, f"nothing stored on {store.url}"
    if expected_count is not None:
        assert len(objects) == expected_count, sorted(objects)
    for key, data in objects.items():
        assert data.startswith(MAGIC), f"{store.kind}:{key} is not a dvc-secure object"
        assert MARKER not in data, f"{store.kind}:{key} holds plaintext"
        if hidden:
            assert "files/md5" not in key and not key.startswith("files/"), key
            for oid in oids:
                assert oid not in key and oid[2:] not in key, f"{key} reveals object id {oid}"
    return objects


def file_count(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path))
