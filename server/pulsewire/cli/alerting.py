"""`pulsewire rule ...` and `pulsewire channel ...`: alert rules and notification channels.

Like `pulsewire device`, each command talks to a running server's HTTP API (docs/protocol.md,
"Alert rules and channels"); the server checks every body and its refusals are shown as they come.
"""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import click

from pulsewire.cli.api import api_path, call, print_json, table
from pulsewire.cli.options import admin_key_from, data_dir_option, key_option, server_option, stored_admin_key

# `>` and `<` on a command line are redirections unless quoted: these words say the same safely.
OP_WORDS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}
OPS = (">", ">=", "<", "<=", "outside", "inside", *OP_WORDS)
_DURATION = re.compile(r"(\d+)([smhd]?)\Z")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400}
# Generated webhook secrets: 32 random bytes, URL-safe base64 (43 printable ASCII characters).
SECRET_BYTES = 32


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    found = _DURATION.match(value.strip())
    if not found:
        raise click.BadParameter(f"{value!r} is not a duration: whole seconds (300) or with a unit (30s, 5m, 1h, 2d)")
    return int(found.group(1)) * _UNIT_S[found.group(2)]


def _span(seconds: int) -> str:
    """300 -> 5m, 5400 -> 90m, 3600 -> 1h, 45 -> 45s, 0 -> 0."""
    if seconds == 0:
        return "0"
    for unit in ("d", "h", "m"):
        if seconds % _UNIT_S[unit] == 0:
            return f"{seconds // _UNIT_S[unit]}{unit}"
    return f"{seconds}s"


def _number(value: float) -> str:
    return f"{value:g}"


def condition(rule: dict[str, Any]) -> str:
    """The rule's condition in one short phrase: `temperature > -10`, `no data (any metric)`."""
    metric = rule.get("metric")
    if rule["kind"] == "no_data":
        return f"no data ({metric or 'any metric'})"
    if rule["op"] in ("outside", "inside"):
        return f"{metric} {rule['op']} {_number(rule['low'])}..{_number(rule['high'])}"
    return f"{metric} {rule['op']} {_number(rule['value'])}"


# --- rules ----------------------------------------------------------------------------------------


@click.group()
def rule() -> None:
    """Add, list and remove alert rules (through the server's HTTP API)."""


@rule.command("add")
@click.option("--name", required=True, help="What the alert is called in notifications: plain text, one line.")
@click.option("--device", default="*", show_default=True, help='A device id, or "*" for every device.')
@click.option("--metric", default=None, help="The metric watched; with --no-data, leave out for the whole device.")
@click.option(
    "--op",
    type=click.Choice(OPS),
    default=None,
    help="Threshold: >, >=, <, <= (with --value) or outside, inside (with --low and --high, inclusive). "
    "gt, ge, lt, le are the same as >, >=, <, <= without shell quoting.",
)
@click.option("--value", type=float, default=None, help="The number a >, >=, < or <= rule compares with.")
@click.option("--low", type=float, default=None, help="Lower bound of an outside/inside band.")
@click.option("--high", type=float, default=None, help="Upper bound of an outside/inside band.")
@click.option("--no-data", is_flag=True, help="Fire when the device (or --metric) sends nothing for --for.")
@click.option(
    "--for",
    "for_s",
    callback=_duration,
    default=None,
    metavar="DURATION",
    help="How long the condition must hold first: 300, 5m, 1h [0].",
)
@click.option(
    "--repeat",
    "repeat_s",
    callback=_duration,
    default=None,
    metavar="DURATION",
    help="Remind this often while it holds: 30m, 1h [0: notify once].",
)
@click.option(
    "--severity",
    type=click.Choice(["info", "warning", "critical"]),
    default="warning",
    show_default=True,
    help="How serious the alert is.",
)
@click.option(
    "--channel", "channels", multiple=True, metavar="CHANNEL_ID", help="A channel id to notify; repeat for more."
)
@click.option("--json", "as_json", is_flag=True, help="Print the stored rule as JSON.")
@server_option
@key_option
@data_dir_option()
def rule_add(
    name: str,
    device: str,
    metric: str | None,
    op: str | None,
    value: float | None,
    low: float | None,
    high: float | None,
    no_data: bool,
    for_s: int | None,
    repeat_s: int | None,
    severity: str,
    channels: tuple[str, ...],
    as_json: bool,
    server: str,
    admin_key: str | None,
    data_dir: Path,
) -> None:
    """Add an alert rule and print its id.

    \b
    pulsewire rule add --name "freezer warm" --device freezer-1 --metric temperature \\
        --op gt --value -10 --for 5m --repeat 1h --severity critical --channel ch_3f9a0c1d2e4b5a69
    pulsewire rule add --name silent --no-data --for 10m
    """
    body: dict[str, Any] = {
        "name": name,
        "kind": "no_data" if no_data else "threshold",
        "device": device,
        "metric": metric,
        "severity": severity,
        "channels": list(channels),
    }
    if for_s is not None:
        body["for_s"] = for_s
    if repeat_s is not None:
        body["repeat_s"] = repeat_s
    given = {"op": OP_WORDS.get(op, op) if op else None, "value": value, "low": low, "high": high}
    body.update({k: v for k, v in given.items() if v is not None})  # the server says what a kind lacks or refuses
    if not no_data and metric is None:
        del body["metric"]  # the server's refusal names it: "metric: required ..."
    out = call(server, "POST", "/api/rules", admin_key_from(admin_key, data_dir), json=body)
    if as_json:
        print_json(out)
        return
    click.echo(f"added rule {out['id']}: {out['name']}: {condition(out)} on {out['device']}")


@rule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@server_option
@key_option
@data_dir_option()
def rule_list(as_json: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """List every alert rule: id, name, device, condition, for, severity and channels.

    Reads are open unless the server has a read key; the admin key, when known, is sent too.
    """
    out = call(server, "GET", "/api/rules", admin_key or stored_admin_key(data_dir))
    if as_json:
        print_json(out)
        return
    if not out:
        click.echo("no rules yet: pulsewire rule add --help")
        return
    rows = [
        (r["id"], r["name"], r["device"], condition(r), _span(r["for_s"]), r["severity"], ",".join(r["channels"]))
        for r in out
    ]
    table(("ID", "NAME", "DEVICE", "CONDITION", "FOR", "SEVERITY", "CHANNELS"), rows)


@rule.command("remove")
@click.argument("rule_id")
@server_option
@key_option
@data_dir_option()
def rule_remove(rule_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Remove the rule RULE_ID."""
    out = call(server, "DELETE", api_path("rules", rule_id), admin_key_from(admin_key, data_dir))
    click.echo(f"removed rule {out['id']}")


# --- channels -------------------------------------------------------------------------------------


@click.group()
def channel() -> None:
    """Add, list, remove and test notification channels: webhooks and email (through the server's HTTP API)."""


@channel.group("add")
def channel_add() -> None:
    """Add a channel: `channel add webhook NAME --url URL` or `channel add email NAME --to ADDRESS`."""


def _added(out: dict[str, Any], name: str) -> None:
    click.echo(f"added channel {out['id']} ({name})")


@channel_add.command("webhook")
@click.argument("name")
@click.option("--url", required=True, help="Where notifications are POSTed: an http:// or https:// URL.")
@click.option(
    "--secret",
    default=None,
    help="The shared secret that signs each body (16 to 256 printable ASCII characters). "
    "Default: a random one, printed once.",
)
@server_option
@key_option
@data_dir_option()
def channel_add_webhook(
    name: str, url: str, secret: str | None, server: str, admin_key: str | None, data_dir: Path
) -> None:
    """Add a webhook channel NAME and print its id (and its secret, when it was made here)."""
    made = secret is None
    secret = secret or secrets.token_urlsafe(SECRET_BYTES)
    body = {"name": name, "type": "webhook", "url": url, "secret": secret}
    _added(call(server, "POST", "/api/channels", admin_key_from(admin_key, data_dir), json=body), name)
    if made:
        click.echo(f"secret: {secret}")
        click.echo("The secret is shown only now: give it to the receiver, which checks each signature.", err=True)


@channel_add.command("email")
@click.argument("name")
@click.option(
    "--to",
    "to",
    multiple=True,
    required=True,
    metavar="ADDRESS",
    help="A recipient address; repeat for more (up to 20).",
)
@server_option
@key_option
@data_dir_option()
def channel_add_email(name: str, to: tuple[str, ...], server: str, admin_key: str | None, data_dir: Path) -> None:
    """Add an email channel NAME and print its id. The server sends through its SMTP settings (smtp_host ...)."""
    body = {"name": name, "type": "email", "to": list(to)}
    _added(call(server, "POST", "/api/channels", admin_key_from(admin_key, data_dir), json=body), name)


@channel.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@server_option
@key_option
@data_dir_option()
def channel_list(as_json: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """List every channel: id, name, type and where it sends (secrets are never shown)."""
    out = call(server, "GET", "/api/channels", admin_key_from(admin_key, data_dir))
    if as_json:
        print_json(out)
        return
    if not out:
        click.echo("no channels yet: pulsewire channel add --help")
        return
    rows = [(c["id"], c["name"], c["type"], c.get("url") or ", ".join(c.get("to") or ())) for c in out]
    table(("ID", "NAME", "TYPE", "TARGET"), rows)


@channel.command("remove")
@click.argument("channel_id")
@server_option
@key_option
@data_dir_option()
def channel_remove(channel_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Remove the channel CHANNEL_ID (refused while rules name it)."""
    out = call(server, "DELETE", api_path("channels", channel_id), admin_key_from(admin_key, data_dir))
    click.echo(f"removed channel {out['id']}")


@channel.command("test")
@click.argument("channel_id")
@server_option
@key_option
@data_dir_option()
def channel_test(channel_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Send a test notification through CHANNEL_ID now and print what the receiver answered.

    Exits 1 when it was not delivered (no 2xx from the webhook, no 250 from the SMTP server).
    """
    # The server waits for the receiver up to webhook_timeout_s or smtp_timeout_s: wait longer.
    out = call(
        server, "POST", api_path("channels", channel_id, "test"), admin_key_from(admin_key, data_dir), timeout=120
    )
    if not out["delivered"]:
        raise click.ClickException(f"{channel_id}: not delivered: {out['detail']}")
    click.echo(f"{channel_id}: delivered: {out['detail']}")
