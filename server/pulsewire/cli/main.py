"""The `pulsewire` command: serve, migrate, manage devices, alert rules and channels, firmware releases
and rollouts, simulate devices; flash and board-sim (devkit)."""

from __future__ import annotations

import click

from pulsewire import __version__
from pulsewire.cli.alerting import channel, rule
from pulsewire.cli.db import db
from pulsewire.cli.devices import device
from pulsewire.cli.devkit import LazyGroup
from pulsewire.cli.releases import release, rollout
from pulsewire.cli.serve import migrate, serve
from pulsewire.cli.simulate import simulate


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="pulsewire")
def main() -> None:
    """Pulsewire: telemetry from ESP32-class boards over WebSocket, stored and pushed live.

    \b
    Start a server with three simulated devices:   pulsewire serve --simulate 3
    Register a board and get its token:            pulsewire device add greenhouse-1
    Be told when a freezer warms up:               pulsewire rule add --help
    Update the boards' firmware over the air:      pulsewire release build; pulsewire rollout start --help
    What is stored, and how compactly:             pulsewire db stats
    Flash a board (devkit):                        pulsewire flash --help
    Every setting is a flag of `serve` and a PULSEWIRE_* environment variable.
    """


for command in (serve, migrate, db, device, rule, channel, release, rollout, simulate):
    main.add_command(command)
