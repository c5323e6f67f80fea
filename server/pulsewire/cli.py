"""The `pulsewire` command: serve, manage devices, simulate devices, migrate the database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_args

import click
import httpx
from pydantic import ValidationError

from pulsewire import __version__
from pulsewire.cliopts import data_dir_option, key_option, server_option, stored_admin_key
from pulsewire.flash.command import flash as flash_command
from pulsewire.settings import Settings

_SETTING_TYPES: dict[Any, Any] = {int: int, float: float, Path: click.Path(path_type=Path)}


def _click_type(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if args and all(isinstance(a, str) for a in args):  # Literal[...]
        return click.Choice(args, case_sensitive=False)
    base = args[0] if args else annotation
    if get_args(base) and all(isinstance(a, str) for a in get_args(base)):
        return click.Choice(list(get_args(base)), case_sensitive=False)
    return _SETTING_TYPES.get(base, str)


def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One flag per Settings field (--data-dir for data_dir, ...), so flags and settings never drift."""
    for name, field in reversed(list(Settings.model_fields.items())):
        env = f"PULSEWIRE_{name.upper()}"
        flag = f"--{name.replace('_', '-')}"
        if field.annotation is bool:  # --x / --no-x; None when neither is given, so the env var applies
            option = click.option(
                f"{flag}/--no-{flag[2:]}",
                name,
                default=None,
                help=f"{field.description} [env {env}; default {'on' if field.default else 'off'}]",
            )
        else:
            option = click.option(
                flag,
                name,
                type=_click_type(field.annotation),
                default=None,
                help=f"{field.description} [env {env}; default {field.default!s}]",
            )
        fn = option(fn)
    return fn


def build_settings(values: dict[str, Any]) -> Settings:
    given = {k: v for k, v in values.items() if k in Settings.model_fields and v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        problems = "; ".join(
            (f"{'.'.join(map(str, e['loc']))}: " if e["loc"] else "") + e["msg"].removeprefix("Value error, ")
            for e in exc.errors()
        )
        raise click.UsageError(f"bad setting: {problems}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="pulsewire")
def main() -> None:
    """Pulsewire: telemetry from ESP32-class boards over WebSocket, stored and pushed live.

    \b
    Start a server with three simulated devices:   pulsewire serve --simulate 3
    Register a board and get its token:            pulsewire device add greenhouse-1
    Every setting is a flag of `serve` and a PULSEWIRE_* environment variable.
    """


@main.command()
@settings_options
@click.option(
    "--simulate",
    "simulate_count",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Also run this many simulated devices (sim-1, sim-2, ...) against the server.",
)
def serve(simulate_count: int, **values: Any) -> None:
    """Run the server: device channel, live channel, HTTP API and dashboard.

    With no database URL, readings go to SQLite in <data-dir>/pulsewire.db. The admin key is
    generated on first start (printed once, kept in <data-dir>/admin.key) unless given.
    """
    from pulsewire import serve as serving

    settings = build_settings(values)
    problem = serving.check_port_free(settings.host, settings.port)
    if problem:
        raise click.ClickException(f"{problem}. Is another server running there? Pick another with --port.")
    on_started = None
    if simulate_count:
        from pulsewire.adminkey import resolve_admin_key
        from pulsewire.simulate import simulate

        async def on_started(base: str) -> None:
            await simulate(base, resolve_admin_key(settings), simulate_count)

    with contextlib.suppress(KeyboardInterrupt):
        serving.run_forever(settings, on_started)


@main.command()
@settings_options
def migrate(**values: Any) -> None:
    """Bring the database schema up to date (the server also does this at start)."""
    from pulsewire.storage.engine import head_revision, open_engine, schema_revision
    from pulsewire.storage.engine import migrate as run_migrations

    settings = build_settings(values)
    engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    before = schema_revision(engine)
    run_migrations(engine)
    click.echo(f"schema: {before or 'empty'} -> {schema_revision(engine)} (head {head_revision()})")


# Device management talks to a running server's HTTP API, so the server sees every change at once.


def _admin_key(given: str | None, data_dir: Path) -> str:
    key = given or stored_admin_key(data_dir)
    if key:
        return key
    path = data_dir / "admin.key"
    raise click.UsageError(f"no admin key: pass --admin-key or PULSEWIRE_ADMIN_KEY (or run where {path} exists)")


def _call(server: str, method: str, path: str, key: str | None = None, *, timeout: float = 15, **kwargs: Any) -> Any:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        resp = httpx.request(method, server.rstrip("/") + path, headers=headers, timeout=timeout, **kwargs)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {server}: {exc}. Is `pulsewire serve` running? (--server)") from None
    if resp.status_code >= 400:
        try:
            detail = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        raise click.ClickException(f"{resp.status_code}: {detail}")
    return resp.json()


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@main.group()
def device() -> None:
    """Register, list, rotate and remove devices, and send them commands (through the server's HTTP API)."""


@device.command("add")
@click.argument("device_id")
@click.option("--name", default=None, help="Display name (default: the id).")
@server_option
@key_option
@data_dir_option
def device_add(device_id: str, name: str | None, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Register DEVICE_ID and print its token (shown once; put it in the board's config)."""
    body = {"id": device_id, "name": name} if name else {"id": device_id}
    out = _call(server, "POST", "/api/devices", _admin_key(admin_key, data_dir), json=body)
    click.echo(f"registered {out['id']} ({out['name']})")
    click.echo(f"token: {out['token']}")
    click.echo("The token is shown only now; the server keeps a hash of it.", err=True)


@device.command("list")
@server_option
@key_option
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
def device_list(server: str, admin_key: str | None, data_dir: Path, as_json: bool) -> None:
    """List every device with its status, last contact and metrics.

    Reads are open unless the server has a read key; the admin key, when known, is sent too.
    """
    key = admin_key or stored_admin_key(data_dir)
    out = _call(server, "GET", "/api/devices", key)
    if as_json:
        import json

        click.echo(json.dumps(out, indent=2))
        return
    if not out:
        click.echo("no devices yet: pulsewire device add <id>")
        return
    rows = [
        (d["id"], d["name"], "online" if d["online"] else "offline", _when(d["last_seen"]), ",".join(d["metrics"]))
        for d in out
    ]
    widths = [max(len(str(r[i])) for r in rows + [("ID", "NAME", "STATUS", "LAST SEEN", "METRICS")]) for i in range(5)]
    for row in [("ID", "NAME", "STATUS", "LAST SEEN", "METRICS"), *rows]:
        click.echo("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


@device.command("rotate")
@click.argument("device_id")
@server_option
@key_option
@data_dir_option
def device_rotate(device_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Give DEVICE_ID a new token; the old one stops working at once (its connection is closed)."""
    out = _call(server, "POST", f"/api/devices/{device_id}/token", _admin_key(admin_key, data_dir))
    click.echo(f"new token for {out['id']}: {out['token']}")


@device.command("remove")
@click.argument("device_id")
@click.option("--purge", is_flag=True, help="Also delete all of its stored readings.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@server_option
@key_option
@data_dir_option
def device_remove(device_id: str, purge: bool, yes: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Remove DEVICE_ID. Its readings stay (and come back if the id is registered again) unless --purge."""
    if purge and not yes and sys.stdin.isatty():
        click.confirm(f"Delete {device_id} and every reading it sent?", abort=True)
    out = _call(
        server,
        "DELETE",
        f"/api/devices/{device_id}",
        _admin_key(admin_key, data_dir),
        params={"purge": "true" if purge else "false"},
    )
    click.echo(f"removed {out['id']}" + (f"; purged {out['purged_readings']} readings" if purge else ""))


wait_option = click.option(
    "--wait",
    type=click.FloatRange(0, 60),
    default=10,
    show_default=True,
    help="Seconds to wait for the device's result; 0: only send it.",
)


def _command(server: str, key: str, device_id: str, wait: float, body: dict[str, Any]) -> None:
    """Send a command through the HTTP API and print its outcome in one line; exit 1 unless it went well."""
    out = _call(
        server,
        "POST",
        f"/api/devices/{device_id}/commands",
        key,
        json=body,
        params={"wait": f"{wait:g}"},
        timeout=wait + 15,
    )
    name = out["name"]
    if "ok" not in out:  # 202: sent without waiting, or stored for the device's next connection
        if out["status"] == "queued":
            click.echo(f"{device_id}: {out['detail']}")
        else:
            click.echo(f"{device_id}: {name} sent as {out['id']}; not waiting for the result")
        return
    said = f": {out['detail']}" if out["detail"] else ""
    if not out["ok"]:
        raise click.ClickException(f"{device_id}: {name} failed ({out['id']}){said}")
    click.echo(f"{device_id}: {name} done ({out['id']}){said}")


@device.command("set-interval")
@click.argument("device_id")
@click.argument("ms", type=int)
@wait_option
@server_option
@key_option
@data_dir_option
def device_set_interval(
    device_id: str, ms: int, wait: float, server: str, admin_key: str | None, data_dir: Path
) -> None:
    """Make DEVICE_ID sample every MS milliseconds (100..86400000), now and after reconnects.

    An offline device gets the interval in its welcome when it next connects.
    """
    body = {"name": "set_interval", "args": {"ms": ms}}
    _command(server, _admin_key(admin_key, data_dir), device_id, wait, body)


@device.command("reboot")
@click.argument("device_id")
@wait_option
@server_option
@key_option
@data_dir_option
def device_reboot(device_id: str, wait: float, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Ask DEVICE_ID to restart. It must be online; it answers before restarting."""
    _command(server, _admin_key(admin_key, data_dir), device_id, wait, {"name": "reboot"})


@main.command()
@click.argument("count", type=click.IntRange(1, 10_000))
@server_option
@key_option
@data_dir_option
@click.option("--prefix", default="sim", show_default=True, help="Device ids are <prefix>-1 ... <prefix>-COUNT.")
def simulate(count: int, server: str, admin_key: str | None, data_dir: Path, prefix: str) -> None:
    """Run COUNT virtual devices against a running server until Ctrl-C.

    Each registers itself (or takes a new token if its id exists) and sends temperature,
    humidity, battery voltage and RSSI at the interval the server asks for.
    """
    from pulsewire import logs
    from pulsewire.simulate import simulate as run

    level = os.environ.get("PULSEWIRE_LOG_LEVEL", "info").lower()
    logs.configure(level if level in ("debug", "info", "warning", "error") else "info")
    key = _admin_key(admin_key, data_dir)
    click.echo(f"simulating {count} device(s) against {server}; Ctrl-C stops")
    try:
        asyncio.run(run(server, key, count, prefix=prefix))
    except KeyboardInterrupt:
        pass
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None


main.add_command(flash_command)


@main.command("board-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="TCP port; 0 picks a free one."
)
@click.option(
    "--fs",
    "fs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Host folder holding the board's files, kept across resets and restarts [default: <data-dir>/board-sim].",
)
def board_sim(host: str, port: int, fs_dir: Path | None) -> None:
    """Run a simulated ESP32 (MicroPython on WebAssembly) whose REPL listens on TCP, until Ctrl-C.

    \b
    Flash it like a board: pulsewire flash --port socket://127.0.0.1:PORT ...
    or talk to it:        python -m mpremote connect socket://127.0.0.1:PORT repl
    Needs Node.js 18+ and npm (MicroPython is installed once into ~/.cache/pulsewire).
    """
    from pulsewire import boardsim
    from pulsewire.mpsim.node import NodeError

    try:
        boardsim.run(host, port, fs_dir or boardsim.default_fs_dir())
    except NodeError as exc:
        raise click.ClickException(str(exc)) from None
