"""Prometheus instruments, one registry per app (no process-wide collectors)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


@dataclass(eq=False)
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    # long: one statement per instrument, a flat list to scan
    def __post_init__(self) -> None:
        r = self.registry
        self.device_connections = Gauge("pulsewire_device_connections", "Open device connections", registry=r)
        self.live_clients = Gauge("pulsewire_live_clients", "Open live-channel connections", registry=r)
        self.readings = Counter(
            "pulsewire_readings", "Readings (timestamped value sets) committed; rate() gives readings/s", registry=r
        )
        self.values = Counter("pulsewire_values", "Individual metric values committed", registry=r)
        self.acks = Counter("pulsewire_acks", "Batches acknowledged to devices", registry=r)
        self.rejects = Counter("pulsewire_rejects", "Messages refused with an error message", ["code"], registry=r)
        self.frame_closes = Counter(
            "pulsewire_frame_closes", "Connections closed for an unusable frame", ["close_code"], registry=r
        )
        self.commands = Counter(
            "pulsewire_commands",
            "Server-to-device commands requested over the HTTP API, by outcome",
            ["name", "outcome"],
            registry=r,
        )
        self.auth_refusals = Counter("pulsewire_auth_refusals", "Device handshakes refused", ["reason"], registry=r)
        self.write_queue_depth = Gauge("pulsewire_write_queue_depth", "Batches waiting for the writer", registry=r)
        self.commit_seconds = Histogram(
            "pulsewire_commit_seconds",
            "Duration of one group commit",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.group_batches = Histogram(
            "pulsewire_group_batches",
            "Batches per group commit",
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
            registry=r,
        )
        self.storage_errors = Counter("pulsewire_storage_errors", "Group commits that failed", registry=r)
        self.compaction_lag = Gauge(
            "pulsewire_compaction_lag_seconds",
            "How long ago the oldest window still waiting for compaction closed, at the last pass (0: caught up)",
            registry=r,
        )
        self.compacted_values = Counter(
            "pulsewire_compacted_values", "Readings moved from the hot table into blocks", registry=r
        )
        self.expired_values = Counter(
            "pulsewire_expired_values",
            "Readings that arrived for a window whose raw block had already been swept, dropped at compaction",
            registry=r,
        )
        self.swept_blocks = Counter("pulsewire_swept_blocks", "Blocks removed by retention", ["resolution"], registry=r)
        self.stored_bytes = Gauge(
            "pulsewire_stored_bytes",
            "Bytes of stored data per resolution (raw: blocks and the hot table)",
            ["resolution"],
            registry=r,
        )
        self.upkeep_errors = Counter(
            "pulsewire_upkeep_errors", "Compaction or retention passes that failed (retried)", registry=r
        )
        self.live_dropped = Counter(
            "pulsewire_live_dropped_clients", "Live clients dropped for falling behind", registry=r
        )
        self._storage_health(r)
        self._connection_hygiene(r)
        self._alerts(r)
        self._rollouts(r)

    def _storage_health(self, r: CollectorRegistry) -> None:
        """Whether storage commits (storage/health.py), and the clients turned away while it does not."""
        self.storage_ready = Gauge(
            "pulsewire_storage_ready", "1 while storage commits, 0 while it fails (as /readyz answers)", registry=r
        )
        self.storage_failures = Counter(
            "pulsewire_storage_failures",
            "Storage operations (commits, probes, reads) that failed, by cause",
            ["cause"],
            registry=r,
        )
        self.storage_refusals = Counter(
            "pulsewire_storage_refusals",
            "Clients turned away for storage trouble: HTTP 503s, handshakes refused with 503, devices closed with 1013",
            ["where"],
            registry=r,
        )

    def _connection_hygiene(self, r: CollectorRegistry) -> None:
        """What the guard under the app (app/guard.py) and the device channel's deadlines refuse."""
        self.open_connections = Gauge(
            "pulsewire_open_connections", "Open connections of every kind (HTTP, live, device)", registry=r
        )
        self.connection_limit = Gauge(
            "pulsewire_connection_limit",
            "Most open connections before new ones are refused (max_connections)",
            registry=r,
        )
        self.connections_refused = Counter(
            "pulsewire_connections_refused", "Connections or requests refused before the app", ["cause"], registry=r
        )
        self.handshake_timeouts = Counter(
            "pulsewire_handshake_timeouts",
            "Connections closed for a request head not complete within handshake_timeout_s",
            ["stage"],
            registry=r,
        )
        self.hello_timeouts = Counter(
            "pulsewire_hello_timeouts", "Device connections closed for no hello within hello_timeout_s", registry=r
        )
        self.invalid_text_closes = Counter(
            "pulsewire_invalid_text_closes",
            "WebSocket connections closed with 1007 for a text frame not UTF-8",
            registry=r,
        )
        self.telemetry_throttled = Counter(
            "pulsewire_telemetry_throttled",
            "Times a device's reading paused because it sent batches faster than device_batches_per_s",
            registry=r,
        )

    def _alerts(self, r: CollectorRegistry) -> None:
        self.alerts_firing = Gauge("pulsewire_alerts_firing", "Alerts firing now", registry=r)
        self.alert_events = Counter(
            "pulsewire_alert_events", "Alert events recorded (firing, repeat, resolved, ack)", ["event"], registry=r
        )
        self.notifications_sent = Counter(
            "pulsewire_notifications_sent", "Notifications delivered, by channel type", ["type"], registry=r
        )
        self.notifications_retried = Counter(
            "pulsewire_notifications_retried",
            "Delivery attempts that failed and were scheduled again, by channel type",
            ["type"],
            registry=r,
        )
        self.notifications_failed = Counter(
            "pulsewire_notifications_failed",
            "Notifications given up on (notify_give_up_s passed), by channel type",
            ["type"],
            registry=r,
        )
        self.notifications_pending = Gauge(
            "pulsewire_notifications_pending", "Notifications waiting in the outbox", registry=r
        )

    def _rollouts(self, r: CollectorRegistry) -> None:
        """Firmware rollouts (releases/runtime.py sets the gauges to read its memory at each scrape)."""
        self.rollouts = Gauge("pulsewire_rollouts", "Active rollouts, by state", ["state"], registry=r)
        self.rollout_devices = Gauge(
            "pulsewire_rollout_devices", "Devices in active rollouts, by step", ["step"], registry=r
        )
        self.rollout_steps = Counter(
            "pulsewire_rollout_steps",
            "Rollout steps recorded (a device moving to a step), by step",
            ["step"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
