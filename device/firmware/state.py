"""What the firmware's tasks share: the state of this board, passed to each task (never a global).

main.py makes the one Device and hands it to the sampler, the link, the Wi-Fi join, the status
LED and the watchdog feeder. It lives apart from main.py so that link.py and wifi.py can name
its type without importing main, which imports them.
"""

import asyncio
import time

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython has no typing module
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

import hardware


class Device:
    def __init__(self, fw: str, interval_ms: int) -> None:
        self.fw = fw  # the firmware's version, sent in hello
        self.status = "starting"  # starting, wifi, connecting, online, offline, refused
        self.interval_ms = interval_ms
        self.wake = asyncio.Event()  # a reading was taken or a batch settled: the link may send
        self.sampled_at = hardware.ticks_ms()
        self.up_ms = 0
        self.up_ticks = time.ticks_ms()
        self.updating = ""  # the version an `update` command is downloading (ota.py): one at a time
        self.update_answer: "Any" = None  # how that update answers: on the connection that asked last
        self.restarting = False  # staged and answered: the board restarts, it does not reconnect

    def uptime_ms(self) -> int:
        now = time.ticks_ms()
        self.up_ms += time.ticks_diff(now, self.up_ticks)  # summed, so ticks wrapping is harmless
        self.up_ticks = now
        return self.up_ms
