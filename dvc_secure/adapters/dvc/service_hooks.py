"""What the secure filesystem reports to, and asks of, the layers above it.

The DVC adapter may not import services (docs/architecture.md). The two things it needs from
above are connected here by the composition root (``dvc_secure.plugin.connect``) when DVC
loads the plugin:

- ``sealed_objects``: the DVC object ids that sealed versions on any branch or tag still
  need, so ``dvc gc -c`` keeps them (the pins);
- ``transfers_done``: called once at the end of a process that moved objects through a
  secure remote, with the per-process counters (the push/pull audit event) and the
  ciphertexts it stored (the signed upload records, docs/spec/repair.md).

Unconnected, the pins fail closed (``gc -c`` is refused) and no audit event is recorded.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from dvc_secure.errors import AccessDeniedError, RegistrationError

F = TypeVar("F", bound=Callable[..., Any])
DirListing = Callable[[str], list[dict[str, str]]]
SealedObjects = Callable[[Path, DirListing], dict[str, str]]


@dataclass
class TransferStats:
    """Objects moved through secure remotes by this process (thread-safe counters)."""

    uploads: int = 0
    upload_bytes: int = 0
    downloads: int = 0
    download_bytes: int = 0
    failures: int = 0
    refused: str | None = None  # why the keyring refused this process (e.g. a reader's push)
    dvc_dirs: list[str] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)  # LazyRepoKeys of the remotes opened
    # (secure filesystem, StoredObject) of every upload not yet in a signed upload record
    stored: list[tuple[Any, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def loaded_identity(self) -> Any:
        """The identity a remote of this process already loaded (None: none did)."""
        keys = self.loaded_keys()
        return keys.loaded().identity if keys is not None else None

    def loaded_keys(self) -> Any:
        """The keys (LazyRepoKeys) a remote of this process already loaded (None: none)."""
        for keys in self.keys:
            if hasattr(keys, "loaded") and keys.loaded() is not None:
                return keys
        return None


@dataclass
class _Connections:
    sealed_objects: SealedObjects | None = None
    transfers_done: Callable[[TransferStats], None] | None = None


_CONNECTED = _Connections()
STATS = TransferStats()
# local paths a secure download failed to write (the failure was raised; no file was left)
_FAILED_DOWNLOADS: set[str] = set()
_FAILED_LOCK = threading.Lock()


def download_failed(lpath: str) -> None:
    with _FAILED_LOCK:
        _FAILED_DOWNLOADS.add(str(lpath))


def was_failed_download(lpath: str) -> bool:
    with _FAILED_LOCK:
        return str(lpath) in _FAILED_DOWNLOADS


def connect(sealed_objects: SealedObjects, transfers_done: Callable[[TransferStats], None]) -> None:
    """Called by the composition root; idempotent."""
    _CONNECTED.sealed_objects = sealed_objects
    _CONNECTED.transfers_done = transfers_done


def sealed_objects(root: Path, listing: DirListing) -> dict[str, str]:
    if _CONNECTED.sealed_objects is None:
        raise RegistrationError(
            "dvc-secure is only partly registered: the objects sealed versions need are unknown, "
            "so nothing may be garbage-collected from a secure remote",
            hint="call dvc_secure.plugin.register() (not the adapter's) in processes that "
                 "imported DVC before dvc-secure's import hook",
        )
    return _CONNECTED.sealed_objects(root, listing)


def watch(dvc_dir: str, keys: Any = None) -> None:
    """A secure remote of ``dvc_dir`` was opened in this process (``keys``: its LazyRepoKeys,
    whose identity, once loaded, signs the event: no second passphrase prompt at exit)."""
    with STATS.lock:
        if not STATS.dvc_dirs:
            _register_exit_hook()
        if dvc_dir not in STATS.dvc_dirs:
            STATS.dvc_dirs.append(dvc_dir)
        if keys is not None:
            STATS.keys.append(keys)


def count(direction: str, nbytes: int, ok: bool = True) -> None:
    with STATS.lock:
        if not ok:
            STATS.failures += 1
        elif direction == "up":
            STATS.uploads += 1
            STATS.upload_bytes += nbytes
        else:
            STATS.downloads += 1
            STATS.download_bytes += nbytes


def uploaded(fs: Any, stored: Any) -> None:
    """``fs`` stored a ciphertext (a StoredObject): it goes into the next upload record."""
    with STATS.lock:
        STATS.stored.append((fs, stored))


def take_uploads() -> list[tuple[Any, Any]]:
    """Uploads not yet recorded (and forget them: each is recorded once)."""
    with STATS.lock:
        out, STATS.stored[:] = list(STATS.stored), []
    return out


def failures_counted(method: F) -> F:
    """Count a transfer that raised (the push/pull event reports it as ``failed``)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except AccessDeniedError as exc:
            count("", 0, ok=False)
            STATS.refused = exc.message
            raise
        except Exception:
            count("", 0, ok=False)
            raise

    return wrapper  # type: ignore[return-value]


def _register_exit_hook() -> None:
    """Run :func:`_at_exit` when the interpreter starts shutting down, *before* thread pools
    refuse new work: async backends (s3fs, gcsfs, adlfs, sshfs) resolve hosts in one, and a
    plain ``atexit`` hook runs too late for them to upload anything."""
    import concurrent.futures.thread  # noqa: F401 - its own hook must run after ours

    register = getattr(threading, "_register_atexit", None)
    if register is not None:
        try:
            register(_at_exit)
            return
        except RuntimeError:  # already shutting down
            pass
    atexit.register(_at_exit)


def _at_exit() -> None:
    done = _CONNECTED.transfers_done
    if done is not None and STATS.dvc_dirs:
        done(STATS)


def memoise(fn: Callable[[], dict[str, str]]) -> Callable[[], dict[str, str]]:
    """``fn()`` computed once, on first call, thread-safe (the gc pins of a remote)."""
    lock = threading.Lock()
    box: list[dict[str, str]] = []

    def get() -> dict[str, str]:
        with lock:
            if not box:
                box.append(fn())
            return box[0]

    return get
