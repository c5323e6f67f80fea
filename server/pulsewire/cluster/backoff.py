"""How long the bus waits before reconnecting to Redis: capped exponential backoff with jitter, no I/O.

The n-th attempt in a row waits a random time in the upper half of min(cap, first * 2^(n-1)), never
less than `first`: the exponential part keeps a Redis that is down from being hammered, the random
part keeps the instances of a cluster from all coming back in the same instant after a restart, and
the half that is not random keeps a long outage from being probed in a burst of near-zero waits.
"""

from __future__ import annotations

from collections.abc import Callable

FIRST_S = 0.1
CAP_S = 5.0

# draw(low, high) -> a number in [low, high], like random.uniform.
Draw = Callable[[float, float], float]


def reconnect_delay(attempt: int, draw: Draw, first_s: float = FIRST_S, cap_s: float = CAP_S) -> float:
    """The wait before reconnecting after `attempt` failures in a row (1 for the first)."""
    if attempt < 1:
        raise ValueError("attempt counts the failures, from 1")
    high = min(cap_s, first_s * 2.0 ** min(attempt - 1, 64))  # 2^64 * first_s is past any cap
    low = max(first_s, high / 2)
    # Clamped: a draw that strays outside its range must not break the bounds.
    return min(max(draw(low, high), low), high)
