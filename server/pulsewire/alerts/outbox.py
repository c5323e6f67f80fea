"""The outbox worker: delivers the notifications that `write_changes` stored, until each is sent or failed.

A notification is a row written in the transaction of its event, so it survives a restart and a
receiver that is down. The worker reads the rows that are due, sends up to `notify_concurrency`
at once (alerts/deliver.py), and records each outcome through the writer: `sent`, or `pending`
again at a backed-off, jittered time (alerts/retry.py), or `failed` once `notify_give_up_s` has
passed since its first attempt. Delivery is at least once: a notification sent but not yet
recorded when the server dies is sent again after the restart, with the same idempotency key.

The worker runs beside ingest and never holds it up: sending happens on the event loop with
bounded time and memory per attempt, and an outcome is one small write in the writer's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import httpx
from sqlalchemy import Engine

from pulsewire.alerts.channels import Channel
from pulsewire.alerts.deliver import Notice, Outcome, deliver
from pulsewire.alerts.retry import RetryPolicy, next_attempt
from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.settings import Settings
from pulsewire.storage import alert_log
from pulsewire.storage.alert_log import FAILED, PENDING, SENT, Attempt, Notification
from pulsewire.storage.alerting import list_channels
from pulsewire.storage.writer import BatchingWriter

log = logging.getLogger("pulsewire.outbox")

IDLE_POLL_S = 1.0  # the longest the worker sleeps: a retry falls due within a second of its time


class Outbox:
    def __init__(
        self,
        engine: Engine,
        writer: BatchingWriter,
        client: httpx.AsyncClient,
        settings: Settings,
        metrics: Metrics,
        draw: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self._db = engine
        self._writer = writer
        self._client = client
        self._settings = settings
        self._metrics = metrics
        self._draw = draw
        self._policy = RetryPolicy(
            settings.notify_retry_first_s, settings.notify_retry_cap_s, settings.notify_give_up_s
        )
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.notify_concurrency)
        self._in_flight: set[int] = set()
        self._channels: dict[str, Channel] = {}  # as of the last look at the outbox
        self._outcomes: list[Attempt] = []  # waiting for `_recording`, the write that takes them
        self._recording: asyncio.Future[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def take(self, queued: list[Notification]) -> None:
        """Notifications just committed: sent at once when a slot is free and their channel is
        known, with no read of the outbox; the rest wait for the next look, which comes now."""
        left = False
        for n in queued:
            channel = self._channels.get(n.channel_id)
            if channel is None or n.id in self._in_flight or len(self._in_flight) >= self._settings.notify_concurrency:
                left = True
                continue
            self._start(n, channel)
        if left:
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pulsewire-outbox")

    async def stop(self) -> None:
        """Stop sending; what is in flight is abandoned and sent again after the next start."""
        tasks = [t for t in (self._task, self._recording, *self._sending) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._send_due()
            except Exception as exc:  # storage trouble: recorded by the writer's health; try again
                log.debug("outbox pass failed", extra={"error": repr(exc)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_POLL_S)
            self._wake.clear()

    async def _send_due(self) -> None:
        free = self._settings.notify_concurrency - len(self._in_flight)
        busy = frozenset(self._in_flight)  # a copy: the set changes on the loop meanwhile
        due, self._channels, pending = await asyncio.to_thread(self._due, now_ms(), max(free, 0), busy)
        self._metrics.notifications_pending.set(pending)
        for n in due:
            if n.id in self._in_flight or len(self._in_flight) >= self._settings.notify_concurrency:
                continue  # taken straight from its commit while this look was on its way
            self._start(n, self._channels.get(n.channel_id))

    def _due(self, now: int, limit: int, busy: frozenset[int]) -> tuple[list[Notification], dict[str, Channel], int]:
        with self._db.connect() as conn:
            due = alert_log.due_notifications(conn, now, limit + len(busy), busy)[:limit] if limit else []
            channels = {c.id: c.channel for c in list_channels(conn)}
            return due, channels, alert_log.pending_count(conn)

    def _start(self, n: Notification, channel: Channel | None) -> None:
        self._in_flight.add(n.id)
        task = asyncio.create_task(self._send(n, channel))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, n: Notification, channel: Channel | None) -> None:
        try:
            async with self._slots:
                started = now_ms()
                if channel is None:
                    outcome = Outcome(False, None, "channel removed")
                else:
                    notice = Notice(n.event, n.body["alert"], n.body["rule"], n.key)
                    outcome = await deliver(channel, notice, self._settings, self._client)
            attempt = self._attempt(n, outcome, started, gone=channel is None)
            await self._record(attempt)
            self._count(attempt, channel)
            if attempt.status == PENDING:
                log.info(
                    "notification not delivered; will retry",
                    extra={"key": n.key, "channel": n.channel_id, "attempt": attempt.attempts, "error": outcome.detail},
                )
            elif attempt.status == FAILED:
                log.warning(
                    "notification failed; gave up",
                    extra={
                        "key": n.key,
                        "channel": n.channel_id,
                        "attempts": attempt.attempts,
                        "error": outcome.detail,
                    },
                )
        except Exception as exc:  # not recorded: it stays due and is tried again
            log.debug("notification attempt not recorded", extra={"key": n.key, "error": repr(exc)})
        finally:
            self._in_flight.discard(n.id)
            self._wake.set()  # a slot is free: more may be due

    async def _record(self, attempt: Attempt) -> None:
        """Record an outcome, in one write with every other outcome that comes meanwhile."""
        self._outcomes.append(attempt)
        if self._recording is None:
            self._recording = asyncio.ensure_future(self._record_together())
        await asyncio.shield(self._recording)

    async def _record_together(self) -> None:
        await asyncio.sleep(0)  # outcomes of the same moment join this write
        outcomes, self._outcomes, self._recording = self._outcomes, [], None
        await self._writer.call(alert_log.record_attempts(outcomes))

    def _attempt(self, n: Notification, outcome: Outcome, at: int, gone: bool) -> Attempt:
        attempts = n.attempts + 1
        first = n.first_attempt_ms if n.first_attempt_ms is not None else at
        done = now_ms()
        if outcome.delivered:
            return Attempt(n.id, SENT, attempts, first, done, done, None)
        retry = None if gone else next_attempt(attempts, first / 1000, done / 1000, self._draw, policy=self._policy)
        if retry is None:
            return Attempt(n.id, FAILED, attempts, first, done, done, outcome.detail)
        return Attempt(n.id, PENDING, attempts, first, round(retry * 1000), None, outcome.detail)

    def _count(self, attempt: Attempt, channel: Channel | None) -> None:
        kind = channel.kind if channel is not None else "unknown"
        m = self._metrics
        counter = {SENT: m.notifications_sent, PENDING: m.notifications_retried, FAILED: m.notifications_failed}
        counter[attempt.status].labels(kind).inc()
