"""Wall-clock time in the unit of the wire contract."""

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
