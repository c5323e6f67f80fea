"""The simulated board (pulsewire_devkit.simboard) in tests: the firmware on real MicroPython under Node.

Node.js is required: a workstation without it skips these tests, CI (CI=true) fails them, since
tests/run installs Node there. Boards echo what they print to stdout, which pytest shows for a
failed test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pulsewire import firmware
from pulsewire_devkit.simboard.node import NodeError, find_node
from pulsewire_devkit.simboard.runner import SimBoard
from tests.support.env import missing

FIRMWARE = firmware.folder()


def require_node() -> None:
    """Skip without Node.js on a workstation; fail in CI, where tests/run installs it."""
    try:
        find_node()
    except NodeError as exc:
        missing(str(exc), "tests/run installs Node.js")


@contextmanager
def board(
    firmware: Path | None = FIRMWARE,
    config: Mapping[str, Any] | None = None,
    **options: Any,
) -> Iterator[SimBoard]:
    """A simulated board for the block; its Node process ends with the block, however it ends."""
    require_node()
    with SimBoard(firmware, config, echo=True, **options) as sim:
        yield sim


def firmware_config(server_base: str, token: str, **overrides: Any) -> dict[str, Any]:
    """The board's pulsewire.json for a test: fast sampling, the MCU counter as only sensor."""
    cfg: dict[str, Any] = {
        "server": server_base,
        "token": token,
        "interval_ms": 200,
        "sensors": [{"type": "mcu_temp"}],
        "watchdog_ms": 0,
    }
    cfg.update(overrides)
    return cfg
