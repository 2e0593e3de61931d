"""What this clone uploaded: per secure remote and object, where the ciphertext went and its
SHA-256. Sealing turns it into the remote index that ``verify --remote`` checks without
keys. A local SQLite file under ``.dvc/tmp`` (never committed; safe to delete)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from dvc_secure.sidecar.remote_index import StoredObject


def journal_path(dvc_dir: str | Path) -> Path:
    return Path(dvc_dir) / "tmp" / "secure" / "pushed.sqlite"


class PushJournal:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS stored (remote TEXT, object TEXT, path TEXT, "
                "size INTEGER, sha256 TEXT, PRIMARY KEY (remote, object))"
            )

    def record(self, remote: str, obj: str, stored: StoredObject) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO stored VALUES (?, ?, ?, ?, ?)",
                             (remote, obj, stored.path, stored.size, stored.sha256))

    def lookup(self, remote: str, obj: str) -> StoredObject | None:
        with self._lock:
            row = self._db.execute("SELECT path, size, sha256 FROM stored WHERE remote = ? AND object = ?",
                                   (remote, obj)).fetchone()
        return StoredObject(row[0], int(row[1]), row[2]) if row else None

    def forget(self, remote: str, obj: str) -> None:
        with self._lock, self._db:
            self._db.execute("DELETE FROM stored WHERE remote = ? AND object = ?", (remote, obj))

    def close(self) -> None:
        with self._lock:
            self._db.close()
