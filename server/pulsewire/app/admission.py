"""Who may open a connection now: counts, caps and token buckets, with no I/O.

The caps keep one source of connections from taking every descriptor the process has: a cap on
all open connections (below the open-file limit, so the server refuses before `accept()` fails),
a cap on the connections of one address that have not proved themselves yet (every HTTP and live
connection, and a device connection until its `hello`), and a token bucket on new connections per
address. A device past `hello` is not capped per address: a whole fleet may sit behind one NAT.
Exempt peers (trusted reverse proxies, whose connections carry every client) are capped only by
the total.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# What a refusal says: the total is reached, the address has too many unproven connections, or it
# opens them too fast. Metric label values and log causes (docs/protocol.md).
FULL = "connections"
ADDRESS_PENDING = "address_pending"
ADDRESS_RATE = "address_rate"

# Descriptors kept out of the connection cap: the database and its WAL, the log, the listening
# sockets, the database pool, and connections refused a moment ago whose answer is still going out.
MIN_RESERVE = 64
RESERVE_FRACTION = 8  # an eighth of the limit, at least MIN_RESERVE
PENDING_SHARE = 4  # derived per-address cap: a quarter of the total
BUCKET_SWEEP_S = 60.0  # how often full buckets of quiet addresses are forgotten


def connection_cap(open_files: int) -> int:
    """The most connections to hold with `open_files` descriptors, leaving a reserve for the rest."""
    reserve = max(MIN_RESERVE, open_files // RESERVE_FRACTION)
    return max(1, open_files - reserve)


def pending_cap(max_connections: int) -> int:
    """The derived cap on one address's unproven connections: a quarter of the total, so that one
    address cannot fill the server, while a whole fleet's handshakes after an outage still fit."""
    return max(1, max_connections // PENDING_SHARE)


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    max_pending_per_address: int
    rate_per_address: float  # new connections per second, refilled continuously
    burst_per_address: float  # the bucket's size: new connections at once


class TokenBucket:
    """`rate` tokens a second up to `burst`; `take` spends one if there is one."""

    __slots__ = ("rate", "burst", "tokens", "stamp")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.stamp = now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_for_one(self, now: float) -> float:
        """Seconds until a token is there (0 if one is now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def full(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst


def never_exempt(host: str) -> bool:
    return False


class Admission:
    """Counts of open and unproven connections, per address; `admit` says yes or why not."""

    def __init__(self, limits: Limits, exempt: Callable[[str], bool] = never_exempt) -> None:
        self.limits = limits
        self.exempt = exempt
        self.open = 0
        self.pending: dict[str, int] = {}
        self.buckets: dict[str, TokenBucket] = {}
        self._swept = 0.0

    def admit(self, host: str, now: float) -> str | None:
        """Count a new connection from `host` in (as unproven) and return None, or return the cause of refusal."""
        limits = self.limits
        if self.open >= limits.max_connections:
            return FULL
        if not self.exempt(host):
            if self.pending.get(host, 0) >= limits.max_pending_per_address:
                return ADDRESS_PENDING
            if not self._bucket(host, now).take(now):
                return ADDRESS_RATE
        self.open += 1
        self.pending[host] = self.pending.get(host, 0) + 1
        return None

    def prove(self, host: str) -> None:
        """The connection from `host` is a device past `hello`: no longer counted against its address."""
        left = self.pending.get(host, 0) - 1
        if left > 0:
            self.pending[host] = left
        else:
            self.pending.pop(host, None)

    def release(self, host: str, proven: bool) -> None:
        self.open -= 1
        if not proven:
            self.prove(host)

    def _bucket(self, host: str, now: float) -> TokenBucket:
        if now - self._swept > BUCKET_SWEEP_S:
            self._sweep(now)
        bucket = self.buckets.get(host)
        if bucket is None:
            bucket = self.buckets[host] = TokenBucket(self.limits.rate_per_address, self.limits.burst_per_address, now)
        return bucket

    def _sweep(self, now: float) -> None:
        """Forget the buckets that have filled up again: they say nothing a new one would not."""
        self._swept = now
        for host in [h for h, b in self.buckets.items() if b.full(now)]:
            del self.buckets[host]
