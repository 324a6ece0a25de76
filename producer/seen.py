"""Exact, bounded-memory dedupe for one job: the item keys already enqueued, in SQLite.

Why SQLite in /tmp and not a Python set or a Bloom filter: a set of 1M keys costs ~100 MB of
heap and grows with the file; a Bloom filter is small but has false positives, which would
silently drop distinct items. SQLite keeps the keys on disk (a 2 MB page cache: the rest of a
big file's B-tree is read through the OS cache, so the process does not grow with the file),
answers exactly, and is one file that can travel with the job's checkpoint to the next invocation."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# Keys per statement: well under SQLite's limit on bound variables (999 before 3.32).
_CHUNK = 500


class SeenSet:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        # The file is rebuilt from the checkpoint copy after a crash, so durability is not needed here.
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        # 2 MB (in KiB) of page cache: the index is read at random, so a bigger cache buys little
        # speed, and its growth would show as memory that rises with the file's size.
        self._db.execute("PRAGMA cache_size=-2000")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._db.execute("BEGIN")

    def add_many(self, keys: list[str]) -> list[bool]:
        """For each key in order: True when it is new to this job (a key repeated within `keys`
        is new only the first time). Two statements per call, not one per key: each call into
        SQLite releases the GIL, and getting it back from the sender threads costs more than
        the insert itself."""
        fresh: list[bool] = []
        for start in range(0, len(keys), _CHUNK):
            chunk = keys[start : start + _CHUNK]
            distinct = list(dict.fromkeys(chunk))
            marks = ",".join("?" * len(distinct))
            known = {
                row[0] for row in self._db.execute(f"SELECT key FROM seen WHERE key IN ({marks})", distinct)
            }
            added: set[str] = set()
            for key in chunk:
                new = key not in known and key not in added
                if new:
                    added.add(key)
                fresh.append(new)
            self._db.executemany("INSERT INTO seen (key) VALUES (?)", [(key,) for key in added])
        return fresh

    def save(self) -> Path:
        """Commit so the file on disk is complete (for the checkpoint upload)."""
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        return self.path

    def close(self) -> None:
        self._db.execute("COMMIT")
        self._db.close()
