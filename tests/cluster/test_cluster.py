"""Three real instances on one PostgreSQL database and a private Redis, with Debian's nginx in front
as docs/cluster.md configures it (docs/cluster.md): live fan-out, commands, one connection per device,
an instance killed under load, and Redis restarted under load."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from tests.support.clients import device, dumps, live, live_until, now_ms, recv_json, send_batch
from tests.support.cluster import Cluster, start_cluster
from tests.support.receivers import WebhookReceiver, webhook_receiver
from tests.support.releases import new_release, take_update
from tests.support.server import Server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

SECRET = "a-webhook-secret-for-the-tests"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, postgres_database: Callable[[], str]) -> Iterator[Cluster]:
    made = start_cluster(
        tmp_path_factory.mktemp("cluster"), postgres_database(), ping_interval_s="1", ping_timeout_s="1"
    )
    yield made
    made.stop()


def reading(value: float) -> list[dict[str, Any]]:
    return [{"ts": now_ms(), "values": {"t": value}}]


async def welcome_of(ws: ClientConnection) -> None:
    await ws.send(dumps({"type": "hello", "fw": "test-1.0", "uptime": 1}))
    assert (await recv_json(ws))["type"] == "welcome"


async def test_a_dashboard_on_a_gets_readings_from_devices_on_b_and_c_within_a_second(cluster: Cluster) -> None:
    a, b, c = cluster.instances
    (on_b, token_b), (on_c, token_c) = a.register(), a.register()
    async with live(a) as dashboard, device(b, token_b) as dev_b, device(c, token_c) as dev_c:
        await asyncio.sleep(0.3)  # the dashboard's snapshot is in before the readings
        for n in range(5):
            sent = time.monotonic()
            assert (await send_batch(dev_b, n + 1, reading(n)))["type"] == "ack"
            assert (await send_batch(dev_c, n + 1, reading(-n)))["type"] == "ack"
            for dev_id, value in ((on_b, n), (on_c, -n)):
                msg = await live_until(
                    dashboard,
                    lambda m, d=dev_id, v=value: (
                        m["type"] == "telemetry"
                        and m["device"] == d
                        and any(r["values"].get("t") == v for r in m["data"])
                    ),
                    timeout=1,
                )
                assert msg["device"] == dev_id
            assert time.monotonic() - sent < 1
        listed = {d["id"]: d["online"] for d in a.get("/api/devices", headers=a.admin()).json()}
        assert listed[on_b] is True and listed[on_c] is True  # online, though connected elsewhere


async def test_a_command_through_c_reaches_a_device_on_a_and_its_result_comes_back(cluster: Cluster) -> None:
    a, _, c = cluster.instances
    dev_id, token = a.register()
    async with device(a, token) as ws:
        await eventually(lambda: _online_on(c, dev_id), 5, "c knows the device is online")
        sent = asyncio.create_task(
            httpx.AsyncClient(timeout=20).post(
                f"{c.base}/api/devices/{dev_id}/commands?wait=10",
                json={"name": "set_interval", "args": {"ms": 2500}},
                headers=c.admin(),
            )
        )
        cmd = await recv_json(ws, 10)
        assert cmd["type"] == "command" and cmd["name"] == "set_interval" and cmd["args"] == {"ms": 2500}
        await ws.send(dumps({"type": "result", "id": cmd["id"], "ok": True, "detail": "every 2500 ms"}))
        resp = await sent
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"id": cmd["id"], "name": "set_interval", "ok": True, "detail": "every 2500 ms"}


async def test_the_same_device_connecting_through_b_replaces_its_connection_on_a(cluster: Cluster) -> None:
    a, b, c = cluster.instances
    dev_id, token = a.register()
    async with live(c) as dashboard, device(a, token) as older:
        await eventually(lambda: _online_on(b, dev_id), 5, "b knows the device is on a")
        async with device(b, token) as newer:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await recv_json(older, 5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                4001,
                "replaced by a newer connection of the same device",
            )
            assert (await send_batch(newer, 1, reading(1)))["type"] == "ack"
            await asyncio.sleep(1)  # what a wrongly sent offline would have needed to arrive
            assert _online_on(a, dev_id) and _online_on(c, dev_id)
        await live_until(dashboard, lambda m: m["type"] == "status" and m["device"] == dev_id and not m["online"])


async def test_a_token_rotated_through_a_closes_the_device_s_connection_on_b(cluster: Cluster) -> None:
    a, b, _ = cluster.instances
    dev_id, token = a.register()
    async with device(b, token) as ws:
        await eventually(lambda: _online_on(a, dev_id), 5, "a knows the device is on b")
        resp = httpx.post(f"{a.base}/api/devices/{dev_id}/token", headers=a.admin(), timeout=10)
        assert resp.status_code == 200, resp.text
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await recv_json(ws, 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4003


def _online_on(server: Server, device_id: str) -> bool:
    listed = server.get("/api/devices", headers=server.admin()).json()
    return any(d["id"] == device_id and d["online"] for d in listed)


# --- under load ------------------------------------------------------------------------------------


class Load:
    """Devices sending through nginx, as boards do: a batch not acked is sent again, the same, after
    reconnecting (the store keeps one copy); a device waits `reconnect_s[device]` before reconnecting."""

    def __init__(self, front: Server, tokens: dict[str, str], reconnect_s: dict[str, float] | None = None) -> None:
        self.front = front
        self.tokens = tokens
        self.reconnect_s = reconnect_s or {}
        self.acked: dict[str, list[int]] = {d: [] for d in tokens}  # each device's acked values
        self.last_ack = time.monotonic()
        self.longest_gap = 0.0
        self.reconnects = 0
        self.stopping = False

    async def run(self, device_id: str) -> None:
        pending: list[dict[str, Any]] = []
        while not self.stopping:
            try:
                async with device(self.front, self.tokens[device_id]) as ws:
                    await self._stream(ws, device_id, pending)
            except (OSError, websockets.WebSocketException, TimeoutError, AssertionError):
                self.reconnects += 1
                await asyncio.sleep(self.reconnect_s.get(device_id, 0.2))

    async def _stream(self, ws: ClientConnection, device_id: str, pending: list[dict[str, Any]]) -> None:
        seq = 0
        while not self.stopping:
            if not pending:  # the next values after the last acked, with this moment's stamps
                first = self.acked[device_id][-1] + 1 if self.acked[device_id] else 0
                pending.extend({"ts": now_ms() - 10 + i, "values": {"n": first + i}} for i in range(5))
            seq += 1
            answer = await send_batch(ws, seq, pending)
            assert answer["type"] == "ack", answer
            now = time.monotonic()
            self.longest_gap = max(self.longest_gap, now - self.last_ack)
            self.last_ack = now
            self.acked[device_id].extend(int(r["values"]["n"]) for r in pending)
            pending.clear()
            await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def load(
    front: Server, tokens: dict[str, str], reconnect_s: dict[str, float] | None = None
) -> AsyncIterator[Load]:
    running = Load(front, tokens, reconnect_s)
    tasks = [asyncio.create_task(running.run(d)) for d in tokens]
    try:
        yield running
    finally:
        running.stopping = True
        await asyncio.gather(*tasks, return_exceptions=True)


def stored_values(server: Server, device_id: str) -> list[int]:
    points = server.telemetry(device_id, limit=100000).get("n", [])
    return sorted(int(p["value"]) for p in points)


async def test_kill_9_an_instance_under_load_loses_no_acked_reading_and_its_devices_come_back_online(
    tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    """Half the devices reconnect at once (they never look offline: they are back before the instance
    is found dead); the other half wait 8 s, as a board whose backoff has grown: they show offline
    when the instance is found dead, then online again."""
    made = start_cluster(tmp_path, postgres_database(), ping_interval_s="1", ping_timeout_s="1")
    try:
        a, b, c = made.instances
        ids = [f"load-{n:02d}" for n in range(12)]
        tokens = dict(zip(ids, a.register_many(ids), strict=True))
        slow = set(ids[1::2])
        async with live(a) as dashboard, load(made.via_nginx(), tokens, dict.fromkeys(slow, 8.0)) as running:
            await eventually(lambda: all(len(v) >= 20 for v in running.acked.values()), 20, "every device streaming")
            on_b = await eventually(lambda: _held_by(made, b, slow), 10, "slow devices on b")
            assert b.proc is not None
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait()
            killed = time.monotonic()
            offline = await live_until(
                dashboard, lambda m: m["type"] == "status" and m["device"] in on_b and not m["online"], 10
            )
            found_dead_s = time.monotonic() - killed
            back = await live_until(
                dashboard, lambda m: m["type"] == "status" and m["device"] == offline["device"] and m["online"], 15
            )
            assert back["online"]
            before = {d: len(v) for d, v in running.acked.items()}
            await eventually(lambda: all(len(running.acked[d]) > before[d] + 10 for d in ids), 30, "all stream again")
        print(f"instance found dead {found_dead_s:.1f} s after kill -9; {running.reconnects} reconnections")
        for dev_id in ids:
            stored = stored_values(a, dev_id)
            assert stored == list(range(len(stored))), f"{dev_id}: a gap or a double"
            assert set(running.acked[dev_id]) <= set(stored), f"{dev_id}: an acked reading was lost"
        await eventually(lambda: not any(_online_on(c, d) for d in ids), 10, "offline everywhere once the load ended")
    finally:
        made.stop()


def _held_by(made: Cluster, server: Server, among: set[str]) -> list[str] | None:
    """Those of `among` connected to `server` now, from the cluster's registry in Redis; None if none."""
    with made.redis.client() as r:
        holders = {k.decode(): v.decode() for k, v in r.hgetall("pulsewire:presence").items()}
    ready = httpx.get(server.base + "/readyz", timeout=5).json()
    mine = [d for d, holder in holders.items() if d in among and holder.startswith(ready["cluster"]["instance"] + ":")]
    return mine or None


async def test_redis_restarted_under_load_acks_never_stop_and_fan_out_resumes_by_itself(
    tmp_path: Path, postgres_database: Callable[[], str]
) -> None:
    made = start_cluster(tmp_path, postgres_database())
    try:
        a, b, _ = made.instances
        ids = [f"steady-{n:02d}" for n in range(6)]
        tokens = dict(zip(ids, a.register_many(ids), strict=True))
        async with load(b, tokens) as running, live(a) as dashboard:
            await eventually(lambda: all(len(v) >= 20 for v in running.acked.values()), 20, "every device streaming")
            await live_until(dashboard, lambda m: m["type"] == "telemetry" and m["device"] in ids, 2)
            made.redis.kill()
            await eventually(lambda: httpx.get(a.base + "/readyz").json()["cluster"]["bus"] == "down", 10, "seen down")
            ready = httpx.get(a.base + "/readyz")
            assert ready.status_code == 200  # still serving: storage does not depend on Redis
            assert a.metric_value("pulsewire_cluster_bus_up") == 0
            refused = api(a, "POST", f"/api/devices/{ids[0]}/commands?wait=1", {"name": "reboot", "args": {}})
            assert refused.status_code == 503 and "cannot be reached now" in refused.json()["detail"], refused.text
            during = {d: len(v) for d, v in running.acked.items()}
            await asyncio.sleep(3)
            assert all(len(running.acked[d]) > during[d] + 20 for d in ids), "acks went on without Redis"
            made.redis.start()
            restarted = now_ms()
            await eventually(lambda: httpx.get(a.base + "/readyz").json()["cluster"]["bus"] == "up", 20, "seen up")
            fresh = await live_until(
                dashboard,
                lambda m: m["type"] == "telemetry" and m["device"] in ids and m["data"][0]["ts"] > restarted,
                10,
            )
            assert fresh["device"] in ids
        assert running.longest_gap < 2.0, f"acks stopped for {running.longest_gap:.1f} s"
        assert running.reconnects == 0  # Redis trouble never touched a device connection
        for dev_id in ids:
            assert set(running.acked[dev_id]) <= set(stored_values(a, dev_id))
    finally:
        made.stop()


# --- alerts: each device judged once, by the instance that holds it ----------------------------------


def api(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.base + path, json=body, headers=server.admin(), timeout=30)


def alerts_of(server: Server, device_id: str) -> list[dict[str, Any]]:
    found = api(server, "GET", f"/api/alerts?device={device_id}")
    assert found.status_code == 200, found.text
    return list(found.json()["alerts"])


async def test_alerts_in_a_cluster_fire_once_and_an_ack_through_another_instance_stops_the_repeats(
    cluster: Cluster,
) -> None:
    """A device on B that crosses fires one alert, whose repeats are notified; the no-data rule fires
    for no device that is streaming (the other instances hear none of its readings, and do not judge
    it); an acknowledgement through C stops the repeats' notifications, which B makes."""
    a, b, c = cluster.instances
    dev_id, token = a.register()
    with webhook_receiver(SECRET) as receiver:
        hook = api(
            c,
            "POST",
            "/api/channels",
            {"name": "hook", "type": "webhook", "url": receiver.url("/ok"), "secret": SECRET},
        )
        assert hook.status_code == 201, hook.text
        common = {"device": dev_id, "metric": "t", "severity": "warning", "channels": [hook.json()["id"]]}
        hot = {"name": "hot", "kind": "threshold", "op": ">", "value": 30, "repeat_s": 1, **common}
        quiet = {"name": "quiet", "kind": "no_data", "for_s": 2, **common}
        for body in (hot, quiet):
            made = api(c, "POST", "/api/rules", body)
            assert made.status_code == 201, made.text
        async with device(b, token) as ws:
            seq = await stream(ws, 0, 40)  # 4 s, a reading every 100 ms: never silent for 2 s
            found = alerts_of(a, dev_id)
            assert [(x["rule_name"], x["state"]) for x in found] == [("hot", "firing")], found
            await eventually(lambda: len(keys(receiver)) >= 3, 5, "a firing and repeats notified")
            acked = api(c, "POST", f"/api/alerts/{found[0]['id']}/ack")
            assert acked.status_code == 200, acked.text
            await asyncio.sleep(1)  # B has heard of the acknowledgement
            notified = keys(receiver)
            await stream(ws, seq, 25)
        after = keys(receiver)
    alert_id = found[0]["id"]
    assert f"alert-{alert_id}-firing-0" in notified and f"alert-{alert_id}-repeat-1" in notified
    assert len(after - notified) <= 1, f"repeats went on after the acknowledgement: {sorted(after - notified)}"
    assert [x["state"] for x in alerts_of(a, dev_id)] == ["firing"]  # and no no-data alert, anywhere


def keys(receiver: WebhookReceiver) -> set[str]:
    """The idempotency keys that reached the receiver (each instance's outbox may deliver one again)."""
    return {json.loads(r.body)["idempotency_key"] for r in receiver.received if r.path == "/ok"}


async def stream(ws: ClientConnection, seq: int, count: int) -> int:
    for _ in range(count):
        seq += 1
        assert (await send_batch(ws, seq, reading(35)))["type"] == "ack"
        await asyncio.sleep(0.1)
    return seq


# --- rollouts: followed by every instance, for the devices connected to it ---------------------------


async def test_a_rollout_started_through_a_updates_a_device_on_b_which_comes_back_through_c(cluster: Cluster) -> None:
    a, b, c = cluster.instances
    version = new_release(a)
    (canary, canary_token), (rest, rest_token) = sorted(a.register() for _ in range(2))
    async with device(b, canary_token, hello=False) as on_b, device(c, rest_token, hello=False) as on_c:
        await welcome_of(on_b)
        await welcome_of(on_c)
        made = api(a, "POST", "/api/rollouts", {"version": version, "devices": [canary, rest], "canary_percent": 50})
        assert made.status_code == 201, made.text
        rollout_id = made.json()["id"]
        cmd = await take_update(b, on_b, canary_token, version)
        assert cmd["args"]["rollout"] == rollout_id
        await on_b.send(dumps({"type": "result", "id": cmd["id"], "ok": True, "detail": "staged"}))
        with pytest.raises(TimeoutError):  # the other waits for the canary
            await recv_json(on_c, 1)
    hello = {"type": "hello", "fw": version, "uptime": 5, "boot": {"state": "confirmed", "previous": "0.3.1"}}
    async with device(c, canary_token, hello=False) as back, device(a, rest_token, hello=False) as rest_on_a:
        await back.send(dumps(hello))
        assert (await recv_json(back))["type"] == "welcome"
        await welcome_of(rest_on_a)
        cmd = await take_update(a, rest_on_a, rest_token, version)  # the canary is confirmed: its turn, on a
        assert cmd["args"]["rollout"] == rollout_id
    steps = {d["device"]: d["step"] for d in api(c, "GET", f"/api/rollouts/{rollout_id}").json()["devices"]}
    assert steps == {canary: "confirmed", rest: "downloading"}
