"""`pulsewire device ...`: register, list, rotate, remove devices and send them commands.

Each command talks to a running server's HTTP API, so the server sees every change at once.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

from pulsewire.cli.api import call as _call
from pulsewire.cli.api import table
from pulsewire.cli.options import admin_key_from, data_dir_option, key_option, server_option, stored_admin_key
from pulsewire.protocol.rules import is_device_id


def _device_path(device_id: str) -> str:
    """/api/devices/<id>, escaped: "." and ".." (taken by older versions) as %2E, which the HTTP
    client sends as they are instead of resolving them as "here" and "up"."""
    segment = quote(device_id, safe="")
    if device_id in (".", ".."):
        segment = segment.replace(".", "%2E")
    return "/api/devices/" + segment


def _new_device_id(_ctx: click.Context, _param: click.Parameter, value: str) -> str:
    if not is_device_id(value):
        raise click.BadParameter(f"{value!r} is not a device id: letters, digits, _ . - (1-64), but not . or ..")
    return value


def _when(ms: int | None) -> str:
    if ms is None:
        return "never"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@click.group()
def device() -> None:
    """Register, list, rotate and remove devices, and send them commands (through the server's HTTP API)."""


@device.command("add")
@click.argument("device_id", callback=_new_device_id)
@click.option("--name", default=None, help="Display name (default: the id).")
@server_option
@key_option
@data_dir_option()
def device_add(device_id: str, name: str | None, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Register DEVICE_ID and print its token (shown once; put it in the board's config)."""
    body = {"id": device_id, "name": name} if name else {"id": device_id}
    out = _call(server, "POST", "/api/devices", admin_key_from(admin_key, data_dir), json=body)
    click.echo(f"registered {out['id']} ({out['name']})")
    click.echo(f"token: {out['token']}")
    click.echo("The token is shown only now; the server keeps a hash of it.", err=True)


@device.command("list")
@server_option
@key_option
@data_dir_option()
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
    table(("ID", "NAME", "STATUS", "LAST SEEN", "METRICS"), rows)


@device.command("rotate")
@click.argument("device_id")
@server_option
@key_option
@data_dir_option()
def device_rotate(device_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Give DEVICE_ID a new token; the old one stops working at once (its connection is closed)."""
    out = _call(server, "POST", _device_path(device_id) + "/token", admin_key_from(admin_key, data_dir))
    click.echo(f"new token for {out['id']}: {out['token']}")


@device.command("remove")
@click.argument("device_id")
@click.option("--purge", is_flag=True, help="Also delete all of its stored readings.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@server_option
@key_option
@data_dir_option()
def device_remove(device_id: str, purge: bool, yes: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Remove DEVICE_ID. Its readings stay (and come back if the id is registered again) unless --purge."""
    if purge and not yes and sys.stdin.isatty():
        click.confirm(f"Delete {device_id} and every reading it sent?", abort=True)
    out = _call(
        server,
        "DELETE",
        _device_path(device_id),
        admin_key_from(admin_key, data_dir),
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
        _device_path(device_id) + "/commands",
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
@data_dir_option()
def device_set_interval(
    device_id: str, ms: int, wait: float, server: str, admin_key: str | None, data_dir: Path
) -> None:
    """Make DEVICE_ID sample every MS milliseconds (100..86400000), now and after reconnects.

    An offline device gets the interval in its welcome when it next connects.
    """
    body = {"name": "set_interval", "args": {"ms": ms}}
    _command(server, admin_key_from(admin_key, data_dir), device_id, wait, body)


@device.command("reboot")
@click.argument("device_id")
@wait_option
@server_option
@key_option
@data_dir_option()
def device_reboot(device_id: str, wait: float, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Ask DEVICE_ID to restart. It must be online; it answers before restarting."""
    _command(server, admin_key_from(admin_key, data_dir), device_id, wait, {"name": "reboot"})
