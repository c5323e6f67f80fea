"""The rules the board shares with the server, with no I/O: metric names, intervals, commands.

They are the server's (server/pulsewire/protocol/rules.py), which the board cannot import, kept
here once: config.py checks the configuration with them, link.py answers the server's commands
with them, and so does `pulsewire simulate` (which loads this file under CPython). A test holds
them equal to the server's.
"""

# The sampling interval a device may be given: in its configuration or by set_interval.
MIN_INTERVAL_MS = 100
MAX_INTERVAL_MS = 86_400_000  # one day

# Metric names (the names of a reading's values), as the server writes the rule.
NAME_CHARS = "[A-Za-z0-9_.-]{1,64}"

# The server's commands (docs/protocol.md, `command`).
REBOOT = "reboot"
SET_INTERVAL = "set_interval"
COMMANDS = (REBOOT, SET_INTERVAL)


def is_metric_name(text: str) -> bool:
    """1 to 64 ASCII letters, digits, '_', '.' or '-' (NAME_CHARS)."""
    if not 0 < len(text) <= 64:
        return False
    for c in text:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_.-"):
            return False
    return True


def answer(name: str, args: dict) -> "tuple[bool, str, int]":
    """The board's answer to the server's command `name`: (ok, detail, interval_ms).

    interval_ms is the sampling interval a good `set_interval` asks for, else 0. The caller
    applies it, sends the result, and after an ok `reboot` resets the board.
    """
    if name == SET_INTERVAL:
        ms = args.get("ms")
        if isinstance(ms, int) and not isinstance(ms, bool) and MIN_INTERVAL_MS <= ms <= MAX_INTERVAL_MS:
            return True, "", ms
        return False, "ms: expected an integer in %d..%d" % (MIN_INTERVAL_MS, MAX_INTERVAL_MS), 0
    if name == REBOOT:
        return True, "", 0
    return False, "unknown command %r" % name[:40], 0
