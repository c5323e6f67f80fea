"""The cluster's bus: envelopes between Pulsewire instances over Redis pub/sub, heartbeats, and the
registry of which instance holds each device's connection.

What it uses in Redis (the constants `BROADCAST`, `DIRECT`, `INSTANCE_KEY` and `PRESENCE` below):
- the channel `pulsewire:bus`, which every instance hears, and `pulsewire:to:<instance>`, which only
  that instance hears;
- a key `pulsewire:instance:<id>` per instance, set every `heartbeat_s` with a time to live of
  `dead_after_s`: an instance whose key vanished died (a clean stop deletes it and says `gone`);
- the hash `pulsewire:presence`, device -> "<instance>:<conn>", the connection that holds the device.

Delivery is at most once, in order per sender. Redis is never in the path of ingest: `publish` and
`send` only put the envelope in a bounded queue that one task drains, in order, pipelined; while
Redis is unreachable they drop it and count it (`dropped`), since a live message late by an outage
is worth nothing and a dashboard fetches what it missed when it sees the gap. The connection comes
back by itself, with capped exponential backoff and jitter (cluster/backoff.py), and subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from pulsewire.cluster.backoff import Draw, reconnect_delay
from pulsewire.cluster.envelope import Envelope, EnvelopeError, Gone, decode, encode, is_instance_id
from pulsewire.cluster.liveness import Liveness

log = logging.getLogger("pulsewire.cluster")

BROADCAST = "pulsewire:bus"
DIRECT = "pulsewire:to:"  # + instance id
INSTANCE_KEY = "pulsewire:instance:"  # + instance id
PRESENCE = "pulsewire:presence"
_BROADCAST = BROADCAST.encode()

MAX_CONNECTIONS = 32  # to Redis, per instance: commands beyond wait for one (at most TIMEOUT_S)
TIMEOUT_S = 2.0  # connecting, and any one command: a Redis that does not answer by then is down
MAX_OUTBOX = 10_000  # envelopes waiting to be published; past it the oldest is dropped
MAX_BATCH = 512  # envelopes per pipeline: one round trip for many, without holding up the loop

# What Redis being down or cut off looks like: redis-py's own errors (its ConnectionError and
# TimeoutError among them), and a socket's errors that reach us unwrapped.
REDIS_DOWN = (RedisError, OSError, asyncio.TimeoutError)

# HSET that returns the value it replaced, in one step: two claims racing each see the other.
_CLAIM = """
local previous = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return previous
"""
# HDEL only if the device is still held by this connection: a newer claim is never undone by the older.
_RELEASE = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0
"""

# HDEL every device held by one instance's connections, returning them: run by every instance that
# found it dead, it gives each device to exactly one of them.
_TAKE_OVER = """
local taken = {}
local entries = redis.call('HGETALL', KEYS[1])
for i = 1, #entries, 2 do
  if string.sub(entries[i + 1], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], entries[i])
    taken[#taken + 1] = entries[i]
  end
end
return taken
"""

T = TypeVar("T")


class BusUnavailable(Exception):
    """Redis could not be reached, or did not answer in time."""


def direct_channel(instance: str) -> str:
    return DIRECT + instance


def instance_key(instance: str) -> str:
    return INSTANCE_KEY + instance


class RedisBus:
    """One instance's end of the bus. `on_message` and `on_health` run on the event loop and must not block."""

    def __init__(
        self,
        url: str,
        instance_id: str,
        on_message: Callable[[Envelope], None],
        heartbeat_s: float = 1.0,
        dead_after_s: float = 5.0,
        *,
        on_health: Callable[[bool], None] | None = None,
        max_outbox: int = MAX_OUTBOX,
        draw: Draw = random.uniform,
    ) -> None:
        _check_options(instance_id, heartbeat_s, dead_after_s, max_outbox)
        self.instance_id = instance_id
        self._on_message = on_message
        self._on_health = on_health
        self._heartbeat_s = heartbeat_s
        self._dead_after_ms = round(dead_after_s * 1000)
        self._max_outbox = max_outbox
        self._draw = draw
        self._redis = _client(url)
        self._claim = self._redis.register_script(_CLAIM)
        self._release = self._redis.register_script(_RELEASE)
        self._take_over = self._redis.register_script(_TAKE_OVER)
        self._liveness = Liveness(instance_id, grace_s=dead_after_s)
        self._outbox: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._beating = asyncio.Lock()
        self._first_try = asyncio.Event()
        self._healthy = False
        self._trouble: BaseException | None = None  # set by any task that found Redis gone: reconnect
        self._sessions = 0  # connections that got as far as healthy
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []
        self._beats: asyncio.Task[None] | None = None
        self.dropped = 0  # envelopes not published: Redis down, outbox full, or not sendable
        self.malformed = 0  # messages on our channels that were not valid envelopes
        self.published = 0  # envelopes Redis took
        self.received = 0  # envelopes handed to on_message (a `gone` found by a heartbeat among them)

    # --- life --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Starts the tasks and returns once the first connection is made or has failed (at most
        about TIMEOUT_S); when it failed the bus keeps trying, and `healthy` says when it is back."""
        self._beats = asyncio.create_task(self._heartbeats(), name="bus-heartbeats")
        self._tasks = [
            asyncio.create_task(self._connection(), name="bus-connection"),
            asyncio.create_task(self._sending(), name="bus-sending"),
            self._beats,
        ]
        await self._first_try.wait()

    async def stop(self) -> None:
        """Leaves cleanly: no more heartbeats, the key deleted, then `gone` published after what was
        queued (in that order, so that no instance sees the key again after the `gone`)."""
        self._stopping = True  # no heartbeat from here on, even from a reconnection
        await _cancel(self._beats)
        if self._healthy:
            with contextlib.suppress(*REDIS_DOWN):
                await self._redis.delete(instance_key(self.instance_id))
            self.publish(Gone(self.instance_id, instance=self.instance_id))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._idle.wait(), TIMEOUT_S)
        for task in self._tasks:
            await _cancel(task)
        self._tasks = []
        self._set_health(False)
        with contextlib.suppress(*REDIS_DOWN):
            await self._redis.aclose()

    @property
    def healthy(self) -> bool:
        """Connected and subscribed, and the last heartbeat and publish went through."""
        return self._healthy

    def alive(self) -> set[str]:
        """The instances seen alive at the last heartbeat (this one among them)."""
        return set(self._liveness.alive)

    # --- out ---------------------------------------------------------------------------------

    def publish(self, env: Envelope) -> None:
        """To every other instance. Never blocks, never raises: dropped and counted when it cannot go."""
        self._queue(BROADCAST, env)

    def send(self, instance: str, env: Envelope) -> None:
        """To `instance` only. Never blocks, never raises, like `publish`."""
        if not is_instance_id(instance):
            self.dropped += 1
            log.warning("cluster bus: %s not sent: %r is not an instance id", env.kind, instance)
            return
        self._queue(direct_channel(instance), env)

    def _queue(self, channel: str, env: Envelope) -> None:
        if not self._healthy:
            self.dropped += 1
            return
        try:
            data = encode(env)
        except EnvelopeError as exc:
            self.dropped += 1
            log.warning("cluster bus: %s not sent: %s", env.kind, exc)
            return
        if len(self._outbox) >= self._max_outbox:
            self._outbox.popleft()  # the oldest is the least worth having
            self.dropped += 1
        self._outbox.append((channel, data))
        self._idle.clear()
        self._wake.set()

    async def _sending(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._outbox:
                batch = [self._outbox.popleft() for _ in range(min(len(self._outbox), MAX_BATCH))]
                try:
                    async with self._redis.pipeline(transaction=False) as pipe:
                        for channel, data in batch:
                            pipe.publish(channel, data)
                        await pipe.execute()
                    self.published += len(batch)
                except REDIS_DOWN as exc:
                    # Whether any of the batch went out is unknown: counted dropped, never sent twice.
                    self.dropped += len(batch) + len(self._outbox)
                    self._outbox.clear()
                    self._lost(exc)
            self._idle.set()

    # --- in ----------------------------------------------------------------------------------

    async def _connection(self) -> None:
        """Keeps one subscribed connection, reconnecting after each loss with backoff."""
        failures = 0
        while not self._stopping:
            sessions = self._sessions
            try:
                await self._session()
            except REDIS_DOWN as exc:
                self._set_health(False, _why(exc))
            except Exception as exc:  # a bug must not end the bus: log it and reconnect like any loss
                log.exception("cluster bus: connection failed")
                self._set_health(False, _why(exc))
            if not self._first_try.is_set():
                log.warning("cluster bus: Redis unreachable at start; retrying in the background")
                self._first_try.set()
            failures = 1 if self._sessions != sessions else failures + 1
            await asyncio.sleep(reconnect_delay(failures, self._draw))

    async def _session(self) -> None:
        """One connection: subscribe, first heartbeat, then hand each message over until trouble."""
        pubsub: PubSub = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(BROADCAST, direct_channel(self.instance_id))
            self._trouble = None
            self._liveness.connected(time.monotonic())
            await self._beat()
            self._sessions += 1
            self._set_health(True)
            self._first_try.set()
            while self._trouble is None and not self._stopping:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self._heartbeat_s)
                if message is not None:
                    self._receive(message["channel"], message["data"])
            if self._trouble is not None:
                raise self._trouble
        finally:
            with contextlib.suppress(*REDIS_DOWN):
                await pubsub.aclose()

    def _receive(self, channel: bytes, data: bytes) -> None:
        try:
            env = decode(data)
        except EnvelopeError as exc:
            self.malformed += 1
            log.warning("cluster bus: malformed message on %s dropped: %s", channel.decode(errors="replace"), exc)
            return
        if env.sender == self.instance_id and channel == _BROADCAST:
            return  # our own broadcast, back from Redis
        if isinstance(env, Gone):
            self._liveness.left(env.instance)
        self._deliver(env)

    def _deliver(self, env: Envelope) -> None:
        self.received += 1
        try:
            self._on_message(env)
        except Exception:  # the handler's bug must not stop the bus for every other message
            log.exception("cluster bus: on_message failed on a %s envelope", env.kind)

    # --- heartbeats --------------------------------------------------------------------------

    async def _heartbeats(self) -> None:
        while not self._stopping:
            await asyncio.sleep(self._heartbeat_s)
            if not self._healthy:
                continue  # the connection task is reconnecting; its first step is a heartbeat
            try:
                await self._beat()
            except REDIS_DOWN as exc:
                self._lost(exc)

    async def _beat(self) -> None:
        """Our key set again, then every instance's key read: who is alive, and who just died."""
        async with self._beating:
            if not self._stopping:
                await self._redis.set(
                    instance_key(self.instance_id), str(int(time.time() * 1000)), px=self._dead_after_ms
                )
            self._liveness.scanning()
            found = set()
            async for key in self._redis.scan_iter(match=INSTANCE_KEY + "*", count=1000):
                found.add(key.decode()[len(INSTANCE_KEY) :])
            for instance in self._liveness.scanned(found, time.monotonic()):
                log.warning("cluster bus: instance %s stopped its heartbeats; reported gone", instance)
                self._deliver(Gone(self.instance_id, instance=instance))

    # --- health ------------------------------------------------------------------------------

    def _lost(self, exc: BaseException) -> None:
        """Another task found Redis gone: publishing stops now, the connection task reconnects."""
        self._trouble = exc
        self._set_health(False, _why(exc))

    def _set_health(self, healthy: bool, why: str = "") -> None:
        if healthy == self._healthy:
            return
        self._healthy = healthy
        if healthy:
            log.info("cluster bus: connected to Redis as %s", self.instance_id)
        elif not self._stopping:
            log.warning("cluster bus: Redis unreachable (%s); live messages between instances dropped until back", why)
        if self._on_health is not None:
            try:
                self._on_health(healthy)
            except Exception:
                log.exception("cluster bus: on_health failed")

    # --- who holds each device ---------------------------------------------------------------

    async def claim(self, device: str, conn: str) -> str | None:
        """Records that this instance's connection `conn` holds `device`; returns the previous
        holder ("<instance>:<conn>"), or None. Raises `BusUnavailable`."""
        previous = await self._call(lambda: self._claim(keys=[PRESENCE], args=[device, self._holder(conn)]))
        return _text(previous)

    async def release(self, device: str, conn: str) -> bool:
        """Forgets that `conn` holds `device`, unless a newer claim took it since; True if it did."""
        removed = await self._call(lambda: self._release(keys=[PRESENCE], args=[device, self._holder(conn)]))
        return bool(removed)

    async def holders(self) -> dict[str, str]:
        """Every device held anywhere -> "<instance>:<conn>"."""
        found = await self._call(lambda: self._redis.hgetall(PRESENCE))
        return {_text(k) or "": _text(v) or "" for k, v in found.items()}

    async def take_over(self, instance: str) -> list[str]:
        """Removes the departed `instance`'s devices from the registry; those this call removed (the
        other instances calling it for the same instance get the rest, none twice)."""
        taken = await self._call(lambda: self._take_over(keys=[PRESENCE], args=[instance + ":"]))
        return [_text(device) or "" for device in taken]

    def _holder(self, conn: str) -> str:
        return f"{self.instance_id}:{conn}"

    async def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        """At once BusUnavailable while the bus is down: a device's hello never waits for Redis's timeout."""
        if not self._healthy:
            raise BusUnavailable("Redis unreachable")
        try:
            return await make()
        except REDIS_DOWN as exc:
            raise BusUnavailable(f"Redis unreachable: {_why(exc)}") from exc


def _check_options(instance_id: str, heartbeat_s: float, dead_after_s: float, max_outbox: int) -> None:
    if not is_instance_id(instance_id):
        raise ValueError(f"instance id {instance_id!r}: 1 to 64 of A-Z a-z 0-9 _ . -")
    if not 0 < heartbeat_s < dead_after_s:
        raise ValueError("heartbeat_s must be above 0 and below dead_after_s")
    if max_outbox < 1:
        raise ValueError("max_outbox must be at least 1")


def _client(url: str) -> Redis:
    # No retries inside redis-py: a command fails at once (or after TIMEOUT_S), and the bus decides.
    # A blocking pool: a hundred devices connecting at once wait their turn for a connection rather
    # than failing with "Too many connections", which would read as Redis being down.
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=TIMEOUT_S,
        socket_connect_timeout=TIMEOUT_S,
        socket_timeout=TIMEOUT_S,
        retry=Retry(NoBackoff(), 0),
    )
    return Redis(connection_pool=pool)


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else None


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _cancel(task: asyncio.Task[None] | None) -> None:
    # Cancelled again until it ends: a cancellation can be lost inside a redis-py command (seen on
    # Python 3.11: the heartbeat task went on to its next sleep and stop() waited forever).
    while task is not None and not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
    if task is not None and not task.cancelled() and task.exception() is not None:
        log.error("cluster bus: task %s had failed", task.get_name(), exc_info=task.exception())
