"""Alerts at run time: the engine fed by the writer and the clock, its events stored and pushed.

- Readings: the writer hands each group to `_before_commit` just before its transaction; the
  alerts the group moves are written in that same transaction (`write_changes`) and applied to
  the engine once it committed. Nothing polls the database for readings.
- The clock: once a second the ticker judges no-data rules and due repeats, through the writer's
  queue (`call_prepared`), so its changes are ordered with the groups around them.
- Rule edits and acknowledgements go through the writer's queue in the same way.
- Each committed event goes to live clients (`alert` messages) and wakes the outbox
  (alerts/outbox.py), which delivers its notifications: they are written claimed for this
  instance's outbox, so the outbox of another instance on the same database leaves them alone.
- In a cluster (`clustered`), each instance judges the devices it holds: readings arrive where the
  device is connected, and the clock judges only those devices (and those that went offline here).
  A device that arrives takes its alert states from the database (`adopt`); a rule edit or an
  acknowledgement anywhere makes every instance read the rules and states again (`reload`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, select

from pulsewire.alerts.engine import Change, Silence
from pulsewire.alerts.engine import Engine as AlertEngine
from pulsewire.alerts.rulebook import Entry, RuleBook
from pulsewire.channels.hub import LiveHub
from pulsewire.channels.presence import Presence
from pulsewire.clock import now_ms
from pulsewire.metrics import Metrics
from pulsewire.settings import Settings
from pulsewire.storage import alert_log
from pulsewire.storage.alerting import list_rules
from pulsewire.storage.schema import devices, series
from pulsewire.storage.writer import Batch, BatchingWriter, Extra

log = logging.getLogger("pulsewire.alerts")

T = TypeVar("T")
# What a rule write leaves: its own result, the rules now, the changes they make, the new alerts' ids, the events.
_RulesWritten = tuple[Any, RuleBook, list[Change], dict[int, int], list[alert_log.Written]]

TICK_S = 1.0
DEVICES_REFRESH_S = 10.0  # devices added or removed reach the no-data rules within this


class Alerting:
    def __init__(
        self,
        engine: Engine,
        writer: BatchingWriter,
        hub: LiveHub,
        presence: Presence,
        metrics: Metrics,
        settings: Settings,
        on_notifications: Callable[[list[alert_log.Notification]], None] = lambda _: None,
    ) -> None:
        self._db = engine
        self._writer = writer
        self._hub = hub
        self._presence = presence
        self._metrics = metrics
        self._settings = settings
        self.on_notifications = on_notifications  # the outbox takes what was just queued
        self.engine: AlertEngine | None = None
        self._devices: dict[str, int | None] = {}  # registered device -> last seen (server ms)
        self._arrivals: dict[str, dict[str, int]] = {}  # device -> metric -> last arrival (server ms)
        self._ticker: asyncio.Task[None] | None = None
        self._held: set[str] | None = None  # in a cluster: the devices this instance judges
        self.on_changed: Callable[[], None] = lambda: None  # rules or acknowledgements changed here

    def clustered(self) -> None:
        """From now on judge only the devices adopted here."""
        self._held = set()

    def _judges(self, device_id: str) -> bool:
        return self._held is None or device_id in self._held

    async def adopt(self, device_id: str) -> None:
        """The device is connected here now: judge it, from the states another instance left."""
        if self._held is None:
            return
        self._held.add(device_id)
        await self._reload(device_id)

    def let_go(self, device_id: str) -> None:
        """Another instance holds the device now: it judges it."""
        if self._held is not None:
            self._held.discard(device_id)

    async def reload(self) -> None:
        """Another instance changed rules or acknowledged an alert: read the rules and states again."""
        await self._reload(None)

    async def _reload(self, device_id: str | None) -> None:
        """Through the writer's queue, so that nothing of this instance's is in flight meanwhile."""
        engine = self.engine
        assert engine is not None

        def prepare() -> Extra:
            def write(conn: Connection, removed: frozenset[str]) -> tuple[RuleBook, dict[Any, Any]]:
                return _book(conn), alert_log.load_pairs(conn)

            def committed(out: tuple[RuleBook, dict[Any, Any]]) -> None:
                book, pairs = out
                if device_id is None:
                    engine.book, engine.pairs = book, pairs
                else:
                    for key in [k for k in engine.pairs if k[1] == device_id]:
                        del engine.pairs[key]
                    engine.pairs.update((k, p) for k, p in pairs.items() if k[1] == device_id)
                self._count_firing()

            return Extra(write, committed)

        await self._writer.call_prepared(prepare)

    async def start(self) -> None:
        """Load rules, states and what was last heard, then take the writer's groups and tick."""
        now = now_ms()
        book, pairs, self._devices, self._arrivals, newest = await asyncio.to_thread(self._load)
        self.engine = AlertEngine(book, pairs, now, round(self._settings.alert_stale_s * 1000), newest)
        self._count_firing()
        self._writer.before_commit = self._before_commit
        self._ticker = asyncio.create_task(self._tick_forever(), name="pulsewire-alerts")

    async def stop(self) -> None:
        self._writer.before_commit = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None

    def _load(
        self,
    ) -> tuple[RuleBook, dict[Any, Any], dict[str, int | None], dict[str, dict[str, int]], dict[Any, int]]:
        """Rules, stored states, and what was last heard: each device's last contact, and each
        series' newest reading (its arrival unknown, taken as its ts)."""
        with self._db.connect() as conn:
            book = _book(conn)
            pairs = alert_log.load_pairs(conn)
            seen = _last_seen(conn)
            arrivals: dict[str, dict[str, int]] = {}
            newest: dict[tuple[str, str], int] = {}
            for device_id, metric, last_ts in conn.execute(
                select(series.c.device_id, series.c.metric, series.c.last_ts)
            ):
                if last_ts is not None and device_id in seen:
                    arrivals.setdefault(device_id, {})[metric] = last_ts
                    newest[(device_id, metric)] = last_ts
        return book, pairs, seen, arrivals, newest

    # -- readings

    def _before_commit(self, group: list[Batch]) -> Extra | None:
        engine = self.engine
        assert engine is not None
        now = now_ms()
        for batch in group:
            self._devices[batch.device_id] = now
        if engine.book.watches_metrics:  # else a new such rule counts from its own creation
            for batch in group:
                heard = self._arrivals.setdefault(batch.device_id, {})
                for metric in batch.metrics:
                    heard[metric] = now
        if not engine.book.rules:
            return None
        evaluation = engine.evaluate(((b.device_id, b.data) for b in group), now)
        if evaluation.changes:
            return self._extra(evaluation.changes, now, newest=evaluation.newest)
        if evaluation.newest:  # nothing to write; taken as evaluated once the readings are stored
            return Extra(None, lambda _: engine.newest.update(evaluation.newest))
        return None

    def _extra(
        self,
        changes: list[Change],
        now: int,
        first: Callable[[Connection], Any] | None = None,
        newest: dict[tuple[str, str], int] | None = None,
    ) -> Extra:
        """Write `changes` (after `first`, if given) and apply them once committed."""
        engine = self.engine
        assert engine is not None

        def write(conn: Connection, removed: frozenset[str]) -> tuple[Any, dict[int, int], list[alert_log.Written]]:
            before = first(conn) if first is not None else None
            ids, written = alert_log.write_changes(conn, changes, now, self._claim(now), removed)
            return before, ids, written

        def committed(result: tuple[Any, dict[int, int], list[alert_log.Written]]) -> None:
            _, ids, written = result
            engine.apply(changes, ids, newest)
            self._announce(written)

        return Extra(write, committed)

    def _claim(self, now: int) -> int:
        """Until when the notifications written at `now` are claimed for this instance's outbox."""
        return now + round(self._settings.notify_claim_s * 1000)

    def _announce(self, written: Iterable[alert_log.Written]) -> None:
        queued: list[alert_log.Notification] = []
        for w in written:
            self._hub.publish_alert(w.alert["device"], w.event, w.alert)
            self._metrics.alert_events.labels(w.event).inc()
            queued += w.notifications
        self._count_firing()
        if queued:
            self.on_notifications(queued)

    def _count_firing(self) -> None:
        assert self.engine is not None
        self._metrics.alerts_firing.set(sum(1 for p in self.engine.pairs.values() if p.alert_id is not None))

    # -- the clock

    async def _tick_forever(self) -> None:
        refreshed = 0.0
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                if loop.time() - refreshed >= DEVICES_REFRESH_S:
                    self._registered(await asyncio.to_thread(self._read_last_seen))
                    refreshed = loop.time()
                await self._writer.call_prepared(self._prepare_tick)
            except Exception as exc:  # storage trouble: logged by the writer's health; try next tick
                log.debug("alert tick failed", extra={"error": repr(exc)})

    def _read_last_seen(self) -> dict[str, int | None]:
        with self._db.connect() as conn:
            return _last_seen(conn)

    def _registered(self, stored: dict[str, int | None]) -> None:
        """Take the registered devices, keeping what was seen here when it is later than what is stored."""
        for device_id, seen in stored.items():
            here = self._devices.get(device_id)
            if here is not None and (seen is None or here > seen):
                stored[device_id] = here
        self._devices = stored
        for device_id in self._arrivals.keys() - stored.keys():
            del self._arrivals[device_id]

    def _prepare_tick(self) -> Extra | None:
        engine = self.engine
        assert engine is not None
        now = now_ms()
        for device_id in self._devices:  # last seen, to the tick, for a device that goes offline
            if self._presence.is_online(device_id):
                self._devices[device_id] = now
        changes = engine.tick(now, Silence(self._presence.is_online, self._devices, self._arrivals, self._judges))
        return self._extra(changes, now) if changes else None

    # -- rule edits, acknowledgement

    async def write_rules(self, fn: Callable[[Connection], T]) -> T:
        """Run a rule write (storage/alerting.py) and take the rules it leaves, in one transaction:
        the alerts of a rule that changed or went away resolve with it."""
        engine = self.engine
        assert engine is not None
        now = now_ms()

        def prepare() -> Extra:
            def write(conn: Connection, removed: frozenset[str]) -> _RulesWritten:
                result = fn(conn)
                book = _book(conn)
                changes = engine.rule_changes(book, now)
                ids, written = alert_log.write_changes(conn, changes, now, self._claim(now))
                return result, book, changes, ids, written

            def committed(out: _RulesWritten) -> None:
                _, book, changes, ids, written = out
                engine.book = book
                engine.apply(changes, ids)
                self._announce(written)

            return Extra(write, committed)

        result: T = (await self._writer.call_prepared(prepare))[0]
        self.on_changed()
        return result

    async def acknowledge(self, alert_id: int, until: int | None) -> dict[str, Any] | None:
        """Acknowledge an alert (and silence its rule on its device until `until`); its JSON, or
        None when there is no such alert. A resolved alert can be acknowledged too."""
        engine = self.engine
        assert engine is not None
        if self._held is not None:  # the alert's state may have moved on another instance
            await self.reload()

        def prepare() -> Extra:
            now = now_ms()
            change = engine.acknowledge(alert_id, now, until)
            if change is not None:
                return self._extra([change], now)
            return self._extra([], now, first=alert_log.acknowledge_resolved(alert_id, now))

        await self._writer.call_prepared(prepare)
        self.on_changed()
        return await asyncio.to_thread(self._alert, alert_id)

    def _alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._db.connect() as conn:
            return alert_log.get_alert(conn, alert_id)


def _book(conn: Connection) -> RuleBook:
    return RuleBook.of(Entry(r.id, r.rule, r.created_ms) for r in list_rules(conn))


def _last_seen(conn: Connection) -> dict[str, int | None]:
    return {device_id: seen for device_id, seen in conn.execute(select(devices.c.id, devices.c.last_seen))}
