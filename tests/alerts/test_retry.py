"""The retry schedule: full jitter under a doubling ceiling, never past the cap, gives up at the bound."""

from __future__ import annotations

import random

import pytest

from pulsewire.alerts.retry import DEFAULT_POLICY, Draw, RetryPolicy, ceiling, next_attempt

T0 = 1_796_040_000.0  # the first attempt


def highest(low: float, high: float) -> float:
    return high


def lowest(low: float, high: float) -> float:
    return low


def wait(attempt: int, now: float, draw: Draw) -> float:
    at = next_attempt(attempt, T0, now, draw)
    assert at is not None
    return at - now


def test_the_defaults() -> None:
    assert (DEFAULT_POLICY.first_s, DEFAULT_POLICY.cap_s, DEFAULT_POLICY.max_age_s) == (2.0, 300.0, 86_400.0)


def test_the_ceiling_doubles_from_the_first_delay_to_the_cap() -> None:
    assert [ceiling(n) for n in range(1, 11)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]
    assert ceiling(10**6) == 300  # no overflow however long it runs


def test_each_wait_is_drawn_between_zero_and_the_ceiling() -> None:
    asked: list[tuple[float, float]] = []

    def spy(low: float, high: float) -> float:
        asked.append((low, high))
        return (low + high) / 2

    assert next_attempt(3, T0, T0 + 20, spy) == T0 + 20 + 4
    assert asked == [(0.0, 8.0)]
    assert next_attempt(1, T0, T0, highest) == T0 + 2
    assert next_attempt(1, T0, T0, lowest) == T0


def test_jitter_stays_in_range() -> None:
    draw = random.Random(14).uniform
    waits = {n: [wait(n, T0 + 100, draw) for _ in range(500)] for n in (1, 4, 20)}
    for n, seen in waits.items():
        assert all(0 <= w <= ceiling(n) for w in seen)
        # Spread over the range, not stuck at one end.
        assert min(seen) < ceiling(n) * 0.1 and max(seen) > ceiling(n) * 0.9


def test_never_beyond_the_cap_even_when_the_draw_misbehaves() -> None:
    for attempt in (1, 9, 50, 999):
        assert wait(attempt, T0 + 10, lambda low, high: high * 10) == ceiling(attempt)
        assert wait(attempt, T0 + 10, lambda low, high: -5.0) == 0
    assert next_attempt(50, T0, T0 + 10, highest) == T0 + 10 + 300


def test_gives_up_exactly_at_the_age_bound() -> None:
    deadline = T0 + 86_400
    # Just before the bound: one last try, on the bound itself, not past it.
    assert next_attempt(400, T0, deadline - 1, highest) == deadline
    assert next_attempt(400, T0, deadline - 1, lowest) == deadline - 1
    assert next_attempt(400, T0, deadline, lowest) is None
    assert next_attempt(400, T0, deadline + 1, lowest) is None


def test_gives_up_exactly_at_the_attempt_bound() -> None:
    policy = RetryPolicy(max_attempts=5)
    assert next_attempt(4, T0, T0 + 10, highest, policy=policy) == T0 + 10 + 16
    assert next_attempt(5, T0, T0 + 10, highest, policy=policy) is None
    assert next_attempt(999, T0, T0 + 10, highest) == T0 + 10 + 300
    assert next_attempt(1000, T0, T0 + 10, highest) is None


def test_a_receiver_down_for_minutes_still_gets_it() -> None:
    # Walk a whole schedule with the longest waits: the tries keep coming, at most 5 min apart,
    # until the day is over, and the last falls on the bound: a receiver back at any time hears
    # within 5 minutes.
    times = [T0]
    attempt = 1
    while (at := next_attempt(attempt, T0, times[-1], highest)) is not None:
        times.append(at)
        attempt += 1
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) == 300
    assert times[-1] == T0 + 86_400


def test_a_policy_is_checked() -> None:
    for bad in (
        {"first_s": 0},
        {"first_s": 10, "cap_s": 5},
        {"max_age_s": 0},
        {"max_attempts": 0},
    ):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        next_attempt(0, T0, T0, highest)
