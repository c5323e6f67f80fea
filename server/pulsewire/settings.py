"""Every setting of the server, in one typed object.

Values come from (highest first) command-line flags, `PULSEWIRE_*` environment variables, and the
defaults below. The object is built once at start-up and passed to whatever needs it.
"""

from __future__ import annotations

import socket
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulsewire.alerts.channels import address_problem
from pulsewire.protocol.rules import MAX_INTERVAL_MS, MIN_INTERVAL_MS
from pulsewire.proxies import Network, parse_trusted
from pulsewire.storage.retention import Retention

# Beyond the longest delivery attempt, a claimed notification's claim lasts this much longer: the
# outcome's write waits in the writer's queue, and the clocks of instances on several machines differ.
NOTIFY_CLAIM_MARGIN_S = 10.0


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PULSEWIRE_", frozen=True, extra="forbid")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to listen on (0 picks a free one).")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Server processes on this port, each with its own writer; more than one needs PostgreSQL "
        "and redis_url.",
    )
    tls_cert: Path | None = Field(
        None, description="PEM certificate (with its chain) to serve https:// and wss:// directly; needs tls_key."
    )
    tls_key: Path | None = Field(None, description="PEM private key of tls_cert (unencrypted); needs tls_cert.")
    trusted_proxies: str | None = Field(
        None,
        description="Comma-separated addresses and CIDRs of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; unset: none (the socket's peer is the client).",
    )
    root_path: str | None = Field(
        None,
        description="Path prefix the server is reached under behind a proxy that strips it (/pulsewire); unset: none.",
    )
    data_dir: Path = Field(Path("data"), description="Folder for the SQLite database and the admin key file.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the database; default: SQLite at <data_dir>/pulsewire.db. "
        "PostgreSQL: postgresql+psycopg://user@host/db.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0) that makes this instance part of a cluster with the others "
        "using it; needs PostgreSQL.",
    )
    admin_key: str | None = Field(
        None,
        description="Key for admin calls. Unset: read from <data_dir>/admin.key, generated on first start.",
    )
    read_key: str | None = Field(
        None,
        description="When set, the live channel and the read API need it too (Bearer header or ?key=).",
    )
    sample_interval_ms: int = Field(
        5000,
        ge=MIN_INTERVAL_MS,
        le=MAX_INTERVAL_MS,
        description="Sampling interval sent to devices in welcome, unless set per device (set_interval).",
    )
    ping_interval_s: float = Field(20.0, gt=0, description="Seconds between server pings on idle WebSockets.")
    ping_timeout_s: float = Field(20.0, gt=0, description="Seconds to wait for a pong before a connection is dead.")
    handshake_timeout_s: float = Field(
        10.0, gt=0, description="Seconds from accepting a connection to its complete request head; then it is closed."
    )
    hello_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a device connection has to say hello; then it is closed with 1008."
    )
    max_connections: int = Field(
        0, ge=0, description="Open connections of all kinds; past it new ones get 503. 0: from the open-file limit."
    )
    max_pending_per_address: int = Field(
        0,
        ge=0,
        description="Open connections of one address that are not a device past hello; past it 503. "
        "0: a quarter of max_connections.",
    )
    new_connections_per_s_per_address: float = Field(
        1000.0, gt=0, description="New connections per second one address may open, on average; past it 503."
    )
    new_connections_burst_per_address: int = Field(
        10_000, ge=1, description="New connections one address may open at once before the per-second rate applies."
    )
    device_batches_per_s: float = Field(
        20_000.0,
        gt=0,
        description="Telemetry batches per second one device connection may send (a second's worth at once); "
        "past it the server stops reading that device until its allowance refills.",
    )
    inflight_batches: int = Field(
        16, ge=1, le=1024, description="Un-acked batches one device may have; past it the server stops reading."
    )
    write_queue_batches: int = Field(
        4096, ge=1, description="Batches waiting for the writer; past it devices wait (backpressure)."
    )
    group_commit_readings: int = Field(
        20_000, ge=1, description="Most values written in one transaction by the batching writer."
    )
    storage_retry_s: float = Field(
        10.0,
        gt=0,
        description="While storage fails, clients are told to come back after between half this and this many "
        "seconds (Retry-After, close reasons); the wait grows with the outage's length up to storage_retry_max_s.",
    )
    storage_retry_max_s: float = Field(
        60.0, gt=0, description="Longest wait a client is told to keep while storage fails (seconds)."
    )
    storage_probe_s: float = Field(
        10.0,
        gt=0,
        description="When nothing was committed for this many seconds, /readyz and /healthz probe the database "
        "first (one probe at a time).",
    )
    storage_probe_timeout_s: float = Field(
        5.0, gt=0, description="A storage probe not done within this many seconds counts as storage not answering."
    )
    live_queue_messages: int = Field(
        1024, ge=1, description="Messages queued for one live client; a client further behind is dropped."
    )
    live_after_commit: bool = Field(
        False,
        description="Push readings to live clients only after their commit (adds the commit, an fsync, to live "
        "latency). Off: pushed as soon as validated, while the commit runs.",
    )
    alert_stale_s: float = Field(
        120.0,
        gt=0,
        description="A reading that arrives more than this many seconds after its own ts comes from a device's "
        "buffer: the alerts it starts or ends are recorded and shown, but not notified.",
    )
    notify_retry_first_s: float = Field(
        2.0, gt=0, description="Most seconds the first retry of an undelivered notification waits (jittered)."
    )
    notify_retry_cap_s: float = Field(
        300.0, gt=0, description="Most seconds any retry of a notification waits; waits double up to this."
    )
    notify_give_up_s: float = Field(
        86_400.0,
        gt=0,
        description="A notification not delivered this many seconds after its first attempt is marked failed.",
    )
    notify_concurrency: int = Field(16, ge=1, le=1024, description="Notifications being delivered at once.")
    webhook_timeout_s: float = Field(
        10.0, gt=0, description="Seconds a webhook receiver has to answer, connection included; then it is retried."
    )
    smtp_host: str | None = Field(None, description="SMTP server for email channels; unset: email cannot be sent.")
    smtp_port: int = Field(
        587, ge=1, le=65535, description="SMTP server port (587 submission, 465 with smtp_security=tls)."
    )
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls",
        description="starttls: plain connection upgraded with STARTTLS (refused if the server lacks it); "
        "tls: TLS from the start; none: no encryption (a local relay only).",
    )
    smtp_user: str | None = Field(None, description="SMTP login, if the server needs one (only over TLS).")
    smtp_password: str | None = Field(None, description="SMTP password of smtp_user.")
    smtp_sender: str | None = Field(
        None, description="From address of alert emails; unset: pulsewire@ this host's fully qualified name."
    )
    smtp_timeout_s: float = Field(30.0, gt=0, description="Seconds an SMTP exchange may take; then it is retried.")
    query_max_limit: int = Field(100_000, ge=1, description="Largest `limit` an HTTP telemetry query may ask for.")
    release_max_bytes: int = Field(
        1_048_576,
        ge=4096,
        le=64 * 1_048_576,
        description="Largest release bundle POST /api/releases takes, in bytes; a larger one gets 413.",
    )
    rollout_step_timeout_s: float = Field(
        3600,
        ge=1,
        le=30 * 86400,
        description="Seconds a device may stay downloading, installed or on trial in a rollout with no "
        "progress; then its step is failed.",
    )
    query_default_limit: int = Field(1000, ge=1, description="`limit` of an HTTP telemetry query that names none.")
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous pragma. FULL survives power loss; NORMAL survives a crash of the process only.",
    )
    retention_raw_days: float = Field(
        30,
        ge=0,
        description="Days raw readings are kept (0: for ever). Readings older than this are refused at ingest.",
    )
    retention_1m_days: float = Field(180, ge=0, description="Days 1-minute rollups are kept (0: for ever).")
    retention_1h_days: float = Field(0, ge=0, description="Days 1-hour rollups are kept (0: for ever).")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="Least severe log level shown.")
    log_format: Literal["text", "json"] = Field("text", description="text: key=value lines; json: one object per line.")
    dashboard_dir: Path | None = Field(
        None, description="Folder served at /; default: the dashboard shipped with Pulsewire."
    )

    @field_validator("database_url")
    @classmethod
    def _known_engine(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("sqlite", "postgresql")):
            raise ValueError("only sqlite:// and postgresql+psycopg:// URLs are supported")
        return url

    @field_validator("redis_url")
    @classmethod
    def _a_redis_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("only redis://, rediss:// and unix:// URLs are supported")
        return url

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, text: str | None) -> str | None:
        parse_trusted(text or "")
        return text

    @field_validator("root_path")
    @classmethod
    def _a_prefix(cls, prefix: str | None) -> str | None:
        if prefix is None:
            return None
        prefix = prefix.strip().rstrip("/")
        if prefix and (not prefix.startswith("/") or any(c in prefix for c in "?#% ")):
            raise ValueError(f"{prefix!r} is not a path prefix such as /pulsewire")
        return prefix

    @field_validator("dashboard_dir")
    @classmethod
    def _a_dashboard(cls, folder: Path | None) -> Path | None:
        if folder is not None and not (folder / "index.html").is_file():
            raise ValueError(f"{folder} has no index.html to serve at /")
        return folder

    @field_validator("sqlite_synchronous", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert is None) != (self.tls_key is None):
            given, missing = ("tls_cert", "tls_key") if self.tls_key is None else ("tls_key", "tls_cert")
            raise ValueError(f"{given} is set but {missing} is not: give both (https) or neither (http)")
        return self

    @model_validator(mode="after")
    def _cluster_needs_postgres(self) -> Settings:
        # Instances and workers share what they store through the database and what they hold in
        # memory (devices, dashboards) through Redis; SQLite cannot be shared between processes.
        postgres = self.resolved_database_url.startswith("postgresql")
        if self.redis_url and not postgres:
            raise ValueError(
                "redis_url needs PostgreSQL: SQLite is one file that one process writes; several instances "
                "cannot share it (set database_url to postgresql+psycopg://...)"
            )
        if self.workers > 1 and not postgres:
            raise ValueError(
                f"workers ({self.workers}) needs PostgreSQL: each worker has its own writer, and SQLite is one "
                "file that one process writes (set database_url to postgresql+psycopg://...)"
            )
        if self.workers > 1 and not self.redis_url:
            raise ValueError(
                f"workers ({self.workers}) needs redis_url: each worker holds its own device and dashboard "
                "connections, and without Redis between them a dashboard on one worker would not see the "
                "devices on another"
            )
        return self

    @model_validator(mode="after")
    def _limits_agree(self) -> Settings:
        if self.query_default_limit > self.query_max_limit:
            raise ValueError(
                f"query_default_limit ({self.query_default_limit}) is larger than query_max_limit ({self.query_max_limit})"
            )
        return self

    @model_validator(mode="after")
    def _retry_bounds(self) -> Settings:
        if self.storage_retry_s > self.storage_retry_max_s:
            raise ValueError(
                f"storage_retry_s ({self.storage_retry_s:g}) is larger than storage_retry_max_s ({self.storage_retry_max_s:g})"
            )
        if self.notify_retry_first_s > self.notify_retry_cap_s:
            raise ValueError(
                f"notify_retry_first_s ({self.notify_retry_first_s:g}) is larger than "
                f"notify_retry_cap_s ({self.notify_retry_cap_s:g})"
            )
        return self

    @field_validator("smtp_sender")
    @classmethod
    def _an_address(cls, sender: str | None) -> str | None:
        problem = address_problem(sender) if sender is not None else None
        if problem:
            raise ValueError(f"{sender!r} is not a plain address (name@example.org): {problem}")
        return sender

    @model_validator(mode="after")
    def _login_over_tls(self) -> Settings:
        if self.smtp_user and self.smtp_security == "none":
            raise ValueError("smtp_user is set but smtp_security is none: a login is only sent over TLS")
        return self

    @property
    def mail_sender(self) -> str:
        """The From address of alert emails."""
        return self.smtp_sender or f"pulsewire@{socket.getfqdn()}"

    @property
    def notify_claim_s(self) -> float:
        """How long an instance's outbox holds a notification it is delivering before any instance
        may take it again: longer than any attempt (webhook or email) and the write of its outcome."""
        return max(self.webhook_timeout_s, self.smtp_timeout_s) + NOTIFY_CLAIM_MARGIN_S

    @cached_property
    def retention(self) -> Retention:
        def days(value: float) -> float | None:
            return value or None

        return Retention(days(self.retention_raw_days), days(self.retention_1m_days), days(self.retention_1h_days))

    @cached_property
    def trusted_networks(self) -> tuple[Network, ...]:
        return parse_trusted(self.trusted_proxies or "")

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'pulsewire.db'}"

    @property
    def admin_key_file(self) -> Path:
        return self.data_dir / "admin.key"
