"""Per-process push/pull counters of the secure filesystem, recorded once at exit.

secure_fs.py calls :func:`watch` when DVC opens a secure remote and :func:`count` per
object; when the process is ``dvc push``/``pull``/``fetch``, an atexit handler records one
event and uploads the queue. Nothing here may break a transfer that succeeded.
"""

from __future__ import annotations

import atexit
import functools
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

ACTIONS = {"push": "push", "pull": "pull", "fetch": "pull"}
# options of dvc push/pull/fetch that take a value (the rest are flags or targets)
_VALUE_OPTIONS = {"-r", "--remote", "-j", "--jobs", "--config", "--cd"}


def dvc_command(argv: Sequence[str]) -> tuple[str, list[str]] | None:
    """(action, targets) when ``argv`` is ``dvc push|pull|fetch [...]``; None otherwise."""
    if not argv:
        return None
    prog = Path(argv[0])
    is_dvc = prog.name in ("dvc", "dvc.exe") or (prog.name == "__main__.py"
                                                 and prog.parent.name == "dvc")
    if not is_dvc:
        return None
    words: list[str] = []
    skip = False
    for arg in argv[1:]:
        if skip:
            skip = False
            continue
        if arg in _VALUE_OPTIONS:
            skip = True
            continue
        if arg.startswith("--") and "=" in arg:
            continue
        if arg.startswith("-"):
            continue
        words.append(arg)
    if not words or words[0] not in ACTIONS:
        return None
    return ACTIONS[words[0]], words[1:]


@dataclass
class Activity:
    uploads: int = 0
    upload_bytes: int = 0
    downloads: int = 0
    download_bytes: int = 0
    failures: int = 0
    dvc_dirs: list[str] = field(default_factory=list)
    keys: list[Any] = field(default_factory=list)  # LazyRepoKeys of the remotes opened
    lock: threading.Lock = field(default_factory=threading.Lock)


_ACTIVITY = Activity()


def watch(dvc_dir: str, keys: Any = None) -> None:
    """A secure remote of ``dvc_dir`` was opened in this process (``keys``: its LazyRepoKeys,
    whose identity, once loaded, signs the event: no second passphrase prompt at exit)."""
    with _ACTIVITY.lock:
        if not _ACTIVITY.dvc_dirs:
            _register_exit_hook()
        if dvc_dir not in _ACTIVITY.dvc_dirs:
            _ACTIVITY.dvc_dirs.append(dvc_dir)
        if keys is not None:
            _ACTIVITY.keys.append(keys)


def remote_option(argv: Sequence[str]) -> str | None:
    """The value of ``-r/--remote`` in a dvc command line, if any."""
    for i, arg in enumerate(argv):
        if arg in ("-r", "--remote") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--remote="):
            return arg.split("=", 1)[1]
    return None


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


def _loaded_identity() -> Any:
    for keys in _ACTIVITY.keys:
        loaded = getattr(keys, "_keys", None)  # set once LazyRepoKeys.get() succeeded
        if loaded is not None:
            return loaded.identity
    return None


def count(direction: str, nbytes: int, ok: bool = True) -> None:
    with _ACTIVITY.lock:
        if not ok:
            _ACTIVITY.failures += 1
        elif direction == "up":
            _ACTIVITY.uploads += 1
            _ACTIVITY.upload_bytes += nbytes
        else:
            _ACTIVITY.downloads += 1
            _ACTIVITY.download_bytes += nbytes


def failures_counted(method: F) -> F:
    """Count a transfer that raised (the push/pull event reports it as ``failed``)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception:
            count("", 0, ok=False)
            raise

    return wrapper  # type: ignore[return-value]


def _at_exit() -> None:
    try:
        command = dvc_command(sys.argv)
        if command is None or not _ACTIVITY.dvc_dirs:
            return
        action, targets = command
        identity = _loaded_identity()
        if identity is None:
            # the remote's keys never loaded: DVC already reported why (no identity, not a
            # member), or the command needed no key (nothing to do on a plain-names remote)
            return
        a = _ACTIVITY
        objects, nbytes = ((a.uploads, a.upload_bytes) if action == "push"
                           else (a.downloads, a.download_bytes))
        details = {"objects": objects, "bytes": nbytes, "failed": a.failures,
                   "command": " ".join(["dvc", *[w for w in sys.argv[1:] if w.isprintable()]])[:200]}
        # a failed transfer is recorded but not uploaded now (the remote may be what failed);
        # the next successful push/pull or 'dvc-secure audit' uploads it
        record_and_flush(Path(a.dvc_dirs[0]).parent, action, targets or ["all"], details,
                         flush=not a.failures, identity=identity,
                         remote=remote_option(sys.argv))
    except Exception as exc:  # never turn a finished push into a crash at exit
        print(f"dvc-secure: warning: audit: event not recorded ({exc.__class__.__name__})",
              file=sys.stderr)


def record_and_flush(repo_root: Path, action: str, datasets: list[str],
                     details: dict[str, object], flush: bool = True,
                     identity: Any = None, remote: str | None = None) -> None:
    from dvc_secure.audit.recorder import flush_events, record_event
    from dvc_secure.errors import ConfigurationError, DvcSecureError

    # never prompt for a passphrase at exit: without a loaded identity, warn instead
    record_event(repo_root, action, datasets=datasets, details=details, identity=identity,
                 interactive=False)
    if not flush:
        return
    try:
        try:
            flush_events(repo_root)  # the log lives on the default remote, in one place
        except ConfigurationError:
            if remote is None:
                raise
            flush_events(repo_root, remote=remote)  # no default: the remote the push used
    except Exception as exc:  # any backend error: the event is queued, the push succeeded
        msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
        print(f"dvc-secure: warning: audit: events stay queued, not uploaded ({msg}); "
              "'dvc-secure audit' retries", file=sys.stderr)
