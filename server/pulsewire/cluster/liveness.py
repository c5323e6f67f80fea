"""Which instances of the cluster are alive, and which have just died, from the heartbeat keys: no I/O.

Every instance keeps a key in Redis with a time to live; each heartbeat the bus SCANs for those keys
and hands what it found to `Liveness.scanned`, which says which instances vanished since the last
scan: each is reported once, until it is seen alive again.

Two things would report an instance that is alive:
- a `gone` an instance broadcasts as it stops cleanly can overtake the scan that still found its key
  (scanned just before the key was deleted): `left` remembers it for the scan in flight;
- after Redis restarts, or after this instance was cut off from it, the keys of the others come back
  only as each of them reconnects, up to one backoff cap later. So for `grace_s` after `connected`
  a scan adds the instances it finds and removes none: an instance that really died then is
  reported once the grace is over.
"""

from __future__ import annotations


class Liveness:
    def __init__(self, own: str, grace_s: float) -> None:
        self._own = own
        self._grace_s = grace_s
        self._alive: set[str] = set()
        self._removals_from = float("inf")  # no scan removes anyone before the first connection
        self._left_in_scan: set[str] = set()

    @property
    def alive(self) -> frozenset[str]:
        return frozenset(self._alive)

    def connected(self, now: float) -> None:
        """The bus (re)connected to Redis at `now` (monotonic seconds)."""
        self._removals_from = now + self._grace_s

    def scanning(self) -> None:
        """A scan starts: a `gone` heard from now on outweighs what it finds."""
        self._left_in_scan.clear()

    def left(self, instance: str) -> None:
        """`instance` said it is going (its `gone` came over the bus): no longer alive, and not reported again."""
        self._alive.discard(instance)
        self._left_in_scan.add(instance)

    def scanned(self, found: set[str], now: float) -> list[str]:
        """The instances a scan found alive at `now`; returns those that died since the last one, sorted."""
        found = found - self._left_in_scan
        if now < self._removals_from:
            self._alive |= found
            return []
        dead = self._alive - found - {self._own}
        self._alive = set(found)
        return sorted(dead)
