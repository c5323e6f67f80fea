"""The device channel end to end, against the real server on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.clients import SUBPROTOCOL, device, dumps, live, live_until, now_ms, recv_json, send_batch
from tests.support.server import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def test_hello_gets_welcome_with_server_clock_and_interval(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token, hello=False) as ws:
        assert ws.subprotocol == SUBPROTOCOL
        before = now_ms()
        await ws.send(dumps({"type": "hello", "fw": "0.3.1", "uptime": 123456}))
        welcome = await recv_json(ws)
        assert welcome["type"] == "welcome"
        assert before - 1000 <= welcome["time"] <= now_ms() + 1000
        assert welcome["interval"] == 1000
        # The hello is written with the next group commit.
        listed = await eventually(lambda: _listed_when(server, dev, lambda d: d["fw"]), 5, "the hello stored")
        assert listed["fw"] == "0.3.1" and listed["online"] is True
        assert listed["last_seen"] >= before
    listed = await eventually(lambda: _listed_when(server, dev, lambda d: not d["online"]), 5, "shown offline")
    assert listed["online"] is False and listed["fw"] == "0.3.1"


def _listed_when(server: Server, device_id: str, ready: Callable[[dict[str, Any]], Any]) -> dict[str, Any] | None:
    """The device as GET /api/devices lists it, once `ready` holds for it."""
    listed = {d["id"]: d for d in server.get("/api/devices").json()}
    return listed[device_id] if ready(listed[device_id]) else None


async def test_ack_means_stored_and_pushed_live(server: Server) -> None:
    dev, token = server.register()
    ts = now_ms()
    data = [{"ts": ts + i, "values": {"temperature": 21.5 + i, "door": i % 2 == 0}} for i in range(5)]
    async with live(server) as dashboard:
        snapshot = await recv_json(dashboard)
        assert snapshot["type"] == "snapshot"
        async with device(server, token) as ws:
            assert await send_batch(ws, 1, data) == {"type": "ack", "seq": 1}
            # At ack time the readings are readable over HTTP ...
            stored = server.telemetry(dev, order="asc")
            assert stored["temperature"] == [{"ts": ts + i, "value": 21.5 + i} for i in range(5)]
            assert stored["door"] == [{"ts": ts + i, "value": i % 2 == 0} for i in range(5)]
            # ... and already on their way to the dashboard, in order.
            pushed = await live_until(dashboard, lambda m: m["type"] == "telemetry" and m["device"] == dev)
            assert pushed["data"] == data
    assert server.metric_value("pulsewire_readings_total") >= 5
    assert server.metric_value("pulsewire_values_total") >= 10
    assert server.metric_value("pulsewire_acks_total") >= 1


async def test_replayed_batch_is_acked_twice_and_stored_once(server: Server) -> None:
    dev, token = server.register()
    data = [{"ts": now_ms() + i, "values": {"t": float(i)}} for i in range(3)]
    async with device(server, token) as ws:
        assert (await send_batch(ws, 1, data))["type"] == "ack"
        assert (await send_batch(ws, 2, data))["type"] == "ack"
    async with device(server, token) as ws:  # a reconnect replaying its buffer
        assert (await send_batch(ws, 1, data + [{"ts": data[-1]["ts"] + 1, "values": {"t": 9.0}}]))["type"] == "ack"
    assert [p["value"] for p in server.telemetry(dev, order="asc")["t"]] == [0.0, 1.0, 2.0, 9.0]


async def test_pipelined_batches_are_acked_in_order(server: Server) -> None:
    dev, token = server.register()
    base = now_ms()
    async with device(server, token) as ws:
        for seq in range(1, 41):
            await ws.send(dumps({"type": "telemetry", "seq": seq, "data": [{"ts": base + seq, "values": {"n": seq}}]}))
        acks = [await recv_json(ws) for _ in range(40)]
    assert [a["seq"] for a in acks] == list(range(1, 41))
    assert len(server.telemetry(dev, limit=100)["n"]) == 40


RECENT = now_ms()  # within raw retention while the tests below run
BAD_BATCHES = [
    ({"type": "telemetry", "data": [{"ts": 1, "values": {"t": 1}}]}, "protocol", "seq: required positive integer"),
    ({"type": "telemetry", "seq": "9", "data": [{"ts": 1, "values": {"t": 1}}]}, "protocol", "seq"),
    (
        {"type": "telemetry", "seq": 100, "data": [{"ts": 1, "values": {"t": "hot"}}]},
        "invalid",
        "values.t: not a finite",
    ),
    ({"type": "telemetry", "seq": 101, "data": [{"ts": 1, "values": {"t": {"a": 1}}}]}, "invalid", "values.t"),
    ({"type": "telemetry", "seq": 102, "data": [{"ts": 1, "values": {"bad name": 1}}]}, "invalid", "bad metric name"),
    ({"type": "telemetry", "seq": 103, "data": [{"ts": 1.5, "values": {"t": 1}}]}, "invalid", "ts: required integer"),
    ({"type": "telemetry", "seq": 104, "data": [{"ts": "now", "values": {"t": 1}}]}, "invalid", "ts: required integer"),
    (
        {"type": "telemetry", "seq": 105, "data": [{"ts": 1, "values": {f"m{i}": i for i in range(65)}}]},
        "limit",
        "65 values",
    ),
    (
        {"type": "telemetry", "seq": 106, "data": [{"ts": i, "values": {"t": 1}} for i in range(1001)]},
        "limit",
        "1001 readings",
    ),
    # Well-formed, but outside what storage keeps: older than raw retention, or a board's clock far ahead.
    (
        {"type": "telemetry", "seq": 107, "data": [{"ts": 10**12, "values": {"t": 1}}]},
        "invalid",
        "data[0].ts: 1000000000000 is older than the 30 days raw readings are kept",
    ),
    (
        {"type": "telemetry", "seq": 108, "data": [{"ts": 2**53 - 1, "values": {"t": 1}}]},
        "invalid",
        "is more than a day ahead of the server's clock",
    ),
    ({"type": "subscribe"}, "unknown_type", "unknown message type 'subscribe'"),
    # Order is checked after content: this batch is good but for its seq.
    ({"type": "telemetry", "seq": 5, "data": [{"ts": RECENT, "values": {"t": 1}}]}, "protocol", "does not increase"),
]


async def test_bad_batches_get_errors_and_lose_nothing(server: Server) -> None:
    dev, token = server.register()
    good = [{"ts": now_ms(), "values": {"t": 20.0}}]
    async with device(server, token) as ws:
        assert (await send_batch(ws, 10, good))["type"] == "ack"
        for message, code, fragment in BAD_BATCHES:
            await ws.send(dumps(message))
            answer = await recv_json(ws)
            assert answer["type"] == "error" and answer["code"] == code, (message, answer)
            assert fragment in answer["detail"], answer
            assert answer["seq"] == (message.get("seq") if isinstance(message.get("seq"), int) else None)
        # NaN and Infinity are not strict JSON, but what devices' json.dumps emits: refused, not closed.
        for literal in ("NaN", "Infinity", "-Infinity"):
            await ws.send('{"type":"telemetry","seq":200,"data":[{"ts":1,"values":{"t":' + literal + "}}]}")
            answer = await recv_json(ws)
            assert answer["code"] == "invalid" and "not a finite number" in answer["detail"]
        # The connection is still good, and what was acked is still stored, unchanged.
        assert (await send_batch(ws, 300, [{"ts": good[0]["ts"] + 1, "values": {"t": 21.0}}]))["type"] == "ack"
    assert [p["value"] for p in server.telemetry(dev, order="asc")["t"]] == [20.0, 21.0]
    assert server.metric_value("pulsewire_rejects_total", 'code="invalid"') >= 10


async def test_telemetry_before_hello_is_refused(server: Server) -> None:
    _, token = server.register()
    async with device(server, token, hello=False) as ws:
        answer = await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}])
        assert answer["code"] == "protocol" and "hello" in answer["detail"]


@pytest.mark.parametrize(
    "send, close_code",
    [
        (lambda ws: ws.send(b'{"type":"hello"}'), 1003),
        (lambda ws: ws.send("this is not json"), 1007),
        (lambda ws: ws.send(b"\xff\xfe{}", text=True), 1007),  # a text frame that is not UTF-8
        (lambda ws: ws.send("x" * (64 * 1024 + 1)), 1009),
    ],
    ids=["binary", "not-json", "not-utf8", "oversized"],
)
async def test_unusable_frames_close_with_reason_and_keep_acked_data(server: Server, send, close_code: int) -> None:  # type: ignore[no-untyped-def]
    dev, token = server.register()
    ts = now_ms()
    async with device(server, token) as ws:
        assert (await send_batch(ws, 1, [{"ts": ts, "values": {"t": 1.0}}]))["type"] == "ack"
        await send(ws)
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
    assert info.value.rcvd is not None and info.value.rcvd.code == close_code
    assert server.telemetry(dev)["t"] == [{"ts": ts, "value": 1.0}]
    assert httpx.get(server.base + "/healthz").status_code == 200


async def refused_with(server: Server, headers: dict[str, str], subprotocols: list[str] | None) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(
            server.ws_base + "/ws/device",
            subprotocols=subprotocols,
            additional_headers=headers,  # type: ignore[arg-type]
        ):
            pass
    return info.value


async def test_handshake_refusals(server: Server) -> None:
    dev, token = server.register()
    cases = [
        ({}, [SUBPROTOCOL], 401, "device token required"),
        ({"Authorization": "Bearer pwd_not-a-real-token"}, [SUBPROTOCOL], 401, "unknown or revoked"),
        ({"Authorization": "Basic abc"}, [SUBPROTOCOL], 401, "device token required"),
        ({"Authorization": f"Bearer {token}"}, None, 400, "subprotocol pulsewire.v1 required"),
        ({"Authorization": f"Bearer {token}"}, ["pulsewire.v0"], 400, "offered: pulsewire.v0"),
    ]
    for headers, protocols, status, detail in cases:
        refused = await refused_with(server, headers, protocols)
        assert refused.response.status_code == status
        assert detail in refused.response.body.decode()
    log = server.log_text()
    assert "device handshake refused" in log and "pwd_not-a-real-token" not in log and token not in log
    assert server.metric_value("pulsewire_auth_refusals_total", 'reason="bad_token"') >= 1
    assert server.telemetry(dev) == {}  # nothing was stored


async def test_rotated_token_stops_working_at_once(server: Server) -> None:
    dev, old = server.register()
    async with device(server, old) as ws:
        assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
        rotated = httpx.post(f"{server.base}/api/devices/{dev}/token", headers=server.admin())
        assert rotated.status_code == 200
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4003
    assert (await refused_with(server, {"Authorization": f"Bearer {old}"}, [SUBPROTOCOL])).response.status_code == 401
    async with device(server, rotated.json()["token"]) as ws:
        assert (await send_batch(ws, 1, [{"ts": now_ms() + 1, "values": {"t": 2}}]))["type"] == "ack"
    assert len(server.telemetry(dev)["t"]) == 2


async def test_removed_device_is_disconnected_and_refused(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token) as ws:
        assert httpx.delete(f"{server.base}/api/devices/{dev}", headers=server.admin()).status_code == 200
        with pytest.raises(ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 4003
    assert (await refused_with(server, {"Authorization": f"Bearer {token}"}, [SUBPROTOCOL])).response.status_code == 401


async def test_newer_connection_replaces_older(server: Server) -> None:
    dev, token = server.register()
    async with live(server) as dashboard:
        await recv_json(dashboard)
        async with device(server, token) as first:
            await live_until(dashboard, lambda m: m["type"] == "status" and m["device"] == dev and m["online"])
            async with device(server, token) as second:
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(first.recv(), 5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 4001
                assert (await send_batch(second, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
                devices = {d["id"]: d for d in httpx.get(f"{server.base}/api/devices").json()}
                assert devices[dev]["online"] is True  # the old connection leaving did not mark it offline
        await live_until(dashboard, lambda m: m["type"] == "status" and m["device"] == dev and not m["online"])


async def test_silent_device_is_marked_offline(server: Server) -> None:
    """A device that says hello, then stops answering pings (server ping interval and timeout are 1 s here)."""
    dev, token = server.register()
    async with live(server) as dashboard:
        await recv_json(dashboard)
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        try:
            writer.write(
                (
                    "GET /ws/device HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                    f"Sec-WebSocket-Protocol: {SUBPROTOCOL}\r\nAuthorization: Bearer {token}\r\n\r\n"
                ).encode()
            )
            status = await reader.readline()
            assert b"101" in status
            writer.write(masked_text_frame(dumps({"type": "hello"})))
            await live_until(dashboard, lambda m: m["type"] == "status" and m["device"] == dev and m["online"])
            # The raw socket never reads or answers a ping; the server gives up and says so.
            offline = await live_until(
                dashboard, lambda m: m["type"] == "status" and m["device"] == dev and not m["online"], timeout=10
            )
            assert offline["ts"] <= now_ms()
        finally:
            writer.close()
    devices = {d["id"]: d for d in httpx.get(f"{server.base}/api/devices").json()}
    assert devices[dev]["online"] is False and devices[dev]["last_seen"] is not None


def masked_text_frame(text: str) -> bytes:
    """One client-to-server text frame (RFC 6455 section 5.2: FIN, opcode 1, masked), payload under 126 bytes."""
    payload = text.encode()
    assert len(payload) < 126
    mask = os.urandom(4)
    return bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_a_device_is_online_only_once_it_said_hello_and_is_closed_without_one(tmp_path: Path) -> None:
    server = Server(tmp_path, settings={"hello_timeout_s": "1"}).start()
    try:
        dev, token = server.register()
        async with live(server) as dashboard:
            await recv_json(dashboard)
            started = time.monotonic()
            async with device(server, token, hello=False) as ws:
                await asyncio.sleep(0.3)
                assert _listed_when(server, dev, lambda d: True)["online"] is False  # type: ignore[index]
                assert server.get("/healthz").json()["devices_online"] == 0
                assert server.metric_value("pulsewire_device_connections") == 0
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(ws.recv(), 5)
                assert 0.9 < time.monotonic() - started < 3
            assert info.value.rcvd is not None and info.value.rcvd.code == 1008
            assert info.value.rcvd.reason == "no hello within 1 s"
            with pytest.raises(TimeoutError):  # no status went out: it was never online
                await live_until(dashboard, lambda m: m["type"] == "status" and m["device"] == dev, timeout=0.5)
        assert server.metric_value("pulsewire_hello_timeouts_total") == 1
        assert not [line for line in server.log_lines() if " error " in line]
    finally:
        server.stop()


async def test_a_connection_without_hello_does_not_replace_the_current_one(tmp_path: Path) -> None:
    server = Server(tmp_path, settings={"hello_timeout_s": "1"}).start()
    try:
        _, token = server.register()
        async with device(server, token) as first:
            async with device(server, token, hello=False) as silent:
                assert (await send_batch(first, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(silent.recv(), 5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 1008
            assert (await send_batch(first, 2, [{"ts": now_ms(), "values": {"t": 2}}]))["type"] == "ack"
            async with device(server, token) as second:  # a newer connection that says hello does replace it
                with pytest.raises(ConnectionClosed) as info:
                    await asyncio.wait_for(first.recv(), 5)
                assert info.value.rcvd is not None and info.value.rcvd.code == 4001
                assert (await send_batch(second, 3, [{"ts": now_ms(), "values": {"t": 3}}]))["type"] == "ack"
    finally:
        server.stop()


async def test_a_device_over_its_batch_rate_is_slowed_down_and_loses_nothing(tmp_path: Path) -> None:
    server = Server(tmp_path, settings={"device_batches_per_s": "10"}).start()
    try:
        dev, token = server.register()
        ts = now_ms()
        async with device(server, token) as ws:
            started = time.monotonic()
            for seq in range(1, 26):
                await ws.send(
                    dumps({"type": "telemetry", "seq": seq, "data": [{"ts": ts + seq, "values": {"t": seq}}]})
                )
            answers = [await recv_json(ws) for _ in range(25)]
            took = time.monotonic() - started
        assert answers == [{"type": "ack", "seq": seq} for seq in range(1, 26)]
        assert took > 1.4  # 10 at once, then 10 a second
        assert len(server.telemetry(dev, limit=100)["t"]) == 25
        assert server.metric_value("pulsewire_telemetry_throttled_total") >= 10
    finally:
        server.stop()


def _disconnect_line(server: Server, device_id: str) -> str | None:
    lines = [line for line in server.log_lines() if "device disconnected" in line and f"device={device_id}" in line]
    return lines[-1] if lines else None


async def test_disconnect_is_logged_with_who_closed_and_why(server: Server) -> None:
    clean, token = server.register()
    async with device(server, token) as ws:
        await ws.close(1000, "going to sleep")
    line = await eventually(lambda: _disconnect_line(server, clean), 5, "the clean close logged")
    assert "by=device" in line and "close_code=1000" in line and 'reason="going to sleep"' in line, line

    lost, token = server.register()
    async with device(server, token) as ws:
        ws.transport.abort()  # no close frame: the connection is lost
    line = await eventually(lambda: _disconnect_line(server, lost), 5, "the lost connection logged")
    assert "by=lost" in line and ("close_code=1005" in line or "close_code=1006" in line), line

    closed, token = server.register()
    async with device(server, token) as ws:
        await ws.send("not json")
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    line = await eventually(lambda: _disconnect_line(server, closed), 5, "the server's close logged")
    assert "by=server" in line and "close_code=1007" in line, line
