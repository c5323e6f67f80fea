"""Who is alive and who just died, from what each heartbeat scan finds: on values, with the clock passed in."""

from __future__ import annotations

from pulsewire.cluster.liveness import Liveness

GRACE = 5.0


def connected_at(now: float) -> Liveness:
    live = Liveness("a", grace_s=GRACE)
    live.connected(now)
    return live


def scan(live: Liveness, found: set[str], now: float) -> list[str]:
    live.scanning()
    return live.scanned(found, now)


def test_an_instance_that_vanishes_is_reported_once() -> None:
    live = connected_at(0.0)
    assert scan(live, {"a", "b", "c"}, 10.0) == []
    assert live.alive == {"a", "b", "c"}
    assert scan(live, {"a"}, 11.0) == ["b", "c"]
    assert live.alive == {"a"}
    assert scan(live, {"a"}, 12.0) == []


def test_an_instance_seen_again_can_die_again() -> None:
    live = connected_at(0.0)
    scan(live, {"a", "b"}, 10.0)
    assert scan(live, {"a"}, 11.0) == ["b"]
    assert scan(live, {"a", "b"}, 12.0) == []
    assert scan(live, {"a"}, 13.0) == ["b"]


def test_this_instance_is_never_reported() -> None:
    live = connected_at(0.0)
    scan(live, {"a", "b"}, 10.0)
    assert scan(live, set(), 11.0) == ["b"]  # our own key lost too (Redis emptied): we still live


def test_for_the_grace_after_a_connection_scans_add_and_never_remove() -> None:
    live = connected_at(0.0)
    scan(live, {"a", "b", "c"}, 10.0)
    live.connected(20.0)  # Redis restarted empty: the others' keys come back as each reconnects
    assert scan(live, {"a"}, 20.1) == []
    assert scan(live, {"a", "d"}, 24.9) == []
    assert live.alive == {"a", "b", "c", "d"}
    assert scan(live, {"a", "b", "d"}, 25.0) == ["c"]  # grace over: c never came back
    assert live.alive == {"a", "b", "d"}


def test_before_the_first_connection_nothing_is_removed() -> None:
    live = Liveness("a", grace_s=GRACE)
    assert live.scanned({"a", "b"}, 100.0) == []
    assert live.scanned({"a"}, 200.0) == []


def test_a_gone_heard_during_a_scan_outweighs_the_key_that_scan_found() -> None:
    live = connected_at(0.0)
    scan(live, {"a", "b"}, 10.0)
    live.scanning()
    live.left("b")  # b deleted its key and said gone while the scan still read the key
    assert live.scanned({"a", "b"}, 11.0) == []
    assert live.alive == {"a"}
    assert scan(live, {"a"}, 12.0) == []  # never reported a second time


def test_a_gone_heard_between_scans_takes_the_instance_out_at_once() -> None:
    live = connected_at(0.0)
    scan(live, {"a", "b"}, 10.0)
    live.left("b")
    assert live.alive == {"a"}
    assert scan(live, {"a"}, 11.0) == []
    assert scan(live, {"a", "b"}, 12.0) == []  # b back under the same id: alive again
    assert live.alive == {"a", "b"}
