"""The outbox worker: delivers the notifications that `write_changes` stored, until each is sent or failed.

A notification is a row written in the transaction of its event, so it survives a restart and a
receiver that is down. The worker claims the rows that are due (`claim_due` in
storage/alert_log.py, through the writer), sends up to `notify_concurrency` at once
(alerts/deliver.py), and records each outcome through the writer in place of its claim: `sent`,
or `pending` again at a backed-off, jittered time (alerts/retry.py), or `failed` once
`notify_give_up_s` has passed since its first attempt. The rows an event queues are written
claimed for this instance and sent straight from their commit (`take`), with no look at the outbox.

Several instances may share the database, each with its worker. A claim keeps a row from the
others for `notify_claim_s` (longer than any attempt and its record), so one notification is
delivered by one instance at a time. Delivery is at least once: a notification sent but not yet
recorded when its instance dies is sent again once the claim runs out, by whichever instance
claims it first (the same one, restarted), with the same idempotency key.

The worker runs beside ingest and never holds it up: sending happens on the event loop with
bounded time and memory per attempt; a claim and an outcome are each one small write in the
writer's queue, and a look that finds nothing due writes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

import httpx
from sqlalchemy import Connection, Engine

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
        self._claim_ms = round(settings.notify_claim_s * 1000)
        self._in_flight: set[int] = set()
        self._held: dict[int, Notification] = {}  # claimed here, not started: released by the next claim
        self._channels: dict[str, Channel] = {}  # as of the last look at the outbox
        self._outcomes: list[Attempt] = []  # waiting for `_recording`, the write that takes them
        self._recording: asyncio.Future[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def take(self, queued: list[Notification]) -> None:
        """Notifications just committed, claimed for this instance: sent at once when a slot is
        free and their channel is known, with no read of the outbox; the rest are held, and the
        next look, which comes now, releases them to be claimed again by whoever has room."""
        for n in queued:
            channel = self._channels.get(n.channel_id)
            if channel is None or len(self._in_flight) >= self._settings.notify_concurrency:
                self._hold(n)
            else:
                self._start(n, channel)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="pulsewire-outbox")

    async def stop(self) -> None:
        """Stop sending; what is in flight or held is abandoned, and sent again once its claim runs out."""
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
        soonest, self._channels, pending = await asyncio.to_thread(self._look)
        self._metrics.notifications_pending.set(pending)
        now = now_ms()
        free = self._settings.notify_concurrency - len(self._in_flight)
        if not self._held and (soonest is None or soonest > now or free <= 0):
            return  # nothing to claim or release: no write
        held = list(self._held.values())
        claim = alert_log.claim_due(now, now + self._claim_ms, free, frozenset(self._in_flight), held)
        due = await self._writer.call(claim)
        for n in held:  # released: due again, for any outbox
            self._held.pop(n.id, None)
        if any(n.channel_id not in self._channels for n in due):  # a channel made since the look
            self._channels = await asyncio.to_thread(self._read_channels)
        for n in due:
            if len(self._in_flight) >= self._settings.notify_concurrency:
                self._hold(n)  # slots taken straight from a commit while the claim was on its way
            else:
                self._start(n, self._channels.get(n.channel_id))

    def _look(self) -> tuple[int | None, dict[str, Channel], int]:
        """When the next notification falls due, the channels, and how many notifications are pending."""
        with self._db.connect() as conn:
            return alert_log.next_due(conn), _channels(conn), alert_log.pending_count(conn)

    def _read_channels(self) -> dict[str, Channel]:
        with self._db.connect() as conn:
            return _channels(conn)

    def _hold(self, n: Notification) -> None:
        self._held[n.id] = n
        self._wake.set()

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
        lost = await self._writer.call(alert_log.record_attempts(outcomes))
        if lost:  # another outbox has taken these rows over, and records their outcome itself
            log.warning("outcomes not recorded: their claims had run out", extra={"notifications": lost})

    def _attempt(self, n: Notification, outcome: Outcome, at: int, gone: bool) -> Attempt:
        attempts = n.attempts + 1
        first = n.first_attempt_ms if n.first_attempt_ms is not None else at
        done = now_ms()
        if outcome.delivered:
            return Attempt(n.id, n.claim, SENT, attempts, first, done, done, None)
        retry = None if gone else next_attempt(attempts, first / 1000, done / 1000, self._draw, policy=self._policy)
        if retry is None:
            return Attempt(n.id, n.claim, FAILED, attempts, first, done, done, outcome.detail)
        return Attempt(n.id, n.claim, PENDING, attempts, first, round(retry * 1000), None, outcome.detail)

    def _count(self, attempt: Attempt, channel: Channel | None) -> None:
        kind = channel.kind if channel is not None else "unknown"
        m = self._metrics
        counter = {SENT: m.notifications_sent, PENDING: m.notifications_retried, FAILED: m.notifications_failed}
        counter[attempt.status].labels(kind).inc()


def _channels(conn: Connection) -> dict[str, Channel]:
    return {c.id: c.channel for c in list_channels(conn)}
