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
