"""The push/pull audit event, recorded once at the end of a ``dvc`` process.

The secure filesystem counts what it moves (``adapters.dvc.service_hooks``) and, at exit,
calls :func:`record_transfers` (connected by ``dvc_secure.plugin``); when the process is
``dvc push``/``pull``/``fetch`` it records one event and uploads the queue. Nothing here may
break a transfer that succeeded.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dvc_secure.adapters.dvc.service_hooks import TransferStats

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


def remote_option(argv: Sequence[str]) -> str | None:
    """The value of ``-r/--remote`` in a dvc command line, if any."""
    for i, arg in enumerate(argv):
        if arg in ("-r", "--remote") and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--remote="):
            return arg.split("=", 1)[1]
    return None


def report_failed_uploads(stats: TransferStats) -> None:
    """At the end of a ``dvc push`` some of whose uploads failed (storage full, read-only,
    offline): DVC names each error; say what state that leaves and what to do."""
    command = dvc_command(sys.argv)
    if command is None or command[0] != "push" or not stats.failures:
        return
    print(f"dvc-secure: {stats.failures} object(s) could not be stored on the secure remote "
          "(see the errors above); a failed upload leaves no partial object there.\n"
          "hint: fix that cause (e.g. the storage is full, read-only or offline), then run "
          "'dvc push' again: it uploads only what is missing", file=sys.stderr)


def record_transfers(stats: TransferStats) -> None:
    """At the end of ``dvc push|pull|fetch``: one audit event for what this process moved."""
    try:
        command = dvc_command(sys.argv)
        if command is None or not stats.dvc_dirs:
            return
        action, targets = command
        identity = stats.loaded_identity()
        if identity is None:
            # the remote's keys never loaded: DVC already reported why (no identity, not a
            # member), or the command needed no key (nothing to do on a plain-names remote)
            return
        a = stats
        objects, nbytes = ((a.uploads, a.upload_bytes) if action == "push"
                           else (a.downloads, a.download_bytes))
        root = Path(a.dvc_dirs[0]).parent
        remote = remote_option(sys.argv)
        details: dict[str, object] = {
            "objects": objects, "bytes": nbytes, "failed": a.failures,
            "remote": remote or _default_remote(root),
            "command": " ".join(["dvc", *[w for w in sys.argv[1:] if w.isprintable()]])[:200]}
        if a.refused is not None:
            # refused by the keyring (a reader's push, an expired grant): the remote is
            # fine, so the refusal is uploaded at once like any other event
            details["refused"] = a.refused[:300]
            record_and_flush(root, f"{action}-refused", targets or ["all"], details,
                             identity=identity, remote=remote, keys=stats.loaded_keys())
            return
        # a failed transfer is recorded but not uploaded now (the remote may be what failed);
        # the next successful push/pull or 'dvc-secure audit' uploads it
        record_and_flush(root, action, targets or ["all"], details,
                         flush=not a.failures, identity=identity, remote=remote,
                         keys=stats.loaded_keys())
    except Exception as exc:  # never turn a finished push into a crash at exit
        print(f"dvc-secure: warning: audit: event not recorded ({exc.__class__.__name__})",
              file=sys.stderr)


def _default_remote(root: Path) -> str | None:
    from dvc_secure.adapters.dvc.config_file import dvc_remotes

    return dvc_remotes(root / ".dvc").default


def record_and_flush(repo_root: Path, action: str, datasets: list[str],
                     details: dict[str, object], flush: bool = True,
                     identity: Any = None, remote: str | None = None,
                     keys: Any = None) -> None:
    from dvc_secure.errors import ConfigurationError, DvcSecureError
    from dvc_secure.services.audit_recorder import flush_events, record_event

    # never prompt for a passphrase at exit: without a loaded identity, warn instead
    record_event(repo_root, action, datasets=datasets, details=details, identity=identity,
                 interactive=False)
    if not flush:
        return
    try:
        try:
            # the log lives on the default remote, in one place
            flush_events(repo_root, keys=keys)
        except ConfigurationError:
            if remote is None:
                raise
            flush_events(repo_root, remote=remote, keys=keys)  # no default: the push's remote
    except Exception as exc:  # any backend error: the event is queued, the push succeeded
        msg = exc.message if isinstance(exc, DvcSecureError) else exc.__class__.__name__
        print(f"dvc-secure: warning: audit: events stay queued, not uploaded ({msg}); "
              "'dvc-secure audit' retries", file=sys.stderr)
