"""The live channel: snapshot, subscriptions, pushes, the read key, and slow clients."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import httpx
import orjson
import pytest
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from pulsewire.channels.hub import LiveHub
from pulsewire.metrics import Metrics
from tests.support.clients import device, dumps, live, live_until, now_ms, recv_json, send_batch
from tests.support.db import sqlite_write_lock
from tests.support.server import Server, start_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def test_snapshot_lists_devices_with_latest_values(server: Server) -> None:
    dev, token = server.register(name="Snapshot device")
    ts = now_ms()
    async with device(server, token) as ws:
        assert (await send_batch(ws, 1, [{"ts": ts, "values": {"temperature": 21.5, "door": True}}]))["type"] == "ack"
        async with live(server) as dashboard:
            snap = await recv_json(dashboard)
    entry = next(d for d in snap["devices"] if d["id"] == dev)
    assert entry["name"] == "Snapshot device" and entry["online"] is True and entry["last_seen"] >= ts - 5000
    assert entry["latest"] == {"temperature": {"ts": ts, "value": 21.5}, "door": {"ts": ts, "value": True}}


async def handled(ws: ClientConnection) -> None:
    """Wait until the server has handled what was sent before: each channel handles a
    connection's messages in order, so the answer to a message it refuses comes after them."""
    await ws.send(dumps({"type": "no-such-message"}))  # refused by either channel, which stays open
    answer = await live_until(ws, lambda m: m["type"] == "error")
    assert answer["code"] in ("invalid", "unknown_type"), answer


async def test_subscribe_filters_devices_and_status_events(server: Server) -> None:
    a, token_a = server.register()
    b, token_b = server.register()
    async with live(server) as dashboard:
        await recv_json(dashboard)
        await dashboard.send(dumps({"type": "subscribe", "devices": [b]}))
        await handled(dashboard)
        async with device(server, token_a) as ws_a, device(server, token_b) as ws_b:
            assert (await send_batch(ws_a, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
            assert (await send_batch(ws_b, 1, [{"ts": now_ms(), "values": {"t": 2}}]))["type"] == "ack"
            first = await live_until(dashboard, lambda m: m["type"] == "telemetry")
            assert first["device"] == b and first["data"][0]["values"] == {"t": 2}
        await dashboard.send(dumps({"type": "subscribe", "devices": []}))  # back to every device
        await handled(dashboard)
        async with device(server, token_a) as ws_a:
            online = await live_until(dashboard, lambda m: m["type"] == "status" and m["online"])
            assert online["device"] == a


async def test_bad_subscribe_gets_an_error_and_the_socket_stays(server: Server) -> None:
    async with live(server) as dashboard:
        await recv_json(dashboard)
        for bad in ("not json", dumps({"type": "unsubscribe"}), dumps({"type": "subscribe", "devices": "all"})):
            await dashboard.send(bad)
            answer = await recv_json(dashboard)
            assert answer["type"] == "error" and answer["code"] == "invalid" and answer["detail"]
        await dashboard.send(dumps({"type": "subscribe"}))
        await dashboard.ping()


async def test_read_key_guards_reads_but_not_device_ingest(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, "sqlite", request, read_key="reader-secret")
    dev, token = server.register()
    assert server.get("/api/devices").status_code == 401
    assert server.get("/api/devices", params={"key": "reader-secret"}).status_code == 200
    assert server.get("/api/devices", headers={"Authorization": "Bearer reader-secret"}).status_code == 200
    assert server.get("/api/devices", headers=server.admin()).status_code == 200
    assert server.get(f"/api/devices/{dev}/telemetry.csv").status_code == 401
    with pytest.raises((InvalidStatus, websockets.ConnectionClosed)):
        async with live(server) as dashboard:
            await recv_json(dashboard)
    async with live(server, "?key=reader-secret") as dashboard:
        assert (await recv_json(dashboard))["type"] == "snapshot"
        async with device(server, token) as ws:
            assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
    assert server.get("/healthz").status_code == 200


async def test_slow_dashboard_is_dropped_and_ingest_never_waits(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, "sqlite", request, live_queue_messages="4")
    dev, token = server.register()
    # A dashboard that connects and then never reads: its socket fills, then its queue.
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.connect(("127.0.0.1", server.port))
    stuck.sendall(
        b"GET /ws/live HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    try:
        # The server's side of a socket settles on its own schedule.
        await eventually(lambda: server.metric_value("pulsewire_live_clients") == 1, 10, "the live client counted")
        base = now_ms()
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with device(server, token) as ws:
            for seq in range(1, 201):  # ~6 MB of live traffic
                data = [
                    {"ts": base + seq * 1000 + i, "values": {"temperature_reading": 20.123456 + i}} for i in range(900)
                ]
                assert (await send_batch(ws, seq, data))["type"] == "ack"
        elapsed = loop.time() - started
        await eventually(lambda: server.metric_value("pulsewire_live_clients") == 0, 10, "the live client gone")
        assert server.metric_value("pulsewire_live_dropped_clients_total") == 1
        assert server.metric_value("pulsewire_live_clients") == 0
        assert "live client too slow; dropped" in server.log_text()
        counted = server.telemetry(dev, interval=10**13, agg="count")["temperature_reading"]
        assert [p["value"] for p in counted] == [200 * 900]
        assert elapsed < 60, "ingest must not wait for the stuck dashboard"
    finally:
        stuck.close()


async def test_readings_go_live_on_arrival_and_are_acked_after_their_commit(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request)
    dev, token = server.register()
    ts = now_ms()
    async with live(server) as dashboard, device(server, token) as ws:
        await recv_json(dashboard)
        with sqlite_write_lock(tmp_path / "pulsewire.db"):
            await ws.send(dumps({"type": "telemetry", "seq": 1, "data": [{"ts": ts, "values": {"t": 1.5}}]}))
            pushed = await live_until(dashboard, lambda m: m["type"] == "telemetry")
            assert pushed == {"type": "telemetry", "device": dev, "data": [{"ts": ts, "values": {"t": 1.5}}]}
            with pytest.raises(TimeoutError):  # not stored yet, so not acked
                await recv_json(ws, timeout=0.5)
        assert await recv_json(ws) == {"type": "ack", "seq": 1}
    assert server.telemetry(dev)["t"] == [{"ts": ts, "value": 1.5}]


async def test_a_dashboard_joining_while_a_reading_is_being_stored_still_gets_it(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request)
    dev, token = server.register()
    ts = now_ms()
    async with device(server, token) as ws:
        with sqlite_write_lock(tmp_path / "pulsewire.db"):
            await ws.send(dumps({"type": "telemetry", "seq": 1, "data": [{"ts": ts, "values": {"t": 3}}]}))
            await handled(ws)  # pushed on arrival to nobody; its commit waits for the lock
            async with live(server) as dashboard:
                snapshot = await recv_json(dashboard)
                entry = next(d for d in snapshot["devices"] if d["id"] == dev)
                assert entry["latest"] == {}  # not stored yet, so not in the snapshot...
                pushed = await live_until(dashboard, lambda m: m["type"] == "telemetry")
                assert pushed == {"type": "telemetry", "device": dev, "data": [{"ts": ts, "values": {"t": 3}}]}
        assert await recv_json(ws) == {"type": "ack", "seq": 1}
    async with live(server) as late:  # ...and once stored, a later dashboard gets it from the snapshot only
        snapshot = await recv_json(late)
        assert next(d for d in snapshot["devices"] if d["id"] == dev)["latest"] == {"t": {"ts": ts, "value": 3}}
        with pytest.raises((TimeoutError, AssertionError)):
            await live_until(late, lambda m: m["type"] == "telemetry", timeout=0.5)


async def test_live_after_commit_pushes_only_stored_readings(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, "sqlite", request, live_after_commit="true")
    dev, token = server.register()
    ts = now_ms()
    async with live(server) as dashboard, device(server, token) as ws:
        await recv_json(dashboard)
        with sqlite_write_lock(tmp_path / "pulsewire.db"):
            await ws.send(dumps({"type": "telemetry", "seq": 1, "data": [{"ts": ts, "values": {"t": 2}}]}))
            with pytest.raises((TimeoutError, AssertionError)):  # only the device's status may come
                await live_until(dashboard, lambda m: m["type"] == "telemetry", timeout=0.5)
        assert await recv_json(ws) == {"type": "ack", "seq": 1}
        pushed = await live_until(dashboard, lambda m: m["type"] == "telemetry")
        assert pushed["data"] == [{"ts": ts, "values": {"t": 2}}]


async def test_hub_merges_what_arrives_in_one_turn_per_device_in_order() -> None:
    hub = LiveHub(Metrics(), queue_size=10)
    stored = [{"ts": 1, "values": {"t": 1}}]
    hub.publish_arrived("a", stored)  # no client yet: only kept until its commit settles
    hub.settled("a", stored)
    await asyncio.sleep(0)
    client = hub.join()
    hub.publish_arrived("a", [{"ts": 2, "values": {"t": 2}}])
    hub.publish_arrived("b", [{"ts": 5, "values": {"t": 5}}])
    hub.publish_arrived("a", [{"ts": 3, "values": {"t": 3}}, {"ts": 4, "values": {"t": 4}}])
    assert client.queue.empty()  # sent at the end of the turn, not per batch
    await asyncio.sleep(0)
    messages = [orjson.loads(client.queue.get_nowait()) for _ in range(client.queue.qsize())]
    assert messages == [
        {"type": "telemetry", "device": "a", "data": [{"ts": t, "values": {"t": t}} for t in (2, 3, 4)]},
        {"type": "telemetry", "device": "b", "data": [{"ts": 5, "values": {"t": 5}}]},
    ]


async def test_hub_starts_a_joining_client_with_what_is_pushed_but_not_stored() -> None:
    hub = LiveHub(Metrics(), queue_size=10)
    first = [{"ts": 1, "values": {"t": 1}}]
    second = [{"ts": 2, "values": {"t": 2}}]
    other = [{"ts": 7, "values": {"t": 7}}]
    hub.publish_arrived("a", first)
    hub.publish_arrived("a", second)
    hub.publish_arrived("b", other)
    hub.settled("a", first)  # stored: a joining client finds it in the snapshot
    client = hub.join()
    queued = [orjson.loads(client.queue.get_nowait()) for _ in range(client.queue.qsize())]
    assert queued == [
        {"type": "telemetry", "device": "a", "data": second},
        {"type": "telemetry", "device": "b", "data": other},
    ]
    hub.settled("a", second)
    hub.settled("b", other)
    hub.settled("b", other)  # settling twice, or unknown batches, changes nothing
    assert hub.join().queue.empty()


def test_hub_merges_per_device_filters_and_marks_laggards() -> None:
    async def scenario() -> None:
        metrics = Metrics()
        hub = LiveHub(metrics, queue_size=2)
        everyone, only_b, laggard = hub.join(), hub.join(), hub.join()
        only_b.subscribe(["b"])
        hub.publish_readings(
            [
                ("a", [{"ts": 1, "values": {"t": 1}}]),
                ("b", [{"ts": 2, "values": {"t": 2}}]),
                ("a", [{"ts": 3, "values": {"t": 3}}]),
            ]
        )
        first = everyone.queue.get_nowait()
        assert first == '{"type":"telemetry","device":"a","data":[{"ts":1,"values":{"t":1}},{"ts":3,"values":{"t":3}}]}'
        assert only_b.queue.qsize() == 1 and '"device":"b"' in only_b.queue.get_nowait()
        assert laggard.queue.qsize() == 2 and not laggard.behind.is_set()
        hub.publish_status("a", False, 5)
        assert laggard.behind.is_set() and not everyone.behind.is_set()
        assert only_b.queue.empty()  # status of a device it did not subscribe to
        hub.leave(laggard)
        assert metrics.live_dropped._value.get() == 1  # type: ignore[attr-defined]
        assert metrics.live_clients._value.get() == 2  # type: ignore[attr-defined]

    asyncio.run(scenario())


def test_live_rejects_nothing_on_plain_http(server: Server) -> None:
    assert httpx.get(server.base + "/ws/live").status_code in (400, 404, 426)
