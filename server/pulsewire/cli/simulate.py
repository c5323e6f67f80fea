"""`pulsewire simulate N`: virtual devices against a running server."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import click

from pulsewire.cli.options import admin_key_from, data_dir_option, key_option, server_option


@click.command()
@click.argument("count", type=click.IntRange(1, 10_000))
@server_option
@key_option
@data_dir_option()
@click.option("--prefix", default="sim", show_default=True, help="Device ids are <prefix>-1 ... <prefix>-COUNT.")
def simulate(count: int, server: str, admin_key: str | None, data_dir: Path, prefix: str) -> None:
    """Run COUNT virtual devices against a running server until Ctrl-C or SIGTERM.

    Each registers itself (or takes a new token if its id exists) and sends temperature,
    humidity, battery voltage and RSSI at the interval the server asks for.
    """
    from pulsewire import logs

    level = os.environ.get("PULSEWIRE_LOG_LEVEL", "info").lower()
    logs.configure(level if level in ("debug", "info", "warning", "error") else "info")
    key = admin_key_from(admin_key, data_dir)
    click.echo(f"simulating {count} device(s) against {server}; Ctrl-C stops")
    try:
        asyncio.run(_until_signalled(server, key, count, prefix))
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("simulated devices stopped")


async def _until_signalled(server: str, key: str, count: int, prefix: str) -> None:
    """Simulate until SIGINT or SIGTERM. Handlers are installed even where the shell started the
    command with those ignored (`&` in a script ignores SIGINT), so either always stops it."""
    from pulsewire.simulator.devices import simulate as run

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run(server, key, count, prefix=prefix, stop=stop)
