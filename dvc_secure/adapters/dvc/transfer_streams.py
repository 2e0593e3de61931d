"""File-like helpers for transfers through the secure filesystem: progress reporting on the
way in and out, and a writer that encrypts and uploads on close.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from typing import IO, Any, BinaryIO, Protocol, cast

from fsspec.callbacks import DEFAULT_CALLBACK, Callback

# Objects smaller than this get no progress bar of their own (DVC's overall bar still counts
# them): DVC's callback makes a tqdm bar per object, which for many small objects cost more
# than the transfer (plain DVC's local copy shows none below 1 GiB).
PER_FILE_PROGRESS_MIN = 16 << 20


def per_file_progress(callback: Callback, size: int | None) -> Callback:
    """``callback`` for an object of ``size`` bytes worth its own progress bar, else a no-op."""
    return callback if size is not None and size >= PER_FILE_PROGRESS_MIN else DEFAULT_CALLBACK


class Uploader(Protocol):
    """What :class:`EncryptOnClose` needs of the secure filesystem (which imports this module)."""

    def upload_stream(self, source: IO[bytes], path: str, size: int | None = None) -> Any: ...


class Discard:
    def write(self, data: bytes) -> None:
        pass


class ProgressSink:
    def __init__(self, raw: BinaryIO, callback: Callback) -> None:
        self._raw = raw
        self._callback = callback

    def write(self, data: bytes) -> None:
        self._raw.write(data)
        self._callback.relative_update(len(data))


class ProgressSource:
    def __init__(self, raw: IO[bytes], callback: Callback) -> None:
        self._raw = raw
        self._callback = callback

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self._callback.relative_update(len(data))
        return data


class EncryptOnClose:
    """``open(path, "wb")``: spool plaintext locally (bounded memory), encrypt on close."""

    def __init__(self, fs: Uploader, path: str) -> None:
        self._fs = fs
        self._path = path
        self._spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
        self.closed = False

    def write(self, data: bytes) -> int:
        return self._spool.write(data)

    def writable(self) -> bool:
        return True

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self._spool.seek(0)
            self._fs.upload_stream(cast(IO[bytes], self._spool), self._path)
        finally:
            self._spool.close()

    def __enter__(self) -> EncryptOnClose:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.close()
        else:  # an error while writing: upload nothing
            self.closed = True
            self._spool.close()


def stream_size(f: Any) -> int | None:
    """Size of an open stored object: fsspec files know it, local files by fstat."""
    size = getattr(f, "size", None)
    if isinstance(size, int):
        return size
    try:
        return os.fstat(f.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return None


def write_local_atomically(source: Any, target: str) -> None:
    """What DVC's local ``upload_fobj`` does (a temporary file beside ``target``, renamed
    over it when complete), block by block and without a ``makedirs`` per object: the
    directory is made only when the temporary file cannot be created without it."""
    parent = os.path.dirname(target)
    tmp = os.path.join(parent, f".{secrets.token_urlsafe(16)}.tmp")  # DVC's tmp_fname form
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except FileNotFoundError:
        os.makedirs(parent, exist_ok=True)
        fd = os.open(tmp, flags, 0o666)
    try:
        with open(fd, "wb") as out:  # large writes bypass the buffer, small ones coalesce
            # read1: whole ciphertext blocks as they are, no re-slicing into 1 MiB copies
            read = getattr(source, "read1", source.read)
            while chunk := read(1 << 24):
                out.write(chunk)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
