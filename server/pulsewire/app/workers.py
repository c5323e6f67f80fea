"""`pulsewire serve --workers N`: N server processes on one port, under a supervisor.

The supervisor (the process the command started) binds the listening socket once, brings the
schema up to date and settles the admin key, then starts the workers with multiprocessing's spawn
context: each is a fresh interpreter that rebuilds the settings from their values and serves
exactly what `pulsewire serve` serves alone (app/serve.py), with its own writer, on an inherited
copy of the socket; the kernel hands each new connection to whichever worker accepts it first.

The supervisor does no serving. It starts a worker again when it dies (at once after a long run,
after 1, 2, 4 ... 30 s while it keeps dying soon after starting), and on SIGTERM or SIGINT stops
them all (SIGTERM, then SIGKILL after STOP_GRACE_S) and exits 0. It prints the start-up banner,
once, as soon as the workers are started: the socket listens already, and a connection made
before a worker is ready waits in its backlog. Worker 1 runs the `--simulate` devices (again when
it is restarted: the devices reconnect). A worker whose supervisor is gone (killed) stops by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from pulsewire import logs
from pulsewire.app import serve as serving
from pulsewire.app.adminkey import resolve_admin_key
from pulsewire.settings import Settings
from pulsewire.storage.engine import migrate, open_engine

log = logging.getLogger("pulsewire.workers")

BACKLOG = 2048  # uvicorn's own default for the sockets it binds
STABLE_AFTER_S = 10.0  # a worker that ran this long before dying is restarted at once
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
STOP_GRACE_S = 10.0  # uvicorn gives connections 5 s, then the writer commits what is queued
STARTUP_FAILURE = 3  # as uvicorn's, for a server that cannot start


# --- the restart policy (no I/O) ------------------------------------------------------------------


def restart_delay(quick_deaths: int) -> float:
    """Seconds to wait before starting a worker that died, after `quick_deaths` deaths in a row each
    within STABLE_AFTER_S of its start (0: it ran long, so start it again at once)."""
    if quick_deaths <= 0:
        return 0.0
    return min(MAX_BACKOFF_S, FIRST_BACKOFF_S * 2 ** (quick_deaths - 1))


@dataclass
class Slot:
    """One worker's place: its process now, and how its recent runs went."""

    number: int
    process: BaseProcess | None = None
    started_at: float = 0.0
    quick_deaths: int = 0
    due: float | None = None  # when to start it again; None while it runs

    def died(self, now: float) -> float:
        """Record the death of its process at `now`; the seconds until it is started again."""
        self.quick_deaths = self.quick_deaths + 1 if now - self.started_at < STABLE_AFTER_S else 0
        self.process = None
        delay = restart_delay(self.quick_deaths)
        self.due = now + delay
        return delay


# --- the worker -----------------------------------------------------------------------------------


def worker_main(values: dict[str, Any], sock: socket.socket, number: int, simulate: int) -> None:
    """A worker process's entry point (module level: spawn finds it by name)."""
    settings = Settings(**values)
    on_started = serving.with_simulated(settings, simulate) if simulate else None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        serving.run_on_fast_loop(_serve_worker(settings, sock, number, on_started))


async def _serve_worker(
    settings: Settings, sock: socket.socket, number: int, on_started: serving.OnStarted | None
) -> None:
    server = serving.build_server(settings)
    log.info("worker started", extra={"worker": number, "pid": os.getpid()})
    _stop_with_supervisor(server)
    await serving.serve(server, settings, on_started, sockets=[sock], show_banner=False)


def _stop_with_supervisor(server: uvicorn.Server) -> None:
    """Stop gracefully when the supervisor dies (kill -9): its end of a pipe closes, so this end reads."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.sentinel is None:
        return
    loop = asyncio.get_running_loop()

    def gone() -> None:
        loop.remove_reader(parent.sentinel)
        log.warning("the supervisor is gone; stopping", extra={"pid": os.getpid()})
        server.should_exit = True

    loop.add_reader(parent.sentinel, gone)


# --- the supervisor -------------------------------------------------------------------------------


def serve_workers(settings: Settings, simulate: int = 0) -> int:
    """Run settings.workers workers on one port until SIGTERM or SIGINT; the exit status."""
    logs.configure(settings.log_level, settings.log_format)
    try:
        _prepare_database(settings)
    except Exception:  # whatever stops the database from opening stops every worker alike
        log.exception("cannot open the database; no worker started")
        return STARTUP_FAILURE
    resolve_admin_key(settings)  # generated (and printed) once here, not by each worker at once
    try:
        sock = listening_socket(settings.host, settings.port)
    except OSError as exc:  # taken since the command checked it
        log.error("cannot listen", extra={"host": settings.host, "port": settings.port, "error": exc.strerror})
        return STARTUP_FAILURE
    with sock:
        return Supervisor(settings, sock, simulate).run()


def _prepare_database(settings: Settings) -> None:
    """Bring the schema up to date once, before the workers, which would otherwise all migrate at once."""
    engine = open_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        migrate(engine)
    finally:
        engine.dispose()


def listening_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port), set up as uvicorn sets up its own."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:  # IPv6 only, as asyncio's create_server makes `::`
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


class Supervisor:
    """Starts the workers, starts again those that die, stops them all on a signal."""

    def __init__(self, settings: Settings, sock: socket.socket, simulate: int) -> None:
        self.settings = settings
        self.values = settings.model_dump()
        self.sock = sock
        self.simulate = simulate
        self.slots = [Slot(number) for number in range(1, settings.workers + 1)]
        self.context = multiprocessing.get_context("spawn")
        self.stopping = False

    def run(self) -> int:
        wake_read, wake_write = socket.socketpair()
        wake_write.setblocking(False)
        previous_wakeup = signal.set_wakeup_fd(wake_write.fileno())  # a signal wakes `wait` at once
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            log.info("supervising workers", extra={"workers": len(self.slots), "pid": os.getpid()})
            for slot in self.slots:
                self._start(slot)
            serving.print_banner(serving.socket_address(self.sock, self.settings), self.settings)
            while not self.stopping:
                self._wait(wake_read)
                with contextlib.suppress(BlockingIOError):
                    wake_read.recv(512, socket.MSG_DONTWAIT)
                self._reap()
                self._start_due()
            self._stop_all()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            wake_read.close()
            wake_write.close()
        return 0

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, slot: Slot) -> None:
        if self.stopping:
            return
        simulate = self.simulate if slot.number == 1 else 0
        process = self.context.Process(
            target=worker_main,
            args=(self.values, self.sock, slot.number, simulate),
            name=f"pulsewire-worker-{slot.number}",
        )
        process.start()
        slot.process, slot.started_at, slot.due = process, time.monotonic(), None

    def _wait(self, wake: socket.socket) -> None:
        """Until a worker dies, a signal arrives or a restart is due."""
        dues = [slot.due for slot in self.slots if slot.due is not None]
        timeout = max(0.0, min(dues) - time.monotonic()) if dues else None
        sentinels = [slot.process.sentinel for slot in self.slots if slot.process is not None]
        wait([*sentinels, wake], timeout)

    def _reap(self) -> None:
        for slot in self.slots:
            process = slot.process
            if process is None or process.is_alive():
                continue
            process.join()
            code = process.exitcode
            if self.stopping:
                break
            delay = slot.died(time.monotonic())
            fields = {"worker": slot.number, "pid": process.pid, "exit_code": code, **_signal_of(code)}
            log.warning("worker exited; starting it again", extra={**fields, "restart_in_s": delay})
            process.close()

    def _start_due(self) -> None:
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is None and slot.due is not None and slot.due <= now:
                self._start(slot)

    def _stop_all(self) -> None:
        running = [slot.process for slot in self.slots if slot.process is not None and slot.process.is_alive()]
        log.info("stopping workers", extra={"workers": len(running)})
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("worker did not stop in time; killed", extra={"pid": process.pid})
                process.kill()
                process.join()
        log.info("workers stopped")


def _signal_of(code: int | None) -> dict[str, str]:
    """{"signal": name} for the exit code of a process a signal ended (negative), else {}."""
    if code is None or code >= 0:
        return {}
    with contextlib.suppress(ValueError):
        return {"signal": signal.Signals(-code).name}
    return {}
