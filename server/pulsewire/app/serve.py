"""Running the app under uvicorn with the WebSocket settings the device channel relies on."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import sys
from asyncio.trsock import TransportSocket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

import uvicorn

from pulsewire import logs
from pulsewire.app.admission import Admission, never_exempt
from pulsewire.app.banner import banner
from pulsewire.app.factory import create_app
from pulsewire.app.guard import Guard, http_protocol, limits_for, raise_open_file_limit
from pulsewire.metrics import Metrics
from pulsewire.netaddr import lan_address
from pulsewire.protocol.device import MAX_FRAME_BYTES
from pulsewire.proxies import is_trusted
from pulsewire.settings import Settings
from pulsewire_devkit import missing as devkit_missing

log = logging.getLogger("pulsewire")

GIL_SWITCH_INTERVAL_S = 0.0005
GC_THRESHOLDS = (10_000, 50, 100)


def uvicorn_config(settings: Settings, open_files: int, exempt: Callable[[str], bool] = never_exempt) -> uvicorn.Config:
    """uvicorn's configuration: the app, and under it the guard (app/guard.py) with caps for `open_files`.

    `exempt(host)`: peers not capped per address (trusted reverse proxies carry every client).
    """
    metrics = Metrics()
    guard = Guard(Admission(limits_for(settings, open_files), exempt), settings.handshake_timeout_s, metrics)
    return uvicorn.Config(
        create_app(settings, metrics),
        host=settings.host,
        port=settings.port,
        http=http_protocol(guard),
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=settings.ping_interval_s,
        ws_ping_timeout=settings.ping_timeout_s,
        ws_per_message_deflate=False,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
        ssl_certfile=settings.tls_cert,
        ssl_keyfile=settings.tls_key,
        # Forwarded headers only from the trusted proxies; with none, not at all (uvicorn's own
        # default believes any local process).
        proxy_headers=bool(settings.trusted_networks),
        forwarded_allow_ips=[str(network) for network in settings.trusted_networks],
        root_path=settings.root_path or "",
    )


def bound_address(server: uvicorn.Server, settings: Settings) -> str:
    for srv in server.servers:
        for sock in srv.sockets:
            return socket_address(sock, settings)
    scheme = "https" if settings.tls_cert else "http"
    return f"{scheme}://{settings.host}:{settings.port}"


def socket_address(sock: socket.socket | TransportSocket, settings: Settings) -> str:
    """The base URL a listening socket is reached at from this machine."""
    scheme = "https" if settings.tls_cert else "http"
    host, port = sock.getsockname()[:2]
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"{scheme}://[{shown}]:{port}" if ":" in shown else f"{scheme}://{shown}:{port}"


def print_banner(base: str, settings: Settings) -> None:
    lan = lan_address() if settings.host in ("0.0.0.0", "::") else None
    print(banner(base, settings, devkit=not devkit_missing(), lan=lan), flush=True)


def check_port_free(host: str, port: int) -> str | None:
    """Why (host, port) cannot be listened on, or None. Checked up front for a plain message."""
    if port == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return f"cannot listen on {host}:{port}: {exc.strerror}"
    return None


OnStarted = Callable[[str], Coroutine[Any, Any, None]]


def run_forever(settings: Settings, on_started: OnStarted | None = None) -> None:
    """Serve on the fastest event loop there is (run_on_fast_loop) until interrupted."""
    run_on_fast_loop(run(settings, on_started))


def run_on_fast_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop where it is installed (it is with uvicorn[standard]), else asyncio's loop."""
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main)


async def run(settings: Settings, on_started: OnStarted | None = None) -> None:
    """Serve until interrupted; `on_started(base_url)` runs once the socket listens.

    A server that cannot start (its database, its port) ends with uvicorn's exit status 3, once
    uvicorn has logged why.
    """
    await serve(build_server(settings), settings, on_started)


def build_server(settings: Settings) -> uvicorn.Server:
    """The uvicorn server of `settings`, with this process set up to run it (logs, GIL, open files)."""
    logs.configure(settings.log_level, settings.log_format)
    # Threads (the PostgreSQL writer, HTTP reads) need the GIL for a moment between their SQL
    # statements while the event loop is busy decoding frames. With the default 5 ms switch
    # interval every such moment costs up to 5 ms, which added tens of ms to each commit.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    open_files = raise_open_file_limit()
    config = uvicorn_config(settings, open_files, exempt=partial(is_trusted, networks=settings.trusted_networks))
    limits = limits_for(settings, open_files)
    log.info(
        "connection limits",
        extra={
            "open_files": open_files,
            "max_connections": limits.max_connections,
            "max_pending_per_address": limits.max_pending_per_address,
        },
    )
    return uvicorn.Server(config)


async def serve(
    server: uvicorn.Server,
    settings: Settings,
    on_started: OnStarted | None = None,
    sockets: list[socket.socket] | None = None,
    show_banner: bool = True,
) -> None:
    """Serve until `server` is told to exit: on `sockets` when given (a worker's, bound by its
    supervisor), else on a socket of its own for settings.host and settings.port."""
    listening = asyncio.create_task(_once_listening(server, settings, on_started, show_banner))
    try:
        await server.serve(sockets)
    finally:
        listening.cancel()
        await asyncio.gather(listening, return_exceptions=True)


def with_simulated(settings: Settings, count: int) -> OnStarted:
    """What runs once the server listens: `count` simulated devices against it, with its admin key."""

    async def on_started(base: str) -> None:
        from pulsewire.app.adminkey import resolve_admin_key
        from pulsewire.simulator.devices import simulate

        await simulate(base, resolve_admin_key(settings), count)

    return on_started


async def _once_listening(
    server: uvicorn.Server, settings: Settings, on_started: OnStarted | None, show_banner: bool
) -> None:
    while not server.started:
        await asyncio.sleep(0.05)
    # Start-up objects live as long as the process: keep the collector from rescanning them, and
    # collect the young generation less often. Full collections over the start-up heap took up to
    # 70 ms at 5,000 readings/s, all of it added to live latency.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    base = bound_address(server, settings)
    log.info("listening", extra={"url": base})
    if show_banner:
        print_banner(base, settings)
    if on_started is not None:
        try:
            await on_started(base)
        except Exception:  # what runs with the server (simulated devices) must not pass unnoticed
            log.exception("what runs with the server failed; the server goes on")
