"""Running the app under uvicorn with the WebSocket settings the device channel relies on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import uvicorn

from pulsewire import codec, logs
from pulsewire.app import create_app
from pulsewire.settings import Settings

log = logging.getLogger("pulsewire")


def uvicorn_config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws="websockets-sansio",
        ws_max_size=codec.MAX_FRAME_BYTES,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_timeout_s,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def bound_address(server: uvicorn.Server, settings: Settings) -> str:
    for srv in server.servers:
        for sock in srv.sockets:
            host, port = sock.getsockname()[:2]
            shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            return f"http://[{shown}]:{port}" if ":" in shown else f"http://{shown}:{port}"
    return f"http://{settings.host}:{settings.port}"


async def run(settings: Settings, on_started: Callable[[str], Awaitable[None]] | None = None) -> None:
    """Serve until interrupted; `on_started(base_url)` runs once the socket listens."""
    logs.configure(settings.log_level, settings.log_format)
    server = uvicorn.Server(uvicorn_config(settings))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise SystemExit(1)  # uvicorn logged why (port taken, app failed to start)
        await asyncio.sleep(0.05)
    base = bound_address(server, settings)
    log.info("listening", extra={"url": base})
    print(f"\n  Dashboard:  {base}/\n  API docs:   {base}/docs\n  Live:       {base.replace('http', 'ws', 1)}/ws/live\n", flush=True)
    extra = asyncio.create_task(on_started(base)) if on_started else None
    try:
        await serving
    finally:
        if extra is not None:
            extra.cancel()
            await asyncio.gather(extra, return_exceptions=True)
