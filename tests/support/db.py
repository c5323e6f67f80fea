"""The databases behind test servers: SQLite's write lock held from outside, PostgreSQL databases made per test."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def sqlite_write_lock(db: Path) -> Iterator[None]:
    """Hold SQLite's write lock from outside the server, as an sqlite3 shell in the middle of a write would."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("COMMIT")
        other.close()
