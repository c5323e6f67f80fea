"""The cluster's bus against a real redis-server of this module's own: delivery, order, bad input,
Redis going away and coming back, instances dying, and who holds each device."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from pulsewire.cluster.bus import BROADCAST, BusUnavailable, RedisBus, direct_channel
from pulsewire.cluster.envelope import Command, Envelope, Gone, Live, Result
from tests.support.env import ROOT
from tests.support.redisserver import PrivateRedis
from tests.support.server import free_port
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

HEARTBEAT_S = 0.2
DEAD_AFTER_S = 1.0


@pytest.fixture(scope="module")
def redis_server() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    server.start()
    yield server
    server.destroy()


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> str:
    """The module's Redis, running (a test may have killed it) and empty."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@dataclass
class Node:
    bus: RedisBus
    got: list[Envelope] = field(default_factory=list)
    health: list[bool] = field(default_factory=list)

    def live(self) -> list[str]:
        return [env.data for env in self.got if isinstance(env, Live)]

    def gone(self) -> list[Gone]:
        return [env for env in self.got if isinstance(env, Gone)]


@contextlib.asynccontextmanager
async def node(url: str, instance: str, **options: Any) -> AsyncIterator[Node]:
    got: list[Envelope] = []
    health: list[bool] = []
    options = {"heartbeat_s": HEARTBEAT_S, "dead_after_s": DEAD_AFTER_S, **options}
    bus = RedisBus(url, instance, got.append, on_health=health.append, **options)
    await bus.start()
    try:
        yield Node(bus, got, health)
    finally:
        await bus.stop()


def live(sender: str, data: str, device: str | None = "d1") -> Live:
    return Live(sender, device=device, data=data)


async def test_a_broadcast_reaches_the_others_both_ways_and_never_its_sender(redis_url: str) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b, node(redis_url, "c") as c:
        assert a.bus.healthy and b.bus.healthy and c.bus.healthy
        a.bus.publish(live("a", "from a"))
        await eventually(lambda: b.live() == ["from a"] and c.live() == ["from a"], 5, "a's broadcast at b and c")
        # b answers only once it has a's message: had a's own come back to it, it would be there first.
        b.bus.publish(live("b", "from b"))
        await eventually(lambda: a.live() == ["from b"], 5, "b's broadcast at a")
        await eventually(lambda: c.live() == ["from a", "from b"], 5, "b's broadcast at c")
        assert b.live() == ["from a"]
        assert a.got[0] == live("b", "from b")


async def test_a_direct_send_reaches_its_target_only(redis_url: str) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b, node(redis_url, "c") as c:
        answer = Result("a", id="c-1", ok=True, detail="done", error=None)
        a.bus.send("b", answer)
        a.bus.publish(live("a", "after"))  # published after the send, on the same connection
        await eventually(lambda: c.live() == ["after"] and b.live() == ["after"], 5, "the broadcast after the send")
        assert b.got == [answer, live("a", "after")]
        assert c.got == [live("a", "after")]
        assert a.got == []


async def test_a_thousand_messages_arrive_in_the_order_they_were_published(redis_url: str) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b:
        for i in range(1000):
            a.bus.publish(live("a", str(i)))
            if i % 100 == 0:
                await asyncio.sleep(0)  # the sender drains between bursts: many pipelines, not one
        await eventually(lambda: len(b.live()) == 1000, 10, "1,000 messages at b")
        assert b.live() == [str(i) for i in range(1000)]
        await eventually(lambda: a.bus.published == 1000, 2, "the last pipeline's answer at a")
        assert a.bus.dropped == 0


async def test_a_full_outbox_drops_its_oldest(redis_url: str) -> None:
    async with node(redis_url, "a", max_outbox=3) as a, node(redis_url, "b") as b:
        for i in range(10):  # no await between them: the sender has no chance to drain
            a.bus.publish(live("a", str(i)))
        await eventually(lambda: len(b.live()) == 3, 5, "what the outbox held at b")
        assert b.live() == ["7", "8", "9"]
        assert a.bus.dropped == 7


async def test_malformed_messages_are_counted_and_the_bus_goes_on(redis_url: str, redis_server: PrivateRedis) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b:
        with redis_server.client() as raw:
            raw.publish(BROADCAST, b"not json")
            raw.publish(BROADCAST, b'{"v":2,"from":"x","kind":"gone","instance":"y"}')
            raw.publish(direct_channel("b"), b'{"v":1,"from":"x","kind":"status","device":"d"}')
            raw.publish(BROADCAST, b"\xff" * 10)
        a.bus.publish(live("a", "fine"))
        await eventually(lambda: b.live() == ["fine"], 5, "a valid message after the bad ones")
        assert b.bus.malformed == 4
        assert b.got == [live("a", "fine")]


async def test_a_handler_that_raises_does_not_stop_the_messages_after(redis_url: str) -> None:
    seen: list[str] = []

    def fussy(env: Envelope) -> None:
        assert isinstance(env, Live)
        seen.append(env.data)
        if env.data == "first":
            raise RuntimeError("the handler's own bug")

    async with node(redis_url, "a") as a:
        b = RedisBus(redis_url, "b", fussy, heartbeat_s=HEARTBEAT_S, dead_after_s=DEAD_AFTER_S)
        await b.start()
        try:
            a.bus.publish(live("a", "first"))
            a.bus.publish(live("a", "second"))
            await eventually(lambda: seen == ["first", "second"], 5, "both messages handled")
            assert b.healthy
        finally:
            await b.stop()


async def test_what_cannot_be_sent_is_dropped_and_counted_never_raised(redis_url: str) -> None:
    async with node(redis_url, "a") as a:
        a.bus.publish(Command("a", device="d", id="c", name="n", args={"x": object()}, reply="a", wait=0))
        a.bus.publish(live("a", "x" * (1 << 20)))
        assert a.bus.dropped == 2


async def test_start_with_redis_down_returns_and_the_bus_keeps_trying(redis_url: str) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    async with node(nowhere, "a") as a:
        assert time.monotonic() - started < 3
        assert not a.bus.healthy
        a.bus.publish(live("a", "lost"))
        assert a.bus.dropped == 1
        with pytest.raises(BusUnavailable):
            (await a.bus.holders()).get("d1")


async def test_redis_killed_then_restarted_the_bus_recovers_by_itself(
    redis_url: str, redis_server: PrivateRedis
) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b:
        a.bus.publish(live("a", "before"))
        await eventually(lambda: b.live() == ["before"], 5, "delivery before the outage")
        await eventually(lambda: a.bus.alive() == b.bus.alive() == {"a", "b"}, 3, "each seen by the other")
        redis_server.kill()
        await eventually(lambda: not a.bus.healthy and not b.bus.healthy, 3, "both buses unhealthy")
        assert a.health == [True, False] and b.health == [True, False]

        started = time.perf_counter()
        for i in range(1000):
            a.bus.publish(live("a", f"lost {i}"))
        assert time.perf_counter() - started < 0.1  # no waiting on a Redis that is not there
        assert a.bus.dropped >= 1000
        with pytest.raises(BusUnavailable):
            await a.bus.claim("d1", "c1")

        redis_server.start()  # the same port, empty
        await eventually(lambda: a.bus.healthy and b.bus.healthy, 10, "both buses healthy again")
        assert a.health == [True, False, True]
        a.bus.publish(live("a", "after"))
        await eventually(lambda: b.live() == ["before", "after"], 5, "delivery after the restart")
        b.bus.publish(live("b", "and back"))
        await eventually(lambda: a.live() == ["and back"], 5, "delivery the other way")
        assert await a.bus.claim("d1", "c1") is None
        await eventually(lambda: a.bus.alive() == {"a", "b"}, 3, "both heartbeats back")
        # Redis came back empty, with no heartbeat key: neither took the other for dead meanwhile.
        await asyncio.sleep(2 * HEARTBEAT_S)
        assert a.gone() == [] and b.gone() == []


# A second instance in a process of its own, so that it can die as a process dies: kill -9.
_OTHER = """
import asyncio, sys
from pulsewire.cluster.bus import RedisBus

async def main():
    bus = RedisBus(sys.argv[1], "b", lambda env: None, heartbeat_s=float(sys.argv[2]), dead_after_s=float(sys.argv[3]))
    await bus.start()
    print("healthy" if bus.healthy else "unhealthy", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_an_instance_that_dies_is_reported_gone_once(redis_url: str) -> None:
    async with node(redis_url, "a") as a:
        other = subprocess.Popen(
            [sys.executable, "-c", _OTHER, redis_url, str(HEARTBEAT_S), str(DEAD_AFTER_S)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "healthy"
            await eventually(lambda: a.bus.alive() == {"a", "b"}, 3, "b's heartbeat seen by a")
            other.kill()
            killed = time.monotonic()
        finally:
            other.kill()
            other.wait(10)
        await eventually(a.gone, DEAD_AFTER_S + 3 * HEARTBEAT_S, "b reported gone")
        assert time.monotonic() - killed <= DEAD_AFTER_S + 2 * HEARTBEAT_S
        assert a.gone() == [Gone("a", instance="b")]  # found by a: a signs it
        assert a.bus.alive() == {"a"}
        await asyncio.sleep(3 * HEARTBEAT_S)
        assert len(a.gone()) == 1


async def test_a_clean_stop_says_gone_once_and_leaves_no_heartbeat(redis_url: str, redis_server: PrivateRedis) -> None:
    async with node(redis_url, "a") as a:
        async with node(redis_url, "b"):
            await eventually(lambda: a.bus.alive() == {"a", "b"}, 3, "b's heartbeat seen by a")
        await eventually(a.gone, 2, "b's gone")
        assert a.gone() == [Gone("b", instance="b")]  # said by b itself
        with redis_server.client() as raw:
            assert raw.keys("pulsewire:instance:*") == [b"pulsewire:instance:a"]
        await asyncio.sleep(DEAD_AFTER_S + 2 * HEARTBEAT_S)  # b's time to live and two heartbeats: no second gone
        assert a.gone() == [Gone("b", instance="b")]
        assert a.bus.alive() == {"a"}


async def test_a_newer_claim_returns_the_older_holder_and_a_stale_release_leaves_it(redis_url: str) -> None:
    async with node(redis_url, "a") as a, node(redis_url, "b") as b:
        assert (await a.bus.holders()).get("d1") is None
        assert await a.bus.claim("d1", "c1") is None
        assert (await a.bus.holders()).get("d1") == "a:c1"
        assert await b.bus.claim("d1", "c2") == "a:c1"  # a closes its connection c1 on hearing this
        assert await a.bus.release("d1", "c1") is False  # the older connection ending later
        assert (await b.bus.holders()).get("d1") == "b:c2"
        assert await a.bus.claim("d2", "c1") is None  # another device is its own
        assert await b.bus.release("d1", "c2") is True
        assert (await a.bus.holders()).get("d1") is None
        assert (await a.bus.holders()).get("d2") == "a:c1"
        assert await b.bus.release("d1", "c2") is False


async def test_two_hundred_claims_at_once_wait_for_a_connection_and_the_bus_stays_up(redis_url: str) -> None:
    """A fleet reconnecting together: more claims at once than the bus has connections to Redis.
    They queue for one; none fails and the bus is never taken for down."""
    async with node(redis_url, "a") as a:
        previous = await asyncio.gather(*(a.bus.claim(f"d{n}", "c1") for n in range(200)))
        released = await asyncio.gather(*(a.bus.release(f"d{n}", "c1") for n in range(200)))
        assert previous == [None] * 200 and released == [True] * 200
        assert a.health == [True] and a.bus.healthy
        assert await a.bus.holders() == {}


@pytest.mark.parametrize(
    "instance, options, message",
    [
        ("a:1", {}, "instance id"),
        ("a", {"heartbeat_s": 5.0, "dead_after_s": 5.0}, "below dead_after_s"),
        ("a", {"heartbeat_s": 0.0}, "above 0"),
        ("a", {"max_outbox": 0}, "max_outbox"),
    ],
)
def test_options_that_cannot_work_are_refused(instance: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RedisBus("redis://127.0.0.1:1/0", instance, lambda env: None, **options)


async def test_a_send_to_something_that_is_no_instance_is_dropped(redis_url: str) -> None:
    async with node(redis_url, "a") as a:
        a.bus.send("pulsewire:bus", live("a", "sneaky"))
        assert a.bus.dropped == 1


async def test_stop_ends_even_when_it_lands_in_the_middle_of_a_heartbeat(redis_url: str) -> None:
    # Heartbeats back to back, so that stop() cancels one mid-command more often than not.
    for i in range(30):
        bus = RedisBus(redis_url, f"s{i}", lambda env: None, heartbeat_s=0.001, dead_after_s=1.0)
        await bus.start()
        await asyncio.sleep(0.01 * (i % 3))
        # Not wait_for: its own cancellation of a stop() that hangs would hang the same way.
        stopping = asyncio.ensure_future(bus.stop())
        done, _ = await asyncio.wait({stopping}, timeout=5)
        assert done, f"stop() of bus {i} did not end within 5 s"
