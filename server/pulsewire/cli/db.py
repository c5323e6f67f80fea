"""`pulsewire db stats` and `pulsewire db compact`: what storage holds, and compaction now.

Both open the database directly, like `migrate`, and are safe beside a running server: compaction
steps are small transactions that SQLite's lock (or PostgreSQL's advisory lock) keeps apart from
the server's own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from sqlalchemy import Connection, Engine

from pulsewire.cli.serve import MIGRATE_SETTINGS
from pulsewire.cli.settings_options import build_settings, settings_options
from pulsewire.settings import Settings

if TYPE_CHECKING:
    from pulsewire.storage.upkeep import Runner

T = TypeVar("T")
DB_SETTINGS = (*MIGRATE_SETTINGS, "retention_raw_days", "retention_1m_days", "retention_1h_days")


@click.group()
def db() -> None:
    """How much is stored and how compactly; compact now (docs/storage.md)."""


def _open(settings: Settings) -> Engine:
    from pulsewire.storage.engine import head_revision, open_engine, schema_revision

    engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    have, head = schema_revision(engine), head_revision()
    if have != head:
        engine.dispose()
        raise click.ClickException(
            f"the database's schema is at {have or 'nothing yet'}, this release needs {head}: "
            "run `pulsewire migrate` (or start the server) first"
        )
    return engine


def _sqlite_file(engine: Engine) -> Path | None:
    return Path(engine.url.database) if engine.dialect.name == "sqlite" and engine.url.database else None


@db.command("stats")
@settings_options(MIGRATE_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (fields: docs/storage.md).")
def db_stats(as_json: bool, **values: Any) -> None:
    """Bytes on disk, and per resolution (raw, 1m, 1h): what is kept, its bytes, oldest and newest."""
    from pulsewire.storage.stats import storage_stats

    engine = _open(build_settings(values))
    try:
        with engine.connect() as conn:
            stats = storage_stats(conn, _sqlite_file(engine))
    finally:
        engine.dispose()
    click.echo(json.dumps(stats, indent=2) if as_json else _stats_text(stats))


def _when(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M")


def _stats_text(stats: dict[str, Any]) -> str:
    per_value = stats["bytes_per_value"]
    lines = [
        f"database:        {stats['database']}, {stats['bytes_on_disk']:,} bytes on disk",
        f"stored readings: {stats['stored_values']:,}"
        + (f" ({per_value:.2f} bytes each, everything on disk counted)" if per_value is not None else ""),
        "",
        f"{'resolution':<11}{'kept':>14}{'blocks':>10}{'bytes':>15}  {'oldest':<17} {'newest':<17}",
    ]
    for name, r in stats["resolutions"].items():
        kept = f"{r['values']:,}" if name == "raw" else f"{r['buckets']:,} bkts"
        lines.append(
            f"{name:<11}{kept:>14}{r['blocks']:>10,}{r['bytes']:>15,}  {_when(r['oldest']):<17} {_when(r['newest']):<17}"
        )
    hot = stats["resolutions"]["raw"]["hot_values"]
    lines.append(f"\n{hot:,} raw readings not compacted yet (the last hour, and late arrivals).")
    return "\n".join(lines)


def _runner(engine: Engine) -> Callable[[Callable[[Connection], T]], Awaitable[T]]:
    """Each step in a transaction of its own, beside whatever else writes (a running server)."""

    async def run(fn: Callable[[Connection], T]) -> T:
        def in_transaction() -> T:
            with engine.begin() as conn:
                return fn(conn)

        return await asyncio.to_thread(in_transaction)

    return run


def _upkeep(settings: Settings, work: Callable[[Runner[Any]], Awaitable[T]]) -> T:
    """Run one kind of upkeep on the database, then give back the space it freed, as the server does."""
    from pulsewire.storage.upkeep import give_back

    engine = _open(settings)
    try:
        run = _runner(engine)

        async def both() -> T:
            done = await work(run)
            await give_back(run, engine)
            return done

        return asyncio.run(both())
    finally:
        engine.dispose()


@db.command("compact")
@settings_options(DB_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help='Print {"windows", "values", "dropped", "seconds"}.')
def db_compact(as_json: bool, **values: Any) -> None:
    """Compact every closed hour now (the server does it by itself a few minutes after each hour)."""
    from pulsewire.clock import now_ms
    from pulsewire.storage.upkeep import compact_all

    settings = build_settings(values)
    now = now_ms()
    done = _upkeep(settings, lambda run: compact_all(run, now, settings.retention.oldest_accepted(now)))
    out = {"windows": done.windows, "values": done.values, "dropped": done.dropped, "seconds": round(done.seconds, 3)}
    if as_json:
        click.echo(json.dumps(out))
    else:
        click.echo(f"compacted {done.windows:,} windows ({done.values:,} readings) in {done.seconds:.2f} s")
        if done.dropped:
            click.echo(f"dropped {done.dropped:,} readings that arrived after their hour's raw block had expired")


@db.command("sweep")
@settings_options(DB_SETTINGS)
@click.option("--json", "as_json", is_flag=True, help='Print {"raw": N, "1m": N, "1h": N}: blocks removed.')
def db_sweep(as_json: bool, **values: Any) -> None:
    """Remove what retention no longer keeps, now (the server does it every 10 minutes)."""
    from pulsewire.clock import now_ms
    from pulsewire.storage.upkeep import sweep_all

    settings = build_settings(values)
    swept = _upkeep(settings, lambda run: sweep_all(run, settings.retention, now_ms()))
    if as_json:
        click.echo(json.dumps(swept))
    else:
        click.echo("removed " + ", ".join(f"{n:,} {name} blocks" for name, n in swept.items()))
