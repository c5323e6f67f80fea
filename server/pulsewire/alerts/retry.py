"""When to try a notification again: exponential backoff with full jitter, up to a bound.

The n-th retry waits a random time between 0 and min(cap, first * 2^(n-1)) ("full jitter"): the
random part spreads the retries of many notifications that failed together (a receiver that came
back would otherwise get them all in the same second), the exponential part stops a receiver that
is down from being hammered. Times are seconds (floats, as from `time.time()`); the random draw is
passed in, so that a schedule can be tested exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# draw(low, high) -> a number in [low, high], like random.uniform.
Draw = Callable[[float, float], float]


@dataclass(frozen=True)
class RetryPolicy:
    """The bounds of a schedule. The defaults keep trying for a day: a receiver that is down for
    minutes, or for a night's maintenance, still gets every notification, while a wait never
    grows past five minutes, so a receiver that comes back hears within five minutes. A notification
    still undelivered after that is marked failed, where an admin sees it."""

    first_s: float = 2.0  # the most the first retry waits
    cap_s: float = 300.0  # the most any retry waits
    max_age_s: float = 86_400.0  # give up this long after the first attempt
    # A bound on the work per notification: at an average of cap_s / 2 between tries a day holds
    # about 580 of them, so the age ends a schedule first unless the draws come out very short.
    max_attempts: int = 1_000

    def __post_init__(self) -> None:
        if not 0 < self.first_s <= self.cap_s:
            raise ValueError("RetryPolicy needs 0 < first_s <= cap_s")
        if self.max_age_s <= 0 or self.max_attempts < 1:
            raise ValueError("RetryPolicy needs max_age_s > 0 and max_attempts >= 1")


DEFAULT_POLICY = RetryPolicy()


def ceiling(attempt: int, policy: RetryPolicy = DEFAULT_POLICY) -> float:
    """The longest wait after `attempt` attempts have failed: first_s, doubling, up to cap_s."""
    doublings = min(attempt - 1, 64)  # 2^64 * first_s is past any cap; no float overflow
    return min(policy.cap_s, policy.first_s * 2.0**doublings)


def next_attempt(
    attempt: int, first_at: float, now: float, draw: Draw, *, policy: RetryPolicy = DEFAULT_POLICY
) -> float | None:
    """When to try again after attempt number `attempt` (1 for the first) failed at `now`.

    Returns a time no later than `first_at + max_age_s`, so the last try falls on the bound
    itself; or None (give up, mark the notification failed) once `now` is at the bound or
    `attempt` attempts were made.
    """
    if attempt < 1:
        raise ValueError("attempt counts the attempts made, from 1")
    deadline = first_at + policy.max_age_s
    if attempt >= policy.max_attempts or now >= deadline:
        return None
    high = ceiling(attempt, policy)
    # Clamped: a draw that strays outside its range must not break the bounds.
    wait = min(max(draw(0.0, high), 0.0), high)
    return min(now + wait, deadline)
