"""Opening the database: engine options per backend, and bringing the schema up to date."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

from pulsewire.storage.private import private_dir, private_file

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

log = logging.getLogger("pulsewire.storage")

# After a checkpoint the WAL file is cut back to this (SQLite leaves it at its largest otherwise).
WAL_KEPT_BYTES = 4 * 1024 * 1024


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL; None for another database or one in memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def open_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Engine:
    """An engine for `url`. SQLite gets WAL (readers never block the writer) and a busy timeout;
    a new SQLite file is made in a folder (0700) and with a mode (0600) only its owner can read."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = sqlite_file(url)
        if database is not None:
            private_dir(database.parent)
            private_file(database)
        engine = create_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            # Only a new file takes these two (an existing one keeps what it was made with): pages
            # of 16 KiB hold a block of an hour's readings without overflow pages, and free pages
            # (compaction and retention free many) can be given back (docs/storage.md).
            cur.execute("PRAGMA page_size=16384")
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA journal_size_limit={WAL_KEPT_BYTES}")
            # Checkpoint every WAL_KEPT_BYTES, whatever the page size (SQLite's default is 1000 pages).
            page = cur.execute("PRAGMA page_size").fetchone()[0]
            cur.execute(f"PRAGMA wal_autocheckpoint={max(1, WAL_KEPT_BYTES // page)}")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
            cur.close()

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _alembic_config(connection) -> Config:  # type: ignore[no-untyped-def]
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def schema_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def migrate(engine: Engine, revision: str = "head") -> Path | None:
    """Upgrade the schema to `revision`, logging what changed. Readings are never dropped.

    An SQLite file made by an earlier release is copied first (`backup_copy`); returns the copy's
    path, or None when none was needed."""
    before = schema_revision(engine)
    copy = None
    if before is not None and before != _target(revision):
        copy = backup_copy(engine, before)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), revision)
    after = schema_revision(engine)
    if before != after:
        log.info("schema upgraded", extra={"from_revision": before or "empty", "to_revision": after})
    return copy


def _target(revision: str) -> str | None:
    return head_revision() if revision == "head" else revision


def backup_copy(engine: Engine, revision: str) -> Path | None:
    """A consistent copy of an SQLite file beside it (VACUUM INTO), taken before its schema changes.

    PostgreSQL is left to its own backups (pg_dump), which an operator runs the way they like."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    copy = Path(database).with_name(f"{Path(database).name}.rev{revision}-{stamp}.bak")
    private_file(copy)  # the copy holds what the database does: as private
    with engine.connect() as conn:
        conn.exec_driver_sql("VACUUM INTO ?", (str(copy),))
    log.warning("copied the database before upgrading its schema", extra={"copy": str(copy), "revision": revision})
    return copy
