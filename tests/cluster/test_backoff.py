"""When the bus reconnects: capped exponential backoff with jitter, on values, with the draw passed in."""

from __future__ import annotations

import random

import pytest

from pulsewire.cluster.backoff import CAP_S, FIRST_S, reconnect_delay


def lowest(low: float, high: float) -> float:
    return low


def highest(low: float, high: float) -> float:
    return high


def test_the_bounds_double_from_the_first_wait_up_to_the_cap() -> None:
    assert [reconnect_delay(n, highest) for n in range(1, 9)] == [0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert [reconnect_delay(n, lowest) for n in range(1, 9)] == [0.1, 0.1, 0.2, 0.4, 0.8, 1.6, 2.5, 2.5]


def test_every_wait_is_between_the_first_and_the_cap_whatever_the_draw() -> None:
    rng = random.Random(16)
    for attempt in (1, 2, 5, 10, 1_000, 10**9):
        for draw in (rng.uniform, lambda lo, hi: -1.0, lambda lo, hi: 1e9):
            assert FIRST_S <= reconnect_delay(attempt, draw) <= CAP_S


def test_the_waits_are_spread_so_instances_do_not_come_back_together() -> None:
    rng = random.Random(16)
    waits = {round(reconnect_delay(8, rng.uniform), 3) for _ in range(50)}
    assert len(waits) > 40 and min(waits) >= CAP_S / 2


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        reconnect_delay(0, random.uniform)
