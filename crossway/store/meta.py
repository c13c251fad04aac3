"""Gateway state kept in the SQLite file: for now, the master key's hash.

Only a hash and a short visible prefix are stored; the key itself is shown once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


def sqlite_path(database_url: str) -> Path | None:
    """The file behind a `sqlite:///path` (or `sqlite+aiosqlite:///path`) URL, else None."""
    for prefix in ("sqlite:///", "sqlite+aiosqlite:///"):
        if database_url.startswith(prefix):
            return Path(database_url[len(prefix) :])
    return None


class MetaStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        if path.parent != Path(""):
            path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS crossway_meta "
                "(key TEXT PRIMARY KEY, value BLOB NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10)

    def get(self, key: str) -> bytes | None:
        with self._connect() as db:
            row = db.execute("SELECT value FROM crossway_meta WHERE key = ?", (key,)).fetchone()
        return bytes(row[0]) if row else None

    def set(self, key: str, value: bytes) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO crossway_meta (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )
