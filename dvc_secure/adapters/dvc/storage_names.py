"""Where objects live in the wrapped storage: secure:// URLs, shard paths, long hidden names.
"""

from __future__ import annotations

import posixpath
import re
import threading
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import urlparse

from dvc_secure.adapters.local.plugin_manifest import load_manifest
from dvc_secure.errors import UnsafeRemoteURLError

SCHEME = load_manifest().scheme
SHARD = re.compile(r"^(?P<ns>(?:.*/)?)(?P<xy>[0-9a-f]{2})(?:/(?P<rest>[^/]*))?$")


PARTIAL_PREFIX = ".dvcsecure-partial-"


OBJECT_PATH = re.compile(r"(?:^|/)([0-9a-f]{2})/([0-9a-f]{30,}(?:\.dir)?)$")


# Hidden names of long paths (run cache entries: ~280 chars) exceed NAME_MAX (255) of POSIX
# filesystems (local, SSH): split them into components (docs/spec/hidden-names.md §2); the
# canonical split is removed again before reveal_name. DVC objects' names stay as they are.
MAX_COMPONENT = 200


def split_long(hidden: str) -> str:
    shard, _, token = hidden.partition("/")
    if len(token) <= MAX_COMPONENT:
        return hidden
    return "/".join([shard] + [token[i:i + MAX_COMPONENT]
                               for i in range(0, len(token), MAX_COMPONENT)])


def join_long(stored: str) -> str | None:
    """Inverse of :func:`split_long`; None unless ``stored`` is exactly its canonical form."""
    shard, _, token = stored.partition("/")
    if "/" not in token:
        return stored
    joined = f"{shard}/{token.replace('/', '')}"
    return joined if split_long(joined) == stored else None


def parse_secure_url(url: str) -> tuple[str, str]:
    """``secure://name/sub`` -> ("name", "sub"). Anything without a remote name is refused."""
    parsed = urlparse(url)
    if parsed.scheme != SCHEME or not parsed.netloc:
        raise UnsafeRemoteURLError(
            f"'{url}' is not a valid secure remote URL: it must name the wrapped DVC remote, "
            f"as in {SCHEME}://<remote-name>[/sub/path]",
            hint=f"without a remote name DVC would treat it as a plaintext local path; use "
            f"'dvc remote add <name> {SCHEME}://<existing-remote>'",
        )
    sub = parsed.path.strip("/")
    if any(part in ("..", ".") for part in sub.split("/") if part):
        raise UnsafeRemoteURLError(f"'{url}': '.' and '..' are not allowed in the sub path")
    return parsed.netloc, sub


_HIDDEN_TOP = re.compile(r"[0-9a-f]{2}")  # first level of hidden names ("xx/yy<token>")


def holds_other_naming(inner: Any, root: str, hide_names: bool,
                       is_object: Callable[[BinaryIO], bool]) -> bool:
    """Does the storage at ``root`` hold dvc-secure objects stored under the other naming
    scheme than ``hide_names``? (With hidden names: an encrypted object under
    ``files/md5`` — plain DVC objects there are fine, that is how a plain remote is adopted;
    with plain names: a hidden-name shard directory.) Reads at most one object's header
    (``is_object``: does it parse as a dvc-secure object header?)."""
    try:
        if not hide_names:
            shards = sorted(str(p) for p in inner.ls(root, detail=False)
                            if _HIDDEN_TOP.fullmatch(posixpath.basename(str(p).rstrip("/"))))
            if not shards:
                return False
            level = shards[0]  # (plain DVC 2.x objects live there too: read one)
            depth = 1
        else:
            level = posixpath.join(root, "files", "md5")
            depth = 2
        for _ in range(depth):
            entries = sorted(str(p) for p in inner.ls(level, detail=False))
            if not entries:
                return False
            level = entries[0]
        with inner.open(level, "rb") as f:
            return is_object(f)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return False


def memoise(fn: Callable[[], dict[str, str]]) -> Callable[[], dict[str, str]]:
    """``fn()`` computed once, on first use (thread-safe): e.g. the gc pins."""
    lock = threading.Lock()
    box: list[dict[str, str]] = []

    def get() -> dict[str, str]:
        with lock:
            if not box:
                box.append(fn())
            return box[0]

    return get
