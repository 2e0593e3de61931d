#!/usr/bin/env python3
"""The physical floor of a secure push/pull on this machine, per MiB of data.

    python benchmarks/floor.py [--mib 1024] [--workdir DIR] [--out FILE]

Times, on one file of ``--mib`` MiB of random data in the page cache, the building blocks
a local-remote push or pull is made of: plain DVC's copy (``shutil.copyfile``, which uses
``copy_file_range``/``sendfile`` inside the kernel), reading into user space, writing from
user space, AES-256-GCM and SHA-256 (hashlib, OpenSSL) over 1 MiB segments, and how much
two threads gain on this machine's two cores (the secure path hashes on a worker thread).
Prints ms of CPU per MiB and writes JSON (``--out``). A secure push of format v2 cannot
cost less CPU per MiB than read + AES-GCM + SHA-256 + write; plain DVC pays the copy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SEG = 1 << 20


def _cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _measure(fn: Callable[[], None], repeat: int = 3) -> tuple[float, float]:
    """(best wall s, best CPU s) over ``repeat`` runs."""
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), _cpu()
        fn()
        walls.append(time.perf_counter() - w0)
        cpus.append(_cpu() - c0)
    return min(walls), min(cpus)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mib", type=int, default=1024)
    p.add_argument("--workdir", default=None)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    mib = args.mib
    with tempfile.TemporaryDirectory(dir=args.workdir, prefix="dvc-secure-floor-") as tmp:
        src, dst = Path(tmp, "src.bin"), Path(tmp, "dst.bin")
        with open(src, "wb") as f:
            for _ in range(mib):
                f.write(os.urandom(SEG))
        block = os.urandom(SEG)
        aead = AESGCM(os.urandom(32))
        nonce = os.urandom(12)

        def copy() -> None:
            shutil.copyfile(src, dst)

        def read() -> None:
            with open(src, "rb") as f:
                while f.read(SEG):
                    pass

        def write() -> None:
            with open(dst, "wb") as f:
                for _ in range(mib):
                    f.write(block)

        def aes() -> None:
            for _ in range(mib):
                aead.encrypt(nonce, block, None)

        def sha() -> None:
            h = hashlib.sha256()
            for _ in range(mib):
                h.update(block)

        def sha_two_threads() -> None:
            def half() -> None:
                h = hashlib.sha256()
                for _ in range(mib // 2):
                    h.update(block)

            threads = [threading.Thread(target=half) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()

        rows = {name: _measure(fn) for name, fn in [
            ("plain DVC local copy (copy_file_range)", copy),
            ("read into user space", read),
            ("write from user space", write),
            ("AES-256-GCM", aes),
            ("SHA-256", sha),
            ("SHA-256 on two threads (wall)", sha_two_threads),
        ]}
    per_mib = {k: {"wall_ms": 1e3 * w / mib, "cpu_ms": 1e3 * c / mib} for k, (w, c) in rows.items()}
    floor_push = sum(per_mib[k]["cpu_ms"] for k in (
        "read into user space", "write from user space", "AES-256-GCM", "SHA-256"))
    plain = per_mib["plain DVC local copy (copy_file_range)"]["cpu_ms"]
    two = per_mib["SHA-256"]["wall_ms"] / per_mib["SHA-256 on two threads (wall)"]["wall_ms"]
    print(f"{'building block':42s} {'CPU ms/MiB':>10s} {'wall ms/MiB':>11s}")
    for k, v in per_mib.items():
        print(f"{k:42s} {v['cpu_ms']:10.3f} {v['wall_ms']:11.3f}")
    print(f"\nsecure push/pull floor (read + AES-GCM + SHA-256 + write): {floor_push:.2f} ms/MiB "
          f"of CPU = {floor_push / plain:.1f} x plain's copy ({plain:.2f} ms/MiB); "
          f"two threads speed SHA-256 up {two:.2f} x on this machine")
    if args.out:
        Path(args.out).write_text(json.dumps({
            "mib": mib, "per_mib": per_mib, "secure_floor_cpu_ms_per_mib": floor_push,
            "plain_copy_cpu_ms_per_mib": plain, "two_thread_speedup_sha256": two,
            "nproc": os.cpu_count(), "python": sys.version.split()[0],
        }, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
