"""The application factory."""

from __future__ import annotations

import logging
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from pulsewire import __version__
from pulsewire.alerts.outbox import Outbox
from pulsewire.alerts.runtime import Alerting
from pulsewire.app.adminkey import resolve_admin_key
from pulsewire.app.exposure import warn_about_exposure
from pulsewire.app.services import Services
from pulsewire.channels import device, live
from pulsewire.channels.hub import LiveHub
from pulsewire.channels.presence import Presence
from pulsewire.cluster.node import ClusterNode
from pulsewire.http import (
    alerting,
    alerts,
    allow,
    commands,
    devices,
    errors,
    openapi_doc,
    openapi_page,
    ops,
    releases,
    rollouts,
    security_headers,
    telemetry,
)
from pulsewire.metrics import Metrics
from pulsewire.releases.runtime import Rollouts
from pulsewire.settings import Settings
from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.health import RetryPolicy, StorageHealth
from pulsewire.storage.reads import Reads
from pulsewire.storage.upkeep import Upkeep
from pulsewire.storage.writer import Batch, BatchingWriter, check_sqlite

log = logging.getLogger("pulsewire")


def shipped_dashboard() -> Path:
    """The dashboard that comes with Pulsewire (package data, from the repository's dashboard/)."""
    return Path(str(files("pulsewire") / "dashboard"))


def create_app(settings: Settings, metrics: Metrics | None = None) -> FastAPI:
    """The app: its routes now; its services (database, writer, hub) when it starts (`lifespan`).

    `metrics`: the registry to count in, when what runs around the app (app/guard.py) counts there too.
    """
    metrics = metrics or Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warn_about_exposure(settings)  # before anything is made: what exists is what was found
        engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
        if engine.dialect.name == "sqlite":
            check_sqlite()  # before the schema is touched
        migrate(engine)
        services = _services(settings, engine, metrics)
        await services.writer.start()
        await services.alerting.start()
        await services.rollouts.start()
        if services.cluster is not None:
            await services.cluster.start()
        services.outbox.start()
        upkeep = Upkeep(services.writer.upkeep_call, engine, settings.retention, services.metrics)
        upkeep.start()
        app.state.services = services
        log.info(
            "pulsewire ready",
            extra={"version": __version__, "database": engine.url.render_as_string(hide_password=True)},
        )
        try:
            yield
        finally:
            await upkeep.stop()
            await services.outbox.stop()
            if services.cluster is not None:
                await services.cluster.stop()
            await services.rollouts.stop()
            await services.alerting.stop()
            await services.writer.stop()
            await services.http_client.aclose()
            engine.dispose()
            log.info("pulsewire stopped")

    app = FastAPI(
        title="Pulsewire",
        version=__version__,
        summary="Telemetry from ESP32-class boards: device ingest, stored readings, live push.",
        lifespan=lifespan,
        docs_url=None,  # openapi_page serves /docs without a CDN
        redoc_url=None,
    )
    errors.install(app)
    openapi_doc.install(app, settings)
    openapi_page.install(app)
    for module in (ops, devices, commands, telemetry, alerting, alerts, releases, rollouts, device, live):
        app.include_router(module.router)
    dashboard = settings.dashboard_dir or shipped_dashboard()
    app.mount("/", StaticFiles(directory=dashboard, html=True), name="dashboard")
    app.add_middleware(allow.answer_allow, router=app.router)
    app.add_middleware(security_headers.security_headers)  # outermost: also on answer_allow's answers
    return app


def _services(settings: Settings, engine: Engine, metrics: Metrics) -> Services:
    """The running parts over an open, migrated database; the writer is not started yet."""
    hub = LiveHub(metrics, settings.live_queue_messages)

    def push_committed(group: list[Batch]) -> None:
        hub.publish_readings((b.device_id, b.data) for b in group)

    def settle(group: list[Batch]) -> None:  # pushed on arrival (channels/device.py), now stored or not
        for batch in group:
            hub.settled(batch.device_id, batch.data)

    writer = BatchingWriter(
        engine,
        metrics,
        queue_batches=settings.write_queue_batches,
        group_values=settings.group_commit_readings,
        on_commit=push_committed if settings.live_after_commit else settle,
        on_unstored=None if settings.live_after_commit else settle,
        health=StorageHealth(metrics, RetryPolicy(settings.storage_retry_s, settings.storage_retry_max_s)),
        shared=settings.redis_url is not None,  # other instances register and remove devices too
    )
    presence = Presence()
    # Redirects are never followed (alerts/webhook.py, classify); each request sets its timeout.
    # Certificates are checked against the system's CAs, as for SMTP (SSL_CERT_FILE applies).
    http_client = httpx.AsyncClient(follow_redirects=False, verify=ssl.create_default_context())
    outbox = Outbox(engine, writer, http_client, settings, metrics)
    reads = Reads(engine, settings.retention)
    alerting = Alerting(engine, writer, hub, presence, metrics, settings, on_notifications=outbox.take)
    rollouts = Rollouts(writer, reads, presence, hub, metrics, settings)
    return Services(
        settings=settings,
        writer=writer,
        reads=reads,
        hub=hub,
        presence=presence,
        metrics=metrics,
        admin_key=resolve_admin_key(settings),
        http_client=http_client,
        alerting=alerting,
        outbox=outbox,
        rollouts=rollouts,
        cluster=None
        if settings.redis_url is None
        else ClusterNode(settings.redis_url, hub, presence, writer, alerting, rollouts, metrics),
    )
