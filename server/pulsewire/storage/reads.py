"""Every read the server makes, apart from the one write path.

Each call takes a pooled connection of its own (never the writer's) and gives it back before it
returns, so callers hold no connection while they wait on anything else. The calls block: async
code runs them with `run_in_threadpool`. Streaming reads (`stream_raw`) hold their connection
while the caller iterates.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import Any

from sqlalchemy import Engine

from pulsewire.clock import now_ms
from pulsewire.releases.bundle import ReleaseFile
from pulsewire.releases.rollout import Rollout
from pulsewire.storage import alert_log, alerting
from pulsewire.storage import devices as store
from pulsewire.storage import releases as release_store
from pulsewire.storage.alerting import StoredChannel, StoredRule
from pulsewire.storage.devices import DeviceRecord, LatestValue
from pulsewire.storage.foldcache import FoldCache
from pulsewire.storage.queries import Answer, Point, TelemetryQuery, raw_points, read_series, series_ids
from pulsewire.storage.retention import Retention

Latest = dict[str, dict[str, LatestValue]]  # device id -> metric -> latest value


class Reads:
    def __init__(self, engine: Engine, retention: Retention) -> None:
        self._engine = engine
        self._retention = retention
        self._folds = FoldCache()

    def device_for_token(self, token_digest: str) -> str | None:
        with self._engine.connect() as conn:
            return store.device_for_token(conn, token_digest)

    def exists(self, device_id: str) -> bool:
        with self._engine.connect() as conn:
            return store.device_exists(conn, device_id)

    def device(self, device_id: str) -> DeviceRecord | None:
        with self._engine.connect() as conn:
            return store.get_device(conn, device_id)

    def devices(self) -> list[DeviceRecord]:
        with self._engine.connect() as conn:
            return store.list_devices(conn)

    def interval_of(self, device_id: str) -> int | None:
        """The device's own sampling interval (set_interval), or None."""
        with self._engine.connect() as conn:
            return store.interval_of(conn, device_id)

    def latest(self, device_id: str) -> dict[str, LatestValue] | None:
        """metric -> latest value of one device; None when there is no such device."""
        with self._engine.connect() as conn:
            if not store.device_exists(conn, device_id):
                return None
            return store.latest_values(conn, device_id).get(device_id, {})

    def devices_and_latest(self) -> tuple[list[DeviceRecord], Latest]:
        """Every device and every latest value, read together (what a live snapshot shows)."""
        with self._engine.connect() as conn:
            return store.list_devices(conn), store.latest_values(conn)

    def series_of(self, device_id: str) -> dict[str, int] | None:
        """metric -> series id of one device; None when there is no such device."""
        with self._engine.connect() as conn:
            if not store.device_exists(conn, device_id):
                return None
            return series_ids(conn, device_id)

    def series(self, chosen: dict[str, int], query: TelemetryQuery) -> dict[str, Answer]:
        """metric -> its answer, for each chosen series (metric -> series id)."""
        floors = self._retention.floors(now_ms())
        with self._engine.connect() as conn:
            return {metric: read_series(conn, sid, query, floors, self._folds) for metric, sid in chosen.items()}

    def stream_raw(
        self, chosen: dict[str, int], query: TelemetryQuery, chunk: int = 2000
    ) -> Iterator[tuple[str, list[Point]]]:
        """(metric, a chunk of raw points), series after series, fetched as they are sent."""
        with self._engine.connect() as conn:
            for metric, sid in chosen.items():
                points = raw_points(conn, sid, query)
                while batch := list(islice(points, chunk)):
                    yield metric, batch

    def rules(self) -> list[StoredRule]:
        with self._engine.connect() as conn:
            return alerting.list_rules(conn)

    def rule(self, rule_id: str) -> StoredRule | None:
        with self._engine.connect() as conn:
            return alerting.get_rule(conn, rule_id)

    def channels(self) -> list[StoredChannel]:
        with self._engine.connect() as conn:
            return alerting.list_channels(conn)

    def channel(self, channel_id: str) -> StoredChannel | None:
        with self._engine.connect() as conn:
            return alerting.get_channel(conn, channel_id)

    def firing_alerts(self) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return alert_log.firing_alerts(conn)

    def alert_history(
        self, start: int, end: int, limit: int, device_id: str | None, rule_id: str | None
    ) -> list[dict[str, Any]]:
        with self._engine.connect() as conn:
            return alert_log.alert_history(conn, start, end, limit, device_id, rule_id)

    def alert(self, alert_id: int) -> dict[str, Any] | None:
        with self._engine.connect() as conn:
            return alert_log.get_alert(conn, alert_id)

    def notifications(self, alert_id: int) -> list[dict[str, Any]] | None:
        """The notifications of one alert; None when there is no such alert."""
        with self._engine.connect() as conn:
            if alert_log.get_alert(conn, alert_id) is None:
                return None
            return alert_log.notifications_of(conn, alert_id)

    def releases(self) -> list[release_store.StoredRelease]:
        with self._engine.connect() as conn:
            return release_store.list_releases(conn)

    def release(self, version: str) -> release_store.StoredRelease | None:
        with self._engine.connect() as conn:
            found = release_store.list_releases(conn, version)
            return found[0] if found else None

    def release_file(self, version: str, path: str) -> ReleaseFile | None:
        with self._engine.connect() as conn:
            return release_store.release_file(conn, version, path)

    def rollouts(self, limit: int, active: bool = False) -> list[Rollout]:
        """The latest `limit` rollouts (only the active ones, with `active`), newest first."""
        with self._engine.connect() as conn:
            return release_store.rollouts_where(conn, active=active, limit=limit)

    def rollout(self, rollout_id: str) -> Rollout | None:
        with self._engine.connect() as conn:
            found = release_store.rollouts_where(conn, rollout_id=rollout_id)
            return found[0] if found else None
