"""The guard under the app (app/guard.py), against the real server: deadlines, caps, answers, quiet logs."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from pulsewire.app.admission import Admission
from pulsewire.app.guard import TICKET, Guard, head_part, limits_for, plain_response, prove
from pulsewire.metrics import Metrics
from pulsewire.protocol.device import SUBPROTOCOL
from pulsewire.settings import Settings
from tests.support.clients import device, now_ms, send_batch
from tests.support.server import Server

pytestmark = pytest.mark.anyio


# --- the parts, without a server ------------------------------------------------------------------


def test_plain_response_is_a_complete_http_answer() -> None:
    answer = plain_response(503, "too many", retry_after=1)
    head, body = answer.split(b"\r\n\r\n")
    assert head.split(b"\r\n") == [
        b"HTTP/1.1 503 Service Unavailable",
        b"content-type: text/plain; charset=utf-8",
        b"content-length: 8",
        b"retry-after: 1",
        b"connection: close",
    ]
    assert body == b"too many"


def test_only_the_head_of_a_read_counts_against_the_head_limit() -> None:
    head = b"POST /api/releases HTTP/1.1\r\nContent-Length: 200000\r\n\r\n"
    assert head_part(b"", head + b"x" * 200_000) == (len(head), b"xxx")
    assert head_part(b"", head[:10]) == (10, head[7:10])  # no end yet: all of it is head
    assert head_part(b"\r\n\r", b"\nbody") == (1, b"ody")  # the end straddles two reads
    assert head_part(b"", b"GET / HTTP/1.1\r\n")[0] == 16


def test_limits_derive_from_the_open_file_limit_unless_set() -> None:
    derived = limits_for(Settings(), 1024)
    assert (derived.max_connections, derived.max_pending_per_address) == (896, 224)
    assert (derived.rate_per_address, derived.burst_per_address) == (1000, 10_000)
    chosen = limits_for(Settings(max_connections=50, max_pending_per_address=7), 1024)
    assert (chosen.max_connections, chosen.max_pending_per_address) == (50, 7)


def test_a_ticket_counts_once_however_often_it_is_proved_or_released() -> None:
    guard = Guard(Admission(limits_for(Settings(), 1024)), 10, Metrics())
    ticket = guard.admit("10.0.0.1")
    assert ticket is not None and guard.admission.pending == {"10.0.0.1": 1}
    prove({"extensions": {TICKET: ticket}})
    prove({"extensions": {TICKET: ticket}})
    prove({})  # a scope without a guard (another server, a test client): nothing to do
    assert guard.admission.pending == {} and guard.admission.open == 1
    ticket.release()
    ticket.release()
    assert guard.admission.open == 0


# --- against the real server ----------------------------------------------------------------------

UPGRADE = (
    "GET /ws/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\n"
)
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a 1 s handshake deadline and small caps: 8 unproven connections per address."""
    server = Server(
        tmp_path_factory.mktemp("guarded"),
        settings={"handshake_timeout_s": "1", "max_pending_per_address": "8"},
    ).start()
    yield server
    server.stop()


def start(tmp_path: Path, **settings: str) -> Server:
    return Server(tmp_path, settings=settings).start()


async def answer_of(
    server: Server, request: bytes, source: str = "127.0.0.1", timeout: float = 5
) -> tuple[bytes, float]:
    """What the server sends on a connection that sent `request` (all of it, up to the close), and how long it took."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port, local_addr=(source, 0))
    started = time.monotonic()
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), timeout), time.monotonic() - started
    finally:
        writer.close()


async def test_an_upgrade_with_a_header_over_8_kib_is_answered_431_and_closed(guarded: Server) -> None:
    request = (UPGRADE + "Authorization: Bearer " + "a" * 9000 + "\r\n\r\n").encode()
    answer, took = await answer_of(guarded, request, timeout=3)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
    assert took < 0.9  # answered at once, not by the handshake deadline
    assert guarded.metric_value("pulsewire_connections_refused_total", 'cause="head_too_large"') >= 1


async def test_a_request_head_over_64_kib_is_answered_431(guarded: Server) -> None:
    headers = "".join(f"X-Filler-{i}: {'b' * 1000}\r\n" for i in range(70))
    answer, _ = await answer_of(guarded, f"GET /healthz HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]


async def test_a_large_body_sent_with_its_head_is_not_counted_as_head(guarded: Server) -> None:
    """A POST whose 200 KB body arrives in the same reads as its head gets the route's answer, not 431."""
    body = b"x" * 200_000
    head = f"POST /api/releases HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    head += f"Authorization: Bearer {guarded.admin_key}\r\n\r\n"
    answer, _ = await answer_of(guarded, head.encode() + body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert b"not a release bundle" in answer


async def test_silent_partial_and_slowloris_connections_are_closed_at_the_deadline(guarded: Server) -> None:
    silent_before = guarded.metric_value("pulsewire_handshake_timeouts_total", 'stage="silent"')
    partial_before = guarded.metric_value("pulsewire_handshake_timeouts_total", 'stage="partial"')
    silent = answer_of(guarded, b"")
    partial = answer_of(guarded, UPGRADE.encode())  # the blank line that ends the head never comes
    (silent_answer, silent_s), (partial_answer, partial_s), slow_s = await asyncio.gather(
        silent, partial, slowloris(guarded)
    )
    assert silent_answer == b"" and 0.9 < silent_s < 3
    assert partial_answer.startswith(b"HTTP/1.1 408 ") and 0.9 < partial_s < 3
    assert 0.9 < slow_s < 3
    assert guarded.metric_value("pulsewire_handshake_timeouts_total", 'stage="silent"') == silent_before + 1
    assert guarded.metric_value("pulsewire_handshake_timeouts_total", 'stage="partial"') == partial_before + 2
    assert not [line for line in guarded.log_lines() if " error " in line]


async def slowloris(server: Server) -> float:
    """Send a request head a byte every 0.1 s, for ever; seconds until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    started = time.monotonic()
    try:
        for byte in (UPGRADE * 10).encode():
            if reader.at_eof() or writer.is_closing():
                break
            writer.write(bytes([byte]))
            try:
                await writer.drain()
                await asyncio.wait_for(reader.read(1024), 0.1)
                if reader.at_eof():
                    break
            except (TimeoutError, ConnectionError):
                pass
        return time.monotonic() - started
    finally:
        writer.close()


async def test_a_device_past_hello_is_not_capped_per_address_but_unproven_connections_are(guarded: Server) -> None:
    tokens = [guarded.register()[1] for _ in range(10)]
    async with contextlib.AsyncExitStack() as stack:
        for token in tokens:  # ten devices past hello from one address: over the cap of 8 unproven
            await stack.enter_async_context(device(guarded, token))
        idle = [await asyncio.open_connection("127.0.0.1", guarded.port) for _ in range(8)]
        try:
            answer, _ = await answer_of(guarded, HEALTHZ)
            assert answer.startswith(b"HTTP/1.1 503 ") and b"retry-after: 1" in answer.lower(), answer[:200]
            # Another address has its own count.
            answer, _ = await answer_of(guarded, HEALTHZ, source="127.0.0.2")
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        finally:
            for _, writer in idle:
                writer.close()
    assert guarded.metric_value("pulsewire_connections_refused_total", 'cause="address_pending"') >= 1


async def test_the_total_cap_refuses_with_503_and_logs_once(tmp_path: Path) -> None:
    server = start(tmp_path, max_connections="6", max_pending_per_address="100")
    try:
        idle = [await kept_alive(server) for _ in range(6)]
        answers = [(await answer_of(server, HEALTHZ))[0] for _ in range(5)]
        assert all(a.startswith(b"HTTP/1.1 503 ") for a in answers), answers
        for _, writer in idle:
            writer.close()
        await asyncio.sleep(0.3)
        assert server.metric_value("pulsewire_connections_refused_total", 'cause="connections"') == 5
        assert server.metric_value("pulsewire_connection_limit") == 6
        refused = [line for line in server.log_lines() if "connection refused" in line]
        assert len(refused) == 1 and " warning " in refused[0], refused  # once per cause per interval
    finally:
        server.stop()


async def kept_alive(server: Server) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection that made one request and stays open (keep-alive): not waiting for a head."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200 ")
    return reader, writer


async def test_when_full_a_new_connection_takes_the_place_of_the_oldest_one_without_a_head(tmp_path: Path) -> None:
    server = start(tmp_path, max_connections="4", max_pending_per_address="100")
    try:
        busy = [await kept_alive(server) for _ in range(2)]
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        answer, _ = await answer_of(server, HEALTHZ)
        assert answer.startswith(b"HTTP/1.1 503 ")  # the silent ones are too young to give way
        await asyncio.sleep(1.2)
        answer, _ = await answer_of(server, HEALTHZ)
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        assert await asyncio.wait_for(silent[0][0].read(), 2) == b""  # the oldest silent one was closed
        assert not silent[1][0].at_eof() and not busy[0][0].at_eof()
        assert server.metric_value("pulsewire_connections_refused_total", 'cause="evicted"') == 1
        for _, writer in busy + silent:
            writer.close()
    finally:
        server.stop()


async def test_new_connections_per_address_are_rate_limited(tmp_path: Path) -> None:
    server = start(tmp_path, new_connections_per_s_per_address="0.5", new_connections_burst_per_address="3")
    try:
        # From an address of its own: the runner's polls from 127.0.0.1 took tokens already.
        answers = [(await answer_of(server, HEALTHZ, source="127.0.0.3"))[0][:12] for _ in range(5)]
        assert answers[:3] == [b"HTTP/1.1 200"] * 3 and answers[3:] == [b"HTTP/1.1 503"] * 2, answers
        assert server.metric_value("pulsewire_connections_refused_total", 'cause="address_rate"') == 2
    finally:
        server.stop()


async def test_the_connection_cap_follows_the_open_file_limit(tmp_path: Path) -> None:
    server = Server(tmp_path, command_prefix=["prlimit", "--nofile=1024:1024", "--"]).start()
    try:
        assert server.metric_value("pulsewire_connection_limit") == 896  # 1,024 less a reserve of 128
        started = [line for line in server.log_lines() if "connection limits" in line]
        assert started and "open_files=1024" in started[0] and "max_pending_per_address=224" in started[0]
    finally:
        server.stop()


async def test_a_refused_handshake_and_a_text_frame_not_utf8_log_no_error(guarded: Server) -> None:
    """A client's mistakes: counted, logged as warnings at most once a minute, never at ERROR with a traceback."""
    _, token = guarded.register()
    for _ in range(3):
        with pytest.raises(InvalidStatus) as info:
            async with websockets.connect(guarded.ws_base + "/ws/device", subprotocols=[SUBPROTOCOL]):  # type: ignore[list-item]
                pass
        assert info.value.response.status_code == 401
    before = guarded.metric_value("pulsewire_invalid_text_closes_total")
    for _ in range(3):
        async with device(guarded, token) as ws:
            assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
            await ws.send(b"\xff\xfe{}", text=True)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1007
    lines = guarded.log_lines()
    assert not [line for line in lines if " error " in line or "Traceback" in line], "\n".join(lines[-20:])
    assert len([line for line in lines if "text frame is not UTF-8" in line]) == 1
    assert len([line for line in lines if "device handshake refused" in line]) == 1
    assert guarded.metric_value("pulsewire_invalid_text_closes_total") == before + 3


async def test_requests_that_do_not_parse_get_400_and_one_log_line(guarded: Server) -> None:
    for _ in range(3):
        answer, _ = await answer_of(guarded, b"NOT HTTP AT ALL\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
    assert guarded.metric_value("pulsewire_connections_refused_total", 'cause="bad_request"') == 3
    assert len([line for line in guarded.log_lines() if "Invalid HTTP request" in line or "bad_request" in line]) == 1
