"""Database tables (SQLAlchemy Core). Wire and HTTP schemas live elsewhere; rows never leave storage.

A reading is one value of one metric at one instant; a series is one (device, metric) pair.
New readings are rows in `readings`, the hot table, keyed by (series, ts) so a replayed batch
stores once. Compaction (`compaction.py`) moves each closed hour of a series into one row of
`blocks`, packed by `blockcodec.py`, and keeps its 1-minute and 1-hour rollups there too
(`layout.py`; docs/storage.md). The series row carries the latest value, so "latest" and "which
metrics" never read readings.
"""

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Double,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    false,
)

metadata = MetaData()

devices = Table(
    "devices",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    # sha256 of the token: tokens are 256-bit random strings, so a plain digest cannot be reversed
    # and lets the handshake find the device with one indexed lookup.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen", BigInteger, nullable=True),
    Column("fw", String(64), nullable=True),
    # The device's own sampling interval (ms), set by the set_interval command; NULL: the default.
    Column("interval_ms", Integer, nullable=True),
)

# Series outlive a removed device (unless purged) so re-registering the id brings its history back.
series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("device_id", String(64), nullable=False),
    Column("metric", String(64), nullable=False),
    Column("last_ts", BigInteger, nullable=True),
    Column("last_value", Double, nullable=True),
    Column("last_is_bool", Boolean, nullable=False, server_default=false()),
    UniqueConstraint("device_id", "metric", name="uq_series_device_metric"),
)

# No foreign key to series: the writer only writes ids it read from series, and the check on
# every inserted row cost about 15% of insert time. Purging deletes readings explicitly.
readings = Table(
    "readings",
    metadata,
    Column("series_id", Integer, primary_key=True),
    Column("ts", BigInteger, primary_key=True),
    Column("value", Double, nullable=False),
    Column("is_bool", Boolean, nullable=False),
    sqlite_with_rowid=False,
)

# One row per series, resolution and window (layout.py): the raw readings of one hour, or the
# rollup buckets of a day (1m) or 16 days (1h). Retention deletes whole rows, oldest windows
# first, through the (res, start) index.
blocks = Table(
    "blocks",
    metadata,
    Column("series_id", Integer, primary_key=True),
    Column("res", Integer, primary_key=True),
    Column("start", BigInteger, primary_key=True),
    Column("first_ts", BigInteger, nullable=False),  # the first reading's ts, or the first bucket's start
    Column("last_ts", BigInteger, nullable=False),
    Column("n", Integer, nullable=False),  # readings, or buckets
    Column("size", Integer, nullable=False),  # bytes of data: totals come from the index, not the blocks
    Column("data", LargeBinary, nullable=False),
    Index("ix_blocks_res_start", "res", "start", "size"),
    sqlite_with_rowid=False,
)

# Alert channels and rules (docs/protocol.md, alerts): each body is the checked JSON of the API,
# read back through the same checks (pulsewire.alerts). A webhook channel's body holds its secret.
alert_channels = Table(
    "alert_channels",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(100), nullable=False),
    Column("type", String(16), nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
)

alert_rules = Table(
    "alert_rules",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("body", JSON, nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

# The state of each (rule, device) pair (pulsewire.alerts.evaluate.State as JSON), written with the
# readings that moved it, so a restart neither forgets a firing alert nor notifies it twice.
# `alert_id`: the alert of the current episode; `silenced_until`: notifications held back until then.
alert_states = Table(
    "alert_states",
    metadata,
    Column("rule_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("state", JSON, nullable=False),
    Column("alert_id", Integer, nullable=True),
    Column("silenced_until", BigInteger, nullable=True),
)

# One row per episode: from the reading that fired it to the one that resolved it. The rule's name
# and severity are copied in, so the history stays readable after the rule is edited or removed.
alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("rule_id", String(64), nullable=False),
    Column("rule_name", String(100), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("device_id", String(64), nullable=False),
    Column("metric", String(64), nullable=True),
    Column("state", String(16), nullable=False),  # firing | resolved
    Column("since", BigInteger, nullable=False),
    Column("value", Double, nullable=True),
    Column("ts", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("acked_at", BigInteger, nullable=True),
    Column("announced", Boolean, nullable=False, server_default=false()),  # its firing was notified
    Column("repeats", Integer, nullable=False, server_default="0"),  # repeat notifications sent
    Index("ix_alerts_state", "state"),
    Index("ix_alerts_device_since", "device_id", "since"),
    Index("ix_alerts_since", "since"),
)

# The outbox: each notification to each channel, written in the transaction of the event, sent by
# alerts/outbox.py until a 2xx (or 250) or its give-up time. `body` holds the alert and rule JSON as
# they were at the event, so every attempt sends the same bytes with the same idempotency key.
alert_notifications = Table(
    "alert_notifications",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("alert_id", Integer, nullable=False),
    Column("channel_id", String(64), nullable=False),
    Column("event", String(16), nullable=False),
    Column("key", String(128), nullable=False),
    Column("body", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_ms", BigInteger, nullable=False),
    Column("first_attempt_ms", BigInteger, nullable=True),
    # Pending: when it is due; while an instance delivers it (claimed), when that claim runs out.
    Column("next_at_ms", BigInteger, nullable=False),
    Column("done_ms", BigInteger, nullable=True),
    Column("last_error", String(200), nullable=True),
    UniqueConstraint("key", "channel_id", name="uq_alert_notifications_key_channel"),
    Index("ix_alert_notifications_due", "status", "next_at_ms"),
    Index("ix_alert_notifications_alert", "alert_id"),
)

# Firmware releases (docs/fleet.md): one row per version, its files' content in release_files. Blobs
# in the database keep one backup and one write path; a release is bounded by release_max_bytes.
releases = Table(
    "releases",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("mpy_version", Integer, nullable=True),
    Column("size", Integer, nullable=False),  # bytes of all its files
    Column("created_ms", BigInteger, nullable=False),
)

release_files = Table(
    "release_files",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("path", String(64), primary_key=True),
    Column("position", Integer, nullable=False),  # the order the board writes them (main.py last)
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("data", LargeBinary, nullable=False),
)

# Rollouts and each device's step (pulsewire.releases.rollout). Rows outlive their release's
# removal once the rollout is over, so the history stays readable.
rollouts = Table(
    "rollouts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("canary_percent", Integer, nullable=False),
    Column("state", String(16), nullable=False),  # running | paused | halted | aborted | finished
    Column("reason", String(200), nullable=True),
    Column("forced", Boolean, nullable=False, server_default=false()),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
    Index("ix_rollouts_state", "state"),
)

rollout_devices = Table(
    "rollout_devices",
    metadata,
    Column("rollout_id", String(64), primary_key=True),
    Column("device_id", String(64), primary_key=True),
    Column("canary", Boolean, nullable=False),
    Column("step", String(16), nullable=False),
    Column("reason", String(200), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("updated_ms", BigInteger, nullable=False),
)
