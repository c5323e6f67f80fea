"""Real notification receivers on 127.0.0.1: a webhook receiver (http.server on a thread) and an
SMTP server (aiosmtpd, in its own thread), each recording what reached it.

The webhook receiver answers by path, so one receiver plays every kind the tests need:

| path | answer |
|---|---|
| `/ok` | 200 when the signature verifies with the receiver's secret, else 401 |
| `/fail` | 500 with a short text |
| `/slow` | nothing for 30 s |
| `/hang-once` | nothing for 30 s the first time a key comes, then as `/ok` |
| `/trickle` | an answer head that comes one byte every 0.1 s |
| `/trickle-body` | 500 and a body that comes one byte every 0.1 s |
| `/loop` | 302 to itself |
| `/huge/200`, `/huge/500` | that status and a 100 MB body, written until the client goes away |
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from pulsewire.alerts.webhook import SIGNATURE_HEADER, verify
from tests.support.server import free_port

HUGE_BYTES = 100 * 1024 * 1024


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    at: float = field(default_factory=time.monotonic)


@dataclass
class WebhookReceiver:
    secret: str
    port: int = 0
    received: list[Received] = field(default_factory=list)
    huge_bytes_written: int = 0  # of the /huge body, before the client went away
    hung: set[str] = field(default_factory=set)  # the keys /hang-once has hung on
    scheme: str = "http"

    def url(self, path: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


class _ReceiverServer(ThreadingHTTPServer):
    daemon_threads = True  # a /slow handler must not hold up the test's end

    def __init__(self, receiver: WebhookReceiver) -> None:
        super().__init__(("127.0.0.1", receiver.port), _Handler)
        self.receiver = receiver


class _Handler(BaseHTTPRequestHandler):
    """Answers by path (the table above) and records every request in its server's receiver."""

    protocol_version = "HTTP/1.1"
    server: _ReceiverServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet: pytest shows failures
        pass

    def do_POST(self) -> None:
        receiver = self.server.receiver
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        verified = verify(receiver.secret, body, self.headers.get(SIGNATURE_HEADER))
        receiver.received.append(Received(self.path, dict(self.headers.items()), body, verified))
        key = self.headers.get("Idempotency-Key", "")
        if self.path == "/hang-once" and key not in receiver.hung:
            receiver.hung.add(key)
            time.sleep(30)
        elif self.path in ("/ok", "/hang-once"):
            self._answer(200 if verified else 401, b"thanks" if verified else b"bad signature")
        elif self.path == "/fail":
            self._answer(500, b"database on fire\r\nsecond line")
        elif self.path == "/slow":
            time.sleep(30)
        elif self.path == "/trickle":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Padding: " + b"p" * 1000:
                if not self._write(bytes([byte])):
                    return
                time.sleep(0.1)
        elif self.path == "/trickle-body":
            self._head(500, 1000)
            for _ in range(1000):
                if not self._write(b"x"):
                    return
                time.sleep(0.1)
        elif self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path in ("/huge/200", "/huge/500"):
            self._head(int(self.path[-3:]), HUGE_BYTES)
            chunk = b"y" * 65536
            while receiver.huge_bytes_written < HUGE_BYTES and self._write(chunk):
                receiver.huge_bytes_written += len(chunk)
        else:
            self._answer(404, b"no such path")

    def _head(self, status: int, length: int) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _answer(self, status: int, body: bytes) -> None:
        self._head(status, len(body))
        self._write(body)

    def _write(self, data: bytes) -> bool:
        try:
            self.wfile.write(data)
            self.wfile.flush()
            return True
        except OSError:  # the client went away
            return False


@contextmanager
def webhook_receiver(secret: str, tls: ssl.SSLContext | None = None, port: int = 0) -> Iterator[WebhookReceiver]:
    """The receiver, over https:// when `tls` (a server context) is given; on `port` if given (to
    bring a receiver back where one was), else on a free one."""
    receiver = WebhookReceiver(secret, port=port, scheme="https" if tls else "http")
    server = _ReceiverServer(receiver)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


# --- SMTP -----------------------------------------------------------------------------------------


@dataclass
class Mail:
    sender: str
    recipients: list[str]
    content: bytes
    over_tls: bool
    login: str | None


@dataclass
class SmtpServer:
    port: int
    mail: list[Mail] = field(default_factory=list)


@contextmanager
def smtp_server(
    *,
    starttls: ssl.SSLContext | None = None,
    implicit_tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> Iterator[SmtpServer]:
    """An SMTP server that keeps every message it accepts.

    `starttls`: offers STARTTLS with this context (and requires it before MAIL); `implicit_tls`:
    TLS from the first byte (SMTPS); neither: plain text, no STARTTLS offered. `login`: requires
    AUTH with this user and password (offered only over TLS).
    """
    box = SmtpServer(free_port())

    class Sink:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            user = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
            # session.ssl: after STARTTLS; the transport's ssl_object: implicit TLS, which aiosmtpd leaves to asyncio.
            tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            box.mail.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, tls, user))
            return "250 Message accepted for delivery"

    def authenticate(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = (
            login is not None
            and isinstance(auth_data, LoginPassword)
            and (auth_data.login.decode(), auth_data.password.decode()) == login
        )
        return AuthResult(
            success=ok, handled=False, auth_data=auth_data
        )  # handled=False: aiosmtpd answers a failure with 535

    options: dict[str, Any] = {}
    if starttls is not None:
        options.update(tls_context=starttls, require_starttls=True)
    if login is not None:
        # Over implicit TLS aiosmtpd does not see the TLS (it wraps only STARTTLS itself), so AUTH
        # is offered there without its own TLS requirement: the connection is TLS from the start.
        options.update(authenticator=authenticate, auth_required=True, auth_require_tls=implicit_tls is None)
    controller = Controller(
        Sink(), hostname="127.0.0.1", port=box.port, ssl_context=implicit_tls, ready_timeout=10, **options
    )
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


def server_tls(cert: Any, key: Any) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
