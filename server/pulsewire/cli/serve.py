"""`pulsewire serve` and `pulsewire migrate`."""

from __future__ import annotations

import contextlib
from typing import Any

import click

from pulsewire.cli.settings_options import build_settings, settings_options

# What `migrate` needs to find and open the database; every other setting is for a running server.
MIGRATE_SETTINGS = ("data_dir", "database_url", "sqlite_synchronous")


@click.command()
@settings_options()
@click.option(
    "--simulate",
    "simulate_count",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Also run this many simulated devices (sim-1, sim-2, ...) against the server.",
)
def serve(simulate_count: int, **values: Any) -> None:
    """Run the server: device channel, live channel, HTTP API and dashboard, until Ctrl-C or SIGTERM.

    With no database URL, readings go to SQLite in <data-dir>/pulsewire.db. The admin key is
    generated on first start (printed once, kept in <data-dir>/admin.key) unless given. With
    --workers N (N > 1), N processes serve the one port under a supervisor that restarts them.
    """
    from pulsewire.app import serve as serving

    settings = build_settings(values)
    problem = serving.check_port_free(settings.host, settings.port)
    if problem:
        raise click.ClickException(f"{problem}. Is another server running there? Pick another with --port.")
    if settings.tls_cert and settings.tls_key:
        from pulsewire.app.tls import tls_problem

        problem = tls_problem(settings.tls_cert, settings.tls_key)
        if problem:
            raise click.ClickException(f"{problem}. Check --tls-cert and --tls-key.")
    if settings.workers > 1:  # a supervisor and its worker processes; one worker is this process itself
        from pulsewire.app.workers import serve_workers

        raise SystemExit(serve_workers(settings, simulate_count))
    on_started = serving.with_simulated(settings, simulate_count) if simulate_count else None
    with contextlib.suppress(KeyboardInterrupt):
        serving.run_forever(settings, on_started)


@click.command()
@settings_options(MIGRATE_SETTINGS)
def migrate(**values: Any) -> None:
    """Bring the database schema up to date (the server also does this at start)."""
    from pulsewire.storage.engine import head_revision, open_engine, schema_revision
    from pulsewire.storage.engine import migrate as run_migrations

    settings = build_settings(values)
    engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    before = schema_revision(engine)
    copy = run_migrations(engine)
    if copy is not None:
        click.echo(f"copied the database before upgrading it: {copy}")
    click.echo(f"schema: {before or 'empty'} -> {schema_revision(engine)} (head {head_revision()})")
