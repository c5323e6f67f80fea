"""Options and the admin key lookup shared by the commands that talk to a running server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from click.decorators import FC

server_option = click.option(
    "--server",
    envvar="PULSEWIRE_SERVER",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="Base URL of the Pulsewire server [env PULSEWIRE_SERVER].",
)
key_option = click.option(
    "--admin-key",
    envvar="PULSEWIRE_ADMIN_KEY",
    default=None,
    help="Admin key [env PULSEWIRE_ADMIN_KEY; default: read from <data-dir>/admin.key].",
)


def data_dir_option(purpose: str = "Where to find admin.key when --admin-key is not given.") -> Callable[[FC], FC]:
    """--data-dir, as `pulsewire serve` has it (PULSEWIRE_DATA_DIR, ./data), for `purpose`."""
    return click.option(
        "--data-dir",
        envvar="PULSEWIRE_DATA_DIR",
        type=click.Path(path_type=Path),
        default=Path("data"),
        show_default=True,
        help=f"{purpose} [env PULSEWIRE_DATA_DIR]",
    )


def stored_admin_key(data_dir: Path) -> str | None:
    path = data_dir / "admin.key"
    return path.read_text().strip() if path.exists() else None


def admin_key_from(given: str | None, data_dir: Path) -> str:
    """The admin key given, or the one kept in the data folder; a usage error saying how to give it."""
    key = given or stored_admin_key(data_dir)
    if key:
        return key
    path = data_dir / "admin.key"
    raise click.UsageError(f"no admin key: pass --admin-key or PULSEWIRE_ADMIN_KEY (or run where {path} exists)")
