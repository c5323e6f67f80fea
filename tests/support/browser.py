"""Browser-test utilities: Debian's Chromium under Playwright, a page that records its console
errors, a synchronous device client, and a TCP proxy that can cut the page's connections."""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.support.chromium import CHROMIUM, LAUNCH_ARGS
from tests.support.clients import SUBPROTOCOL, now_ms
from tests.support.env import IN_CI, TEST_OUTPUT
from tests.support.server import Server

SCREENSHOTS = TEST_OUTPUT / "screenshots"


def require_chromium() -> None:
    """Skip without Chromium on a workstation; fail in CI, where tests/run installs it."""
    if CHROMIUM.exists():
        return
    message = f"{CHROMIUM} is missing (apt-get install -y chromium)"
    if IN_CI:
        pytest.fail(message + "; CI runs every test: tests/run installs it")
    pytest.skip(message)


@dataclass
class ConsoleLog:
    """Console errors and uncaught exceptions of a page; some may be expected (a cut socket)."""

    errors: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


# open_page(url, **context_options) -> (page, its console log): the browser tests' fixture.
OpenPage = Callable[..., tuple[Any, ConsoleLog]]


def watch_console(page: Any) -> ConsoleLog:
    log = ConsoleLog()

    def on_console(m: Any) -> None:
        if m.type != "error":
            return
        # "Failed to load resource" does not say which: the address is in the message's location.
        url = (m.location or {}).get("url", "")
        log.errors.append(f"console {m.type}: {m.text}" + (f" ({url})" if url else ""))

    page.on("console", on_console)
    page.on("pageerror", lambda exc: log.errors.append(f"uncaught: {exc}"))
    return log


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


class Device:
    """A device on the real device channel, synchronous: hello, then batches that wait for the ack."""

    def __init__(self, server: Server, token: str) -> None:
        self.stack = contextlib.ExitStack()
        self.ws: ClientConnection = self.stack.enter_context(
            connect(
                server.ws_base + "/ws/device",
                subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
                additional_headers={"Authorization": f"Bearer {token}"},
                open_timeout=10,
            )
        )
        self.seq = 0
        self.ws.send(orjson.dumps({"type": "hello", "fw": "browser-test-1.0", "uptime": 1}).decode())
        welcome = self._recv()
        assert welcome["type"] == "welcome", welcome

    def _recv(self) -> dict[str, Any]:
        return orjson.loads(self.ws.recv(timeout=10))  # type: ignore[no-any-return]

    def send(self, readings: list[dict[str, Any]]) -> None:
        """One batch per at most 1,000 readings, each acked before the next."""
        for i in range(0, len(readings), 1000):
            self.seq += 1
            self.ws.send(orjson.dumps({"type": "telemetry", "seq": self.seq, "data": readings[i : i + 1000]}).decode())
            answer = self._recv()
            assert answer == {"type": "ack", "seq": self.seq}, answer

    def answer_command(self, ok: bool = True) -> dict[str, Any]:
        """Wait for a command from the server, answer it, and return it."""
        command = self._recv()
        assert command["type"] == "command", command
        self.ws.send(orjson.dumps({"type": "result", "id": command["id"], "ok": ok}).decode())
        return command

    def reading(self, **values: float | bool) -> None:
        self.send([{"ts": now_ms(), "values": values}])

    def close(self) -> None:
        self.stack.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to the server. `cut()` drops every open connection, as a lost Wi-Fi
    or a restarted router would; while `hold()` is on, new connections are refused."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.held = threading.Event()
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.held.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.accepted += 1
                self.open |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        self._drop(src, dst)

    def _drop(self, *socks: socket.socket) -> None:
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
            with self.lock:
                self.open.discard(s)

    def hold(self) -> None:
        self.held.set()

    def release(self) -> None:
        self.held.clear()

    def cut(self) -> None:
        with self.lock:
            victims = list(self.open)
        self._drop(*victims)

    def close(self) -> None:
        self.listener.close()
        self.cut()


@contextlib.contextmanager
def proxy_to(server: Server) -> Iterator[TcpProxy]:
    proxy = TcpProxy(server.port)
    try:
        yield proxy
    finally:
        proxy.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium under Playwright, headless, closed afterwards."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()
