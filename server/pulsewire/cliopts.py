"""Options and the admin key lookup shared by the commands that talk to a running server."""

from __future__ import annotations

from pathlib import Path

import click

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
data_dir_option = click.option(
    "--data-dir",
    envvar="PULSEWIRE_DATA_DIR",
    type=click.Path(path_type=Path),
    default=Path("data"),
    show_default=True,
    help="Where to find admin.key when --admin-key is not given.",
)


def stored_admin_key(data_dir: Path) -> str | None:
    path = data_dir / "admin.key"
    return path.read_text().strip() if path.exists() else None
