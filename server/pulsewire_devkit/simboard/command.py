"""`pulsewire board-sim`: a simulated ESP32 on a TCP port that `mpremote` (and `pulsewire flash`) can flash.

The simulation itself is boardsim.mjs (MicroPython's WebAssembly port, shipped in vendor/, under
Node); this module finds Node and hands the process over to it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from pulsewire.cli.options import data_dir_option
from pulsewire_devkit import require
from pulsewire_devkit.simboard.node import NodeError, find_node, micropython_dir, script

FS_FOLDER = "board-sim"  # under the data folder, unless --fs says otherwise


@click.command("board-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True, help="TCP port; 0 picks a free one."
)
@click.option(
    "--fs",
    "fs_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Host folder holding the board's files, kept across resets and restarts [default: <data-dir>/{FS_FOLDER}].",
)
@data_dir_option("Folder whose board-sim/ holds the board's files when --fs is not given.")
def board_sim(host: str, port: int, fs_dir: Path | None, data_dir: Path) -> None:
    """Run a simulated ESP32 (MicroPython on WebAssembly) whose REPL listens on TCP, until Ctrl-C or SIGTERM.

    \b
    Flash it like a board: pulsewire flash --port socket://127.0.0.1:PORT ...
    or talk to it:        python -m mpremote connect socket://127.0.0.1:PORT repl
    Needs Node.js 18+; MicroPython itself comes with the devkit.
    """
    require("board-sim")
    try:
        run(host, port, fs_dir or data_dir / FS_FOLDER)
    except NodeError as exc:
        raise click.ClickException(str(exc)) from None


def command(host: str, port: int, fs_dir: Path) -> list[str]:
    """The node command line that runs the simulated board."""
    return [
        find_node(),
        str(script("boardsim.mjs")),
        "--micropython",
        str(micropython_dir()),
        "--host",
        host,
        "--port",
        str(port),
        "--fs",
        str(fs_dir.resolve()),
    ]


def run(host: str, port: int, fs_dir: Path) -> None:
    """Become the simulation: Node takes this process over, so signals reach it directly."""
    argv = command(host, port, fs_dir)
    fs_dir.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(argv[0], argv)
