"""Connection hygiene under the app, in uvicorn's HTTP and WebSocket protocol classes.

Everything here runs before a request reaches the app, so it is cheap and cannot be skipped:

- admission (`pulsewire.app.admission`): a connection over a cap is answered 503 at once;
- the handshake deadline: a connection whose request head is not complete `handshake_timeout_s`
  after it was accepted (or after its next request began) is closed: silent connections, partial
  requests and headers dribbled a byte at a time alike;
- request heads: larger than MAX_HEAD_BYTES, or an upgrade whose lines the WebSocket layer
  refuses (a header line over 8 KiB), get their HTTP answer (431, 414 or 400) and a close
  instead of hanging;
- a client's mistakes are counted in metrics and logged once per cause per interval
  (`pulsewire.logs.Throttle`), never at ERROR: a refused device handshake and a text frame that is
  not UTF-8 among them.

The app learns that a device connection has said `hello` through `prove(scope)`; from then on it
no longer counts against its address.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn._types import ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import InvalidMessage

from pulsewire.app.admission import FULL, Admission, Limits, connection_cap, pending_cap
from pulsewire.logs import Throttle
from pulsewire.metrics import Metrics
from pulsewire.protocol.device import CLOSE_INVALID_PAYLOAD
from pulsewire.settings import Settings

log = logging.getLogger("pulsewire.guard")

TICKET = "pulsewire.ticket"  # the key of a connection's Ticket in its ASGI scope's "extensions"
MAX_HEAD_BYTES = 64 * 1024  # a request head (request line and headers) larger than this gets 431
REFUSAL_LINGER_S = 1.0  # a refused connection stays open this long for its answer to be read
MAX_LINGERING = 32  # refused connections lingering at once; past it they are closed at once

# Refusal causes besides admission's (metric label values, docs/protocol.md).
HEAD_TOO_LARGE = "head_too_large"
EVICTED = "evicted"
EVICT_AFTER_S = 1.0  # how long a connection may wait for its head before a newcomer may take its place
BAD_REQUEST = "bad_request"
BAD_UPGRADE = "bad_upgrade"


def raise_open_file_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit", extra={"soft": soft, "hard": hard, "error": str(exc)})
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def limits_for(settings: Settings, open_files: int) -> Limits:
    """The admission limits of `settings`, the derived ones (0) worked out from the open-file limit."""
    total = settings.max_connections or connection_cap(open_files)
    return Limits(
        max_connections=total,
        max_pending_per_address=settings.max_pending_per_address or pending_cap(total),
        rate_per_address=settings.new_connections_per_s_per_address,
        burst_per_address=settings.new_connections_burst_per_address,
    )


class Ticket:
    """One admitted connection's place in the counts, released exactly once."""

    __slots__ = ("guard", "host", "proven", "released")

    def __init__(self, guard: Guard, host: str) -> None:
        self.guard = guard
        self.host = host
        self.proven = False
        self.released = False

    def prove(self) -> None:
        if not self.proven and not self.released:
            self.proven = True
            self.guard.admission.prove(self.host)

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.guard.admission.release(self.host, self.proven)


def prove(scope: Any) -> None:
    """Tell the guard that this connection is a device past `hello` (no-op without a guard)."""
    ticket = scope.get("extensions", {}).get(TICKET)
    if ticket is not None:
        ticket.prove()


class Guard:
    """The admission counts, the handshake deadline and the metrics and log of what they refuse."""

    def __init__(
        self,
        admission: Admission,
        handshake_timeout_s: float,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.admission = admission
        self.handshake_timeout_s = handshake_timeout_s
        self.metrics = metrics
        self.clock = clock
        self.throttle = Throttle()
        self.lingering = 0
        # Connections still waiting for their first request head, oldest first, with when they came.
        self.waiting: dict[GuardedHttpProtocol, float] = {}
        metrics.open_connections.set_function(lambda: admission.open)
        metrics.connection_limit.set(admission.limits.max_connections)

    def admit(self, host: str) -> Ticket | None:
        now = self.clock()
        cause = self.admission.admit(host, now)
        if cause == FULL and self._evict_oldest_waiting(now):
            cause = self.admission.admit(host, now)
        if cause is None:
            return Ticket(self, host)
        self.refused(cause, host)
        return None

    def _evict_oldest_waiting(self, now: float) -> bool:
        """When full, a new connection takes the place of the oldest one that has been waiting for
        its request head for EVICT_AFTER_S: a client sends its head at once, so that one is idle
        or dribbling (the flood a full server most likely faces), and new devices still get in."""
        for oldest, since in self.waiting.items():
            if now - since < EVICT_AFTER_S:
                return False
            oldest.evict()
            self.refused(EVICTED, oldest.host)
            return True
        return False

    def refused(self, cause: str, host: str) -> None:
        self.metrics.connections_refused.labels(cause=cause).inc()
        self.throttle.log(log, logging.WARNING, f"refused:{cause}", "connection refused", {"client": host})

    def handshake_timed_out(self, stage: str, host: str) -> None:
        self.metrics.handshake_timeouts.labels(stage=stage).inc()
        self.throttle.log(
            log,
            logging.INFO,
            f"handshake:{stage}",
            "request head not complete in time; closed",
            {
                "client": host,
                "stage": stage,
                "timeout_s": self.handshake_timeout_s,
            },
        )

    def invalid_text(self, host: str) -> None:
        self.metrics.invalid_text_closes.inc()
        self.throttle.log(
            log, logging.WARNING, "invalid_text", "text frame is not UTF-8; closed with 1007", {"client": host}
        )


def http_protocol(guard: Guard) -> type[asyncio.Protocol]:
    """The HTTP protocol class for uvicorn's `http=`, bound to `guard`."""
    return type("BoundGuardedHttpProtocol", (GuardedHttpProtocol,), {"guard": guard})


def plain_response(status: int, text: str, retry_after: int | None = None) -> bytes:
    body = text.encode()
    head = [STATUS_LINE[status], b"content-type: text/plain; charset=utf-8\r\n"]
    head.append(b"content-length: %d\r\n" % len(body))
    if retry_after is not None:
        head.append(b"retry-after: %d\r\n" % retry_after)
    head.append(b"connection: close\r\n\r\n")
    return b"".join(head) + body


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with admission, a request-head deadline and a head size limit."""

    guard: Guard

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.ticket: Ticket | None = None
        self.host = ""
        self.refusing = False
        self.head_timer: asyncio.TimerHandle | None = None
        self.awaiting_head = True
        self.head_bytes = 0
        self.head_tail = b""  # the last bytes of the head so far: its end may straddle two reads
        self.got_bytes = False

    # --- connection -----------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = get_remote_addr(transport)
        self.host = peer[0] if peer else ""
        self.ticket = self.guard.admit(self.host)
        if self.ticket is None:
            self.transport = transport
            self._refuse_at_once()
            return
        super().connection_made(transport)
        self._arm_head_timer()
        self.guard.waiting[self] = self.guard.clock()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.refusing:
            self.guard.lingering -= 1
            if self.head_timer is not None:
                self.head_timer.cancel()
            return
        self._disarm_head_timer()
        self.guard.waiting.pop(self, None)
        if self.ticket is not None:
            self.ticket.release()
        super().connection_lost(exc)

    def eof_received(self) -> None:
        if self.refusing:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.refusing or self.transport.is_closing():
            return
        self.got_bytes = True
        if self.awaiting_head:
            counted, self.head_tail = head_part(self.head_tail, data)
            self.head_bytes += counted
            if self.head_bytes > MAX_HEAD_BYTES:
                self._answer_and_close(431, f"request head larger than {MAX_HEAD_BYTES} bytes", HEAD_TOO_LARGE)
                return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            # uvicorn logs each of these as a warning of its own; here they are counted and throttled.
            self._answer_and_close(400, "Invalid HTTP request received.", BAD_REQUEST)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _refuse_at_once(self) -> None:
        """Answer 503 before reading anything; linger a moment so the answer is read, not reset."""
        self.refusing = True
        self.guard.lingering += 1
        transport = self.transport
        transport.write(plain_response(503, "too many connections; try again later", retry_after=1))
        if self.guard.lingering > MAX_LINGERING or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.head_timer = self.loop.call_later(REFUSAL_LINGER_S, transport.close)

    # --- the request head -----------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.guard.handshake_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        self.guard.waiting.pop(self, None)
        if self.transport.is_closing():
            return
        stage = "partial" if self.got_bytes else "silent"
        self.guard.handshake_timed_out(stage, self.host)
        if self.got_bytes:
            self.transport.write(plain_response(408, "request head not complete in time"))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # the next request on a kept-alive connection has the same deadline

    def evict(self) -> None:
        """Close this connection, still waiting for its first head, to make room (see Guard)."""
        self.guard.waiting.pop(self, None)
        self._disarm_head_timer()
        if self.ticket is not None:
            self.ticket.release()  # its place is taken now, not when the close is done
        if self.got_bytes:
            self.transport.write(plain_response(408, "request head not complete in time"))
        self.transport.close()

    def on_headers_complete(self) -> None:
        self.guard.waiting.pop(self, None)
        self._disarm_head_timer()
        self.awaiting_head = False
        self.head_bytes = 0
        self.head_tail = b""
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self.awaiting_head = True

    def _answer_and_close(self, status: int, text: str, cause: str) -> None:
        self.guard.waiting.pop(self, None)
        self._disarm_head_timer()
        self.guard.refused(cause, self.host)
        self.transport.write(plain_response(status, text))
        self.transport.close()

    # --- the upgrade ----------------------------------------------------------------------------

    def handle_websocket_upgrade(self) -> None:
        """uvicorn's upgrade, with the ticket handed to the WebSocket protocol, and an answer for a
        request the WebSocket layer refuses to parse (it would otherwise never be answered)."""
        self._disarm_head_timer()
        self.connections.discard(self)
        output = [self.scope["method"].encode(), b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        ticket, self.ticket = self.ticket, None
        assert ticket is not None
        protocol = GuardedWebSocketProtocol(self.config, self.server_state, self.app_state, ticket, self.guard)
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(output))
        self.transport.set_protocol(protocol)
        if protocol.conn.handshake_exc is not None and not protocol.handshake_initiated:
            protocol.refuse_unparsed()


class GuardedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol that carries its ticket, answers what it cannot parse,
    and treats a refused handshake and a text frame that is not UTF-8 as the client's doing."""

    def __init__(
        self, config: Config, server_state: ServerState, app_state: dict[str, Any], ticket: Ticket, guard: Guard
    ) -> None:
        super().__init__(config, server_state, app_state)
        self.ticket = ticket
        self.guard = guard

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:  # the app's task is created, not started: it sees the ticket
            scope["extensions"][TICKET] = self.ticket

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.ticket.release()

    def refuse_unparsed(self) -> None:
        """The WebSocket layer could not parse the upgrade request: send its answer (414, 431) or 400."""
        exc = self.conn.handshake_exc
        answer = b"".join(self.conn.data_to_send())
        cause = BAD_UPGRADE if isinstance(exc, InvalidMessage) else HEAD_TOO_LARGE
        self.guard.refused(cause, self.ticket.host)
        self.transport.write(answer or plain_response(400, "invalid WebSocket upgrade request"))
        self.close_sent = True
        self.transport.close()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and self.close_sent:
            # The denial response is the whole answer to the handshake: without this, uvicorn
            # logs "ASGI callable returned without completing handshake." at ERROR for each one.
            self.handshake_complete = True

    def send_receive_event_to_app(self) -> None:
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return  # past `websocket.close`: reads go on until the peer's close reply
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self.guard.invalid_text(self.ticket.host)
                self.conn.send_close(CLOSE_INVALID_PAYLOAD, "frame is not valid UTF-8")
                self.handle_parser_exception()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()


def head_part(tail: bytes, data: bytes) -> tuple[int, bytes]:
    """How many bytes of `data`, read while a request head is awaited, belong to the head, and the
    new `tail` (the head's last bytes so far, since its end may straddle two reads). A body sent
    with its head arrives in the same read; only the head counts against MAX_HEAD_BYTES."""
    seen = tail + data
    end = seen.find(b"\r\n\r\n")
    if end < 0:
        return len(data), seen[-3:]
    return max(0, end + 4 - len(tail)), seen[-3:]
