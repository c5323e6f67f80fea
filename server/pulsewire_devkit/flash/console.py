"""The board's console after its reset: what the firmware prints, read for why it is not online (yet).

The firmware logs one line per event (docs/firmware.md, "The status LED and the log"). The lines
that explain a device staying offline become findings that say what to do; a finding is fatal
when the firmware has stopped trying, so waiting longer cannot help. No I/O: bytes in, lines and
findings out.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Finding:
    topic: str  # wifi, link, token, start, crash, sensors: a newer finding replaces one on its topic
    advice: str
    fatal: bool = False


_PATTERNS: list[tuple[re.Pattern[str], str, str | None, bool]] = [
    (
        re.compile(r"^wifi: wrong password for (?P<x>.*)$"),
        "wifi",
        "the board says the Wi-Fi password for {x!r} is wrong: flash again with the right --wifi-password",
        False,
    ),
    (
        re.compile(r"^wifi: no network named (?P<x>.*?) in range$"),
        "wifi",
        "the board sees no network named {x!r}: check --wifi-ssid (spelling and case; an ESP32 joins "
        "2.4 GHz networks only) and that the board is in range",
        False,
    ),
    (re.compile(r"^wifi: connected"), "wifi", None, False),
    (
        re.compile(r"^link: token refused"),
        "token",
        "the server refused the board's token: the device was removed or its token rotated since; run the "
        "command again with --device-id and --rotate-token",
        False,
    ),
    (
        re.compile(r"^link: (?:cannot connect to|no answer from) (?P<x>\S+?):? .*$"),
        "link",
        "the board cannot reach the server at {x}: check that this address is reachable from the board's "
        "network (not 127.0.0.1), that the server listens on it (pulsewire serve --host 0.0.0.0) and that no "
        "firewall blocks the port",
        False,
    ),
    (
        re.compile(r"^link: handshake failed: (?P<x>.*)$"),
        "link",
        "the server refused the board's WebSocket handshake ({x}): is --server the Pulsewire server's base "
        "URL, with no extra path?",
        False,
    ),
    (re.compile(r"^link: online"), "link", None, False),
    (re.compile(r"^link: online"), "token", None, False),
    (
        re.compile(r"^pulsewire: cannot start: (?P<x>.*)$"),
        "start",
        "the firmware did not start: {x}",
        True,
    ),
    (
        re.compile(r"^sensors: sensor (?P<x>\d+) failed"),
        "sensors",
        "sensor {x} (counting the configured sensors from 0) does not answer: check its wiring and pins; the "
        "device goes online without it",
        False,
    ),
]


class ConsoleLog:
    """Lines the board printed on its console, the last `keep` of them kept, and the findings they lead to."""

    def __init__(self, keep: int = 40) -> None:
        self.lines: deque[str] = deque(maxlen=keep)
        self.findings: dict[str, Finding] = {}
        self.last_event = ""  # the newest line the firmware logged, for "still waiting" notes
        self._partial = ""
        self._traceback: list[str] | None = None

    def feed(self, data: bytes) -> list[str]:
        """Take bytes from the board; return the complete lines they finished."""
        text = self._partial + data.decode("utf-8", errors="replace").replace("\x04", "")
        *complete, self._partial = text.split("\n")
        out = []
        for raw in complete:
            line = raw.rstrip("\r").rstrip()
            if not line or line.strip() in (">>>", ">"):
                continue
            out.append(line)
            self.lines.append(line)
            self._read(line)
        return out

    def _read(self, line: str) -> None:
        if self._traceback is not None:
            self._traceback.append(line)
            if not line.startswith(" "):  # the exception line ends a traceback
                self.findings["crash"] = Finding(
                    "crash", "the firmware stopped with an error:\n  " + "\n  ".join(self._traceback), True
                )
                self._traceback = None
            return
        if line.startswith("Traceback (most recent call last)"):
            self._traceback = [line]
            return
        if re.match(r"^(wifi|link|pulsewire|sensors):", line):
            self.last_event = line
        for pattern, topic, advice, fatal in _PATTERNS:
            m = pattern.match(line)
            if not m:
                continue
            if advice is None:
                self.findings.pop(topic, None)
            else:
                self.findings[topic] = Finding(topic, advice.format(**m.groupdict()), fatal)

    @property
    def fatal(self) -> Finding | None:
        return next((f for f in self.findings.values() if f.fatal), None)

    def tail(self, n: int = 15) -> list[str]:
        lines = list(self.lines)[-n:]
        if self._partial.strip():
            lines.append(self._partial.rstrip())
        return lines
