"""What this clone uploaded: per secure remote and object, where the ciphertext went and its
SHA-256. Sealing turns it into the remote index that ``verify --remote`` checks without
keys. A local SQLite file under ``.dvc/tmp`` (never committed; safe to delete).

Rows are keyed by the remote's fsid, which only DVC can compute (it depends on the
wrapped filesystem class). So that the pre-commit hook can seal without importing DVC,
whoever opens a remote through DVC also records name -> fsid together with a digest of
the remote configuration it was opened under (:meth:`PushJournal.bind_remote`); a
binding whose configuration digest no longer matches is never used."""

from __future__ import annotations

import atexit
import sqlite3
import threading
from pathlib import Path

from dvc_secure.core.sidecar.remote_index import StoredObject


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
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS remotes (name TEXT PRIMARY KEY, config TEXT, fsid TEXT)"
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

    def bind_remote(self, name: str, config_digest: str, fsid: str) -> None:
        """Remember that DVC remote ``name``, configured as ``config_digest``, has ``fsid``."""
        with self._lock:
            try:
                with self._db:
                    self._db.execute("INSERT OR REPLACE INTO remotes VALUES (?, ?, ?)",
                                     (name, config_digest, fsid))
            except sqlite3.Error:
                pass  # a cache: the next seal opens the remote through DVC instead

    def bound_fsid(self, name: str, config_digest: str) -> str | None:
        """The fsid recorded for ``name`` under exactly this configuration, else None."""
        with self._lock:
            row = self._db.execute("SELECT fsid FROM remotes WHERE name = ? AND config = ?",
                                   (name, config_digest)).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._db.close()
        atexit.unregister(self.flush)
