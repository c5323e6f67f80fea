"""The rules every part of Pulsewire shares (docs/protocol.md): names, times, intervals, commands.

One rule each, with no I/O: the device codec, the HTTP API, the settings and the flashing tool
all check against these. The firmware, which runs on the board and cannot import them, keeps
its own copies; tests hold the two equal.
"""

from __future__ import annotations

import re
from typing import Any

# Device ids and metric names: letters, digits, '_', '.', '-', 1 to 64 of them.
NAME_CHARS = "[A-Za-z0-9_.-]{1,64}"
# A device id is also a URL path segment (/api/devices/{id}), where "." and ".." mean "here" and
# "up": clients and proxies resolve them before the server sees them, so they are not ids.
DEVICE_ID = re.compile(r"(?!\.\.?\Z)" + NAME_CHARS + r"\Z")
METRIC_NAME = re.compile(NAME_CHARS + r"\Z")
# The same rule as a JSON Schema pattern (ECMA-262: `$` ends the text), for the HTTP API.
DEVICE_ID_PATTERN = rf"^(?!\.\.?$){NAME_CHARS}$"
# Every id a device may be stored under: older versions registered "." and "..". The routes that
# reach a registered device take these too, so that such a device can still be removed.
STORED_DEVICE_ID_PATTERN = f"^{NAME_CHARS}$"

MAX_TS = 2**53 - 1  # the largest integer every JSON parser (and a JS dashboard) keeps exact
# Readings stamped further ahead of the server's clock are refused: a board whose clock jumped
# would otherwise hold "latest" in the future and write blocks no view reaches.
MAX_AHEAD_MS = 86_400_000

# The sampling interval a device may be given, by set_interval or the sample_interval_ms setting.
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 86_400_000  # one day

# Server-to-device commands (docs/protocol.md, `command`).
CMD_REBOOT = "reboot"
CMD_SET_INTERVAL = "set_interval"
COMMANDS = (CMD_REBOOT, CMD_SET_INTERVAL)
MAX_COMMAND_NAME = 64


class Refused(ValueError):
    """Input refused whole; `detail` names the field and says what is expected (an HTTP 400's)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CommandError(Refused):
    """A command the server was asked to send is unknown or has bad arguments; nothing is sent."""


def is_device_id(text: str) -> bool:
    return DEVICE_ID.match(text) is not None


def is_metric_name(text: str) -> bool:
    return METRIC_NAME.match(text) is not None


def command_args(name: str, args: Any) -> dict[str, Any]:
    """Check a command before it is sent; returns its `args` as they go on the wire.

    `args` is what the caller gave: a JSON object, or None for none. Raises `CommandError`.
    """
    if name not in COMMANDS:
        raise CommandError(f"name: unknown command {name[:MAX_COMMAND_NAME]!r}; known: {', '.join(COMMANDS)}")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise CommandError("args: expected an object")
    if name == CMD_REBOOT:
        if args:
            raise CommandError(f"args: reboot takes no arguments (got {', '.join(sorted(map(str, args)))})")
        return {}
    unknown = sorted(str(k) for k in args if k != "ms")
    if unknown:
        raise CommandError(f"args: unknown argument(s) {', '.join(unknown)}; set_interval takes ms")
    ms = args.get("ms")
    if type(ms) is not int:
        raise CommandError(
            f"args.ms: required integer, the sampling interval in ms ({MIN_INTERVAL_MS}..{MAX_INTERVAL_MS})"
        )
    if not MIN_INTERVAL_MS <= ms <= MAX_INTERVAL_MS:
        raise CommandError(f"args.ms: {ms} is out of range {MIN_INTERVAL_MS}..{MAX_INTERVAL_MS}")
    return {"ms": ms}
