#!/usr/bin/env python3
"""Where a secure ``dvc push`` / ``dvc pull`` spends its CPU, phase by phase.

    python benchmarks/phases.py push|pull [dvc args...]     (inside a repository)

Runs DVC's CLI in this process with timing wrappers around the plugin's phases. Each
wrapper adds the *calling thread's* CPU time (``time.thread_time``) to its phase, so the
figures stay right with DVC's transfer threads and the background SHA-256 threads, and do
not depend on other load on the machine. Prints one line per phase (CPU seconds, calls)
and the process total (user + system from ``getrusage``). Phases nest (``upload`` holds
``encrypt: read+seal`` which holds ``AES-GCM`` ...): read the indentation.
"""

from __future__ import annotations

import resource
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

T0 = time.process_time()
CPU: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)
_LOCK = threading.Lock()
_DEPTH = threading.local()


def _add(phase: str, seconds: float) -> None:
    with _LOCK:
        CPU[phase] += seconds
        CALLS[phase] += 1


def wrap(owner: Any, attr: str, phase: str) -> None:
    fn: Callable[..., Any] = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _add(phase, time.thread_time() - start)

    setattr(owner, attr, timed)


def install() -> None:
    from dvc_secure import plugin
    from dvc_secure.adapters.dvc import content_check, secure_fsspec
    from dvc_secure.adapters.local import push_journal, repo_keys
    from dvc_secure.core.format import names, object_format, object_reader, primitives

    t_imports = time.process_time() - T0
    CPU["plugin imports (before DVC)"] = t_imports
    wrap(repo_keys.LazyRepoKeys, "_load", "  keys: keyring + identity load/verify")
    wrap(secure_fsspec.SecureFsspec, "upload_stream", "upload (per object, all inclusive)")
    wrap(object_format.EncryptingReader, "__init__", "    per-object setup: HKDF, header MAC, AES key")
    wrap(object_format.EncryptingReader, "read", "    encrypt: read source + seal + queue")
    wrap(object_format.EncryptingReader, "_trailer", "      trailer: Ed25519 signature")
    wrap(primitives.SegmentCipher, "seal", "      AES-256-GCM seal")
    wrap(object_format.BackgroundSha256, "_run", "  SHA-256 worker threads (v2: one digest per byte)")
    wrap(object_format.BackgroundSha256, "digest", "    SHA-256 wait for digest")
    wrap(names, "hide_name", "  hidden names (AES-SIV)")
    wrap(push_journal.PushJournal, "record", "  push journal")
    wrap(secure_fsspec.SecureFsspec, "get_file", "download (per object, all inclusive)")
    wrap(content_check, "decrypt_checked", "    decrypt + verify")
    wrap(primitives.SegmentCipher, "open", "      AES-256-GCM open")
    wrap(object_reader, "ed25519_verify", "      Ed25519 verify")
    wrap(plugin, "_transfers_done", "exit: upload record + audit event")
    # the names are looked up through these modules' globals
    secure_fsspec.hide_name = names.hide_name  # type: ignore[attr-defined]
    secure_fsspec.decrypt_checked = content_check.decrypt_checked  # type: ignore[attr-defined]


def report(wall: float) -> None:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(f"\nprocess: wall {wall:.2f} s, CPU {ru.ru_utime + ru.ru_stime:.2f} s "
          f"(user {ru.ru_utime:.2f}, sys {ru.ru_stime:.2f})", file=sys.stderr)
    for phase, sec in CPU.items():
        n = CALLS.get(phase, 0)
        per = f"{1e6 * sec / n:8.1f} us/call" if n else ""
        print(f"  {phase:50s} {sec:7.3f} s  {n:7d} calls {per}", file=sys.stderr)


def main() -> int:
    start = time.perf_counter()
    install()
    from dvc.cli import main as dvc_main

    code = dvc_main(sys.argv[1:])
    # the exit hooks (upload record, audit event) run at interpreter shutdown: run them now
    from dvc_secure.adapters.dvc import service_hooks

    if service_hooks.STATS.dvc_dirs:
        service_hooks._at_exit()
        service_hooks.STATS.dvc_dirs.clear()
    report(time.perf_counter() - start)
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
