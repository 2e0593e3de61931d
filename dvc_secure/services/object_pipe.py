"""Streaming between a decrypting reader and an encrypting writer through a bounded pipe:
no plaintext on disk, memory bounded by the pipe depth.
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from typing import IO

from dvc_secure.errors import ReencryptionError

CHUNK = 1 << 20


PIPE_DEPTH = 4  # chunks in flight between the decrypting and the encrypting side


class HashingReader:
    """Read-through SHA-256 and size of a byte stream."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.sha.update(data)
        self.size += len(data)
        return data


class BoundedPipe:
    """A bounded in-memory pipe from a decrypting thread (``write``) to the encryptor
    (``read``), so no plaintext touches the disk and memory stays at a few chunks."""

    def __init__(self, md5: bool = False) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=PIPE_DEPTH)
        self._buf = b""
        self._eof = False
        self.error: BaseException | None = None
        self.aborted = threading.Event()
        self.md5 = hashlib.md5(usedforsecurity=False) if md5 else None

    def write(self, data: bytes) -> None:
        if self.md5 is not None:
            self.md5.update(data)
        while data:
            piece, data = data[:CHUNK], data[CHUNK:]
            self._put(piece)

    def _put(self, item: bytes | None) -> None:
        while True:
            if self.aborted.is_set():
                raise ReencryptionError("re-encryption of the object was aborted")
            try:
                self._q.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self, error: BaseException | None = None) -> None:
        self.error = error
        with contextlib.suppress(ReencryptionError):
            self._put(None)

    def read(self, n: int = -1) -> bytes:
        while not self._eof and (n < 0 or len(self._buf) < n):
            item = self._q.get()
            if item is None:
                self._eof = True
                if self.error is not None:
                    # the reader side (upload) must fail, so no object is completed
                    raise ReencryptionError("the old object failed verification while it "
                                            "was being re-encrypted")
                break
            self._buf += item
        if n < 0:
            out, self._buf = self._buf, b""
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return out


class Discard:
    def write(self, data: bytes) -> None:
        pass
