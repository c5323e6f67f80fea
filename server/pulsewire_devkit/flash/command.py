"""`pulsewire flash`: the click command (pulsewire.cli.devkit loads it); the work is in the flash package."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from pulsewire.cli.options import data_dir_option, key_option, stored_admin_key
from pulsewire_devkit import require
from pulsewire_devkit.flash.errors import FlashError
from pulsewire_devkit.flash.image import CHIPS, DEFAULT_BAUD
from pulsewire_devkit.flash.plan import SENSOR_EXAMPLES, Options, make_plan


@click.command("flash")
@click.option(
    "--port",
    required=True,
    help="The board: a serial device (/dev/ttyUSB0, /dev/ttyACM0, COM3) or socket://HOST:PORT (a simulated board).",
)
@click.option(
    "--server",
    "server",
    default=None,
    help="The server's URL as the BOARD reaches it over Wi-Fi, e.g. http://192.168.1.20:8000 (never 127.0.0.1 "
    "for a real board). Required unless --config has one.",
)
@click.option(
    "--api-url",
    envvar="PULSEWIRE_SERVER",
    default=None,
    help="The server's URL as THIS machine reaches it, to register the device and watch it come online "
    "[env PULSEWIRE_SERVER; default: --server].",
)
@click.option("--device-id", default=None, help="Register the board as this device (or give it a new token).")
@click.option("--name", default=None, help="Display name when registering (default: the id).")
@click.option("--token", default=None, help="Use this device token; nothing is registered on the server.")
@click.option("--rotate-token", is_flag=True, help="If --device-id exists, give it a new token without asking.")
@click.option("--yes", is_flag=True, help="Answer yes to questions (rotating the token of an existing id).")
@key_option
@data_dir_option()
@click.option("--wifi-ssid", default=None, help="Wi-Fi network the board joins (2.4 GHz).")
@click.option(
    "--wifi-password",
    default=None,
    help="Its password; asked for (hidden) when --wifi-ssid is given without it on a terminal.",
)
@click.option("--interval-ms", type=int, default=None, help="Sampling interval until the server says otherwise.")
@click.option(
    "--sensor",
    "sensors",
    multiple=True,
    metavar="SPEC",
    help=f"A sensor, repeatable: {SENSOR_EXAMPLES}, or a JSON object. Default: mcu_temp and system.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Start from this pulsewire.json; the other options override its keys.",
)
@click.option(
    "--firmware-image",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="First write MicroPython itself (the .bin from micropython.org/download) with esptool. Erases the board.",
)
@click.option(
    "--chip",
    type=click.Choice(("auto", *CHIPS)),
    metavar="CHIP",
    default="auto",
    show_default=True,
    help="The chip, for --firmware-image: esp32, esp32s2, esp32s3, esp32c3, ... (esptool's names); auto detects it.",
)
@click.option("--flash-baud", type=int, default=DEFAULT_BAUD, show_default=True, help="esptool's baud rate.")
@click.option(
    "--reset",
    type=click.Choice(("auto", "hard", "soft")),
    default="auto",
    show_default=True,
    help="How to restart the board after copying: hard (machine.reset()), soft (Ctrl-D); auto: hard on a "
    "serial port, soft on socket://.",
)
@click.option(
    "--wait-s",
    type=click.FloatRange(0, 3600),
    default=60,
    show_default=True,
    help="Seconds to wait for the device to come online; 0: do not wait.",
)
@click.option(
    "--dry-run", is_flag=True, help="Print the plan (secrets masked); touch neither the server nor the board."
)
def flash(data_dir: Path, **options: Any) -> None:
    """Put the Pulsewire firmware on a board and see it come online: optionally write MicroPython
    (esptool), register the device, write its configuration, compile and copy the firmware
    (mpremote), reset it, and wait until the server reports it online.

    \b
    A board with MicroPython, registered as greenhouse-1:
      pulsewire flash --port /dev/ttyUSB0 --server http://192.168.1.20:8000 \\
        --device-id greenhouse-1 --wifi-ssid MyWifi --sensor dht22:4
    A blank ESP32 (MicroPython written first), with a BME280 and an LDR on GPIO 34:
      pulsewire flash --port /dev/ttyUSB0 --firmware-image ESP32_GENERIC-v1.29.0.bin \\
        --server http://192.168.1.20:8000 --device-id shed --wifi-ssid MyWifi \\
        --sensor bme280:sda=21,scl=22 --sensor adc:34,name=light
    With a token from `pulsewire device add`, nothing registered:
      pulsewire flash --port COM3 --server http://pulse.lan:8000 --token pwd_... --device-id shed
    See what would happen, secrets masked:
      pulsewire flash --port /dev/ttyUSB0 --server http://192.168.1.20:8000 --device-id x --dry-run

    \b
    The server must listen where the board can reach it: pulsewire serve --host 0.0.0.0
    """
    require("flash")
    opts = Options(**options, interactive=sys.stdin.isatty())  # every other flag is an Options field
    opts = replace(_with_wifi_password(opts), admin_key=opts.admin_key or stored_admin_key(data_dir) or None)
    try:
        _flash(opts)
    except FlashError as exc:
        raise click.ClickException(str(exc)) from None


def _with_wifi_password(opts: Options) -> Options:
    """On a terminal, the Wi-Fi password --config has for the network, else asked for (hidden)."""
    if opts.wifi_ssid is None or opts.wifi_password is not None or not opts.interactive or opts.dry_run:
        return opts
    password = _password_in(opts.config_file, opts.wifi_ssid)
    if password is None:
        password = click.prompt(
            f"Wi-Fi password for {opts.wifi_ssid} (empty for an open network)",
            hide_input=True,
            default="",
            show_default=False,
        )
    return replace(opts, wifi_password=password)


def _flash(opts: Options) -> None:
    """The plan, then either its dry run printed or the run itself, asking on the terminal."""
    # Imported when the command runs, not whenever the command line lists its commands.
    from pulsewire_devkit.flash.dryrun import dry_run_lines
    from pulsewire_devkit.flash.progress import Ui
    from pulsewire_devkit.flash.run import run

    plan = make_plan(opts)
    if opts.dry_run:
        for line in dry_run_lines(plan):
            click.echo(line)
        return
    run(plan, Ui(ask=lambda q: click.confirm(q, default=False)))


def _password_in(config_file: Path | None, ssid: str) -> str | None:
    """The password --config already has for this network, so it is not asked for again."""
    import json

    if config_file is None:
        return None
    try:
        wifi = json.loads(config_file.read_text(encoding="utf-8")).get("wifi")
    except (OSError, ValueError, AttributeError):
        return None  # make_plan reports a bad file
    if isinstance(wifi, dict) and wifi.get("ssid") == ssid and isinstance(wifi.get("password"), str):
        return str(wifi["password"])
    return None
