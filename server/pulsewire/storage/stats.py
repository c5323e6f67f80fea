"""What storage holds and what it costs on disk, per resolution (`pulsewire db stats`, /metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, text

from pulsewire.storage.layout import BY_CODE, RAW, RESOLUTIONS


def resolution_bytes(conn: Connection) -> dict[str, int]:
    """Bytes of packed data per resolution; raw includes the hot table's rows."""
    out = {r.name: 0 for r in RESOLUTIONS}
    # (res, start, size) is an index: the totals read it, not the blocks themselves.
    for code, total in conn.execute(text("SELECT res, sum(size) FROM blocks GROUP BY res")):
        out[BY_CODE[code].name] = int(total or 0)
    out[RAW.name] += _table_bytes(conn).get("readings", 0)
    return out


def _table_bytes(conn: Connection) -> dict[str, int]:
    """Bytes on disk per table, indexes included (0 where the backend cannot tell)."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(
            text(
                "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
                "WHERE relname IN ('devices', 'series', 'readings', 'blocks') AND relkind = 'r' "
                "AND relnamespace = 'public'::regnamespace"
            )
        )
        return {name: int(size) for name, size in rows}
    try:
        rows = conn.execute(text("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    except Exception:  # an SQLite built without the dbstat table
        return {}
    return {name: int(size) for name, size in rows}


def database_bytes(conn: Connection, sqlite_file: Path | None) -> int:
    """The database's size on disk: SQLite's file with its WAL and shared-memory files, or PostgreSQL's."""
    if conn.dialect.name == "postgresql":
        return int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one())
    assert sqlite_file is not None
    return sum(
        p.stat().st_size for p in (sqlite_file, Path(f"{sqlite_file}-wal"), Path(f"{sqlite_file}-shm")) if p.exists()
    )


def storage_stats(conn: Connection, sqlite_file: Path | None) -> dict[str, Any]:
    """Everything `pulsewire db stats` shows (docs/storage.md)."""
    res: dict[str, dict[str, Any]] = {}
    sizes = resolution_bytes(conn)
    blocks = conn.execute(text("SELECT res, count(*), sum(n), min(first_ts), max(last_ts) FROM blocks GROUP BY res"))
    by_code = {code: row for code, *row in blocks}
    hot_n, hot_lo, hot_hi = conn.execute(text("SELECT count(*), min(ts), max(ts) FROM readings")).one()
    for r in RESOLUTIONS:
        count, items, lo, hi = by_code.get(r.code, (0, 0, None, None))
        entry: dict[str, Any] = {"blocks": int(count), "bytes": sizes[r.name], "oldest": lo, "newest": hi}
        if r is RAW:
            entry |= {"values": int(items or 0) + hot_n, "hot_values": hot_n}
            entry["oldest"] = min((t for t in (lo, hot_lo) if t is not None), default=None)
            entry["newest"] = max((t for t in (hi, hot_hi) if t is not None), default=None)
        else:
            entry["buckets"] = int(items or 0)
        res[r.name] = entry
    total = database_bytes(conn, sqlite_file)
    values = res[RAW.name]["values"]
    return {
        "database": conn.dialect.name,
        "bytes_on_disk": total,
        "stored_values": values,
        "bytes_per_value": round(total / values, 3) if values else None,
        "resolutions": res,
    }
