"""The application factory."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from pulsewire import __version__
from pulsewire.adminkey import resolve_admin_key
from pulsewire.hub import LiveHub
from pulsewire.metrics import Metrics
from pulsewire.presence import Presence
from pulsewire.routes import commands_api, device_ws, devices_api, errors, live_ws, ops, telemetry_api
from pulsewire.services import Services
from pulsewire.settings import Settings
from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.writer import Batch, BatchingWriter, check_sqlite

log = logging.getLogger("pulsewire")

SHIPPED_DASHBOARD = Path(__file__).resolve().parents[2] / "dashboard"


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics = Metrics()
        engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
        if engine.dialect.name == "sqlite":
            check_sqlite()  # before the schema is touched
        migrate(engine)
        hub = LiveHub(metrics, settings.live_queue_messages)

        def push_committed(group: list[Batch]) -> None:
            hub.publish_readings((b.device_id, b.data) for b in group)

        def settle(group: list[Batch]) -> None:  # pushed on arrival (routes/device_ws.py), now stored or not
            for batch in group:
                hub.settled(batch.device_id, batch.data)

        writer = BatchingWriter(
            engine,
            metrics,
            queue_batches=settings.write_queue_batches,
            group_values=settings.group_commit_readings,
            on_commit=push_committed if settings.live_after_commit else settle,
            on_unstored=None if settings.live_after_commit else settle,
        )
        await writer.start()
        app.state.services = Services(
            settings=settings,
            engine=engine,
            writer=writer,
            hub=hub,
            presence=Presence(),
            metrics=metrics,
            admin_key=resolve_admin_key(settings),
        )
        log.info(
            "pulsewire ready",
            extra={"version": __version__, "database": engine.url.render_as_string(hide_password=True)},
        )
        try:
            yield
        finally:
            await writer.stop()
            engine.dispose()
            log.info("pulsewire stopped")

    app = FastAPI(
        title="Pulsewire",
        version=__version__,
        summary="Telemetry from ESP32-class boards: device ingest, stored readings, live push.",
        lifespan=lifespan,
    )
    errors.install(app)
    for module in (ops, devices_api, commands_api, telemetry_api, device_ws, live_ws):
        app.include_router(module.router)
    dashboard = settings.dashboard_dir or SHIPPED_DASHBOARD
    if (dashboard / "index.html").exists():
        app.mount("/", StaticFiles(directory=dashboard, html=True), name="dashboard")
    return app
