"""What this clone uploaded: per secure remote and object, where the ciphertext went and its
SHA-256. Sealing turns it into the remote index that ``verify --remote`` checks without
keys. A local SQLite file under ``.dvc/tmp`` (never committed; safe to delete)."""

from __future__ import annotations

import atexit
import sqlite3
import threading
from pathlib import Path

from dvc_secure.sidecar.remote_index import StoredObject


def journal_path(dvc_dir: str | Path) -> Path:
    return Path(dvc_dir) / "tmp" / "secure" / "pushed.sqlite"


class PushJournal:
    """Thread-safe; rows are buffered and written in batches (a lost batch only means the
    sealer hashes those stored ciphertexts again, so durability is not worth an fsync per
    object: WAL mode, synchronous=NORMAL)."""

    BATCH = 1024

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._pending: list[tuple[str, str, str, int, str]] = []
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS stored (remote TEXT, object TEXT, path TEXT, "
                "size INTEGER, sha256 TEXT, PRIMARY KEY (remote, object))"
            )
        atexit.register(self.flush)

    def _flush_locked(self) -> None:
        if self._pending:
            with self._db:
                self._db.executemany("INSERT OR REPLACE INTO stored VALUES (?, ?, ?, ?, ?)",
                                     self._pending)
            self._pending.clear()

    def flush(self) -> None:
        with self._lock:
            try:
                self._flush_locked()
            except sqlite3.Error:
                self._pending.clear()  # a cache: never fail a push over it

    def record(self, remote: str, obj: str, stored: StoredObject) -> None:
        with self._lock:
            self._pending.append((remote, obj, stored.path, stored.size, stored.sha256))
            if len(self._pending) >= self.BATCH:
                self._flush_locked()

    def lookup(self, remote: str, obj: str) -> StoredObject | None:
        with self._lock:
            self._flush_locked()
            row = self._db.execute("SELECT path, size, sha256 FROM stored WHERE remote = ? AND object = ?",
                                   (remote, obj)).fetchone()
        return StoredObject(row[0], int(row[1]), row[2]) if row else None

    def forget(self, remote: str, obj: str) -> None:
        with self._lock:
            self._flush_locked()
            with self._db:
                self._db.execute("DELETE FROM stored WHERE remote = ? AND object = ?", (remote, obj))

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()
        atexit.unregister(self.flush)
