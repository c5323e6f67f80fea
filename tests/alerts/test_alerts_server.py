"""Alerts against the real server, on SQLite and PostgreSQL: readings that cross a threshold fire
an alert (live and over HTTP) and resolve it, `for_s` holds back a spike, a device that goes
silent raises a no-data alert, acknowledging, rule edits, and a restart that forgets nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.support.clients import device, live, live_until, now_ms, recv_json, send_batch
from tests.support.server import Server, start_server

HOT = {"name": "too hot", "kind": "threshold", "metric": "temp", "op": ">", "value": 30, "severity": "critical"}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return start_server(tmp_path_factory.mktemp(f"alerts-{request.param}"), request.param, request)


def api(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.base + path, json=body, headers=server.admin(), timeout=30)


def add_rule(server: Server, **body: Any) -> str:
    made = api(server, "POST", "/api/rules", {**HOT, **body})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def firing(server: Server, device_id: str) -> list[dict[str, Any]]:
    found = api(server, "GET", f"/api/alerts?state=firing&device={device_id}")
    assert found.status_code == 200, found.text
    return list(found.json()["alerts"])


def is_alert(event: str, device_id: str) -> Any:
    return lambda m: m["type"] == "alert" and m["event"] == event and m["alert"]["device"] == device_id


async def readings(ws: Any, seq: int, *values: float) -> int:
    for value in values:
        seq += 1
        ack = await send_batch(ws, seq, [{"ts": now_ms(), "values": {"temp": value}}])
        assert ack["type"] == "ack", ack
        await asyncio.sleep(0.01)
    return seq


def test_a_crossing_fires_live_and_over_http_and_resolves_when_it_clears(server: Server) -> None:
    device_id, token = server.register("cross-1")
    rule_id = add_rule(server, device=device_id)

    async def scenario() -> None:
        async with live(server) as watcher, device(server, token) as ws:
            await recv_json(watcher)  # the snapshot
            seq = await readings(ws, 0, 20, 35)
            sent = now_ms()
            fired = await live_until(watcher, is_alert("firing", device_id), timeout=1)
            assert now_ms() - sent < 1000
            alert = fired["alert"]
            assert (alert["rule"], alert["rule_name"], alert["severity"]) == (rule_id, "too hot", "critical")
            assert (alert["metric"], alert["value"], alert["state"], alert["acked"]) == ("temp", 35, "firing", False)
            assert firing(server, device_id) == [alert]
            await readings(ws, seq, 36, 25)
            resolved = await live_until(watcher, is_alert("resolved", device_id))
            assert resolved["alert"]["id"] == alert["id"] and resolved["alert"]["resolved_at"] is not None
            assert firing(server, device_id) == []
            history = api(server, "GET", f"/api/alerts?device={device_id}&start={alert['since']}").json()["alerts"]
            assert [(a["id"], a["state"], a["value"]) for a in history] == [(alert["id"], "resolved", 35)]

    asyncio.run(scenario())


def test_for_s_holds_back_a_short_spike_and_fires_when_it_lasts(server: Server) -> None:
    device_id, token = server.register("spike-1")
    add_rule(server, device=device_id, for_s=1)

    async def scenario() -> None:
        async with device(server, token) as ws:
            seq = await readings(ws, 0, 50, 20)  # a spike of one reading
            assert firing(server, device_id) == []
            seq = await readings(ws, seq, 40)
            await asyncio.sleep(1.1)
            assert firing(server, device_id) == []  # still pending: no reading yet a second after the first
            await readings(ws, seq, 41)
            assert [a["value"] for a in firing(server, device_id)] == [41]

    asyncio.run(scenario())


def test_a_silent_device_raises_no_data_and_it_resolves_when_the_device_returns(server: Server) -> None:
    device_id, token = server.register("quiet-1")

    async def scenario() -> None:
        async with live(server) as watcher:
            await recv_json(watcher)
            async with device(server, token) as ws:
                await readings(ws, 0, 10)
                await asyncio.sleep(2.5)  # online: never silent
                assert firing(server, device_id) == []
            fired = await live_until(watcher, is_alert("firing", device_id), timeout=5)
            assert fired["alert"]["metric"] is None and fired["alert"]["value"] is None
            async with device(server, token):
                await live_until(watcher, is_alert("resolved", device_id), timeout=5)

    body = {
        k: v for k, v in {**HOT, "kind": "no_data", "device": device_id, "for_s": 1}.items() if k not in ("op", "value")
    }
    body["metric"] = None
    made = api(server, "POST", "/api/rules", body)
    assert made.status_code == 201, made.text
    asyncio.run(scenario())


def test_an_alert_is_acknowledged_and_a_deleted_rule_resolves_its_alert(server: Server) -> None:
    device_id, token = server.register("ack-1")
    rule_id = add_rule(server, device=device_id)

    async def scenario() -> None:
        async with live(server) as watcher, device(server, token) as ws:
            await recv_json(watcher)
            await readings(ws, 0, 99)
            alert = (await live_until(watcher, is_alert("firing", device_id)))["alert"]
            until = now_ms() + 3_600_000
            acked = api(server, "POST", f"/api/alerts/{alert['id']}/ack", {"until": until})
            assert acked.status_code == 200, acked.text
            assert (acked.json()["acked"], acked.json()["silenced_until"]) == (True, until)
            assert (await live_until(watcher, is_alert("ack", device_id)))["alert"]["acked"] is True
            assert api(server, "DELETE", f"/api/rules/{rule_id}").status_code == 200
            gone = await live_until(watcher, is_alert("resolved", device_id))
            assert gone["alert"]["id"] == alert["id"]
            assert firing(server, device_id) == []

    asyncio.run(scenario())


def test_acknowledging_an_unknown_alert_is_404_and_bad_queries_are_400(server: Server) -> None:
    assert api(server, "POST", "/api/alerts/999999/ack", {}).status_code == 404
    assert api(server, "GET", "/api/alerts/999999/notifications").status_code == 404
    for query in ("start=tomorrow", "start=10&end=5", "limit=0", "state=ok", "device=a%20b"):
        answer = api(server, "GET", f"/api/alerts?{query}")
        assert answer.status_code == 400, (query, answer.text)
        assert answer.json()["detail"]
    assert api(server, "POST", "/api/alerts/1/ack", {"until": -1}).status_code == 400
    assert httpx.post(server.base + "/api/alerts/1/ack", json={}).status_code == 401


def test_a_firing_alert_survives_a_restart_and_a_new_live_client_is_told_of_it(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> None:
    srv = start_server(tmp_path_factory.mktemp("alerts-restart"), "sqlite", request)
    device_id, token = srv.register("restart-1")
    add_rule(srv, device=device_id)

    async def fire() -> int:
        async with device(srv, token) as ws:
            await readings(ws, 0, 77)
        return int(firing(srv, device_id)[0]["id"])

    alert_id = asyncio.run(fire())
    srv.stop()
    srv.start()
    assert [a["id"] for a in firing(srv, device_id)] == [alert_id]

    async def rejoin() -> None:
        async with live(srv) as watcher, device(srv, token) as ws:
            assert (await recv_json(watcher))["type"] == "snapshot"
            told = await live_until(watcher, is_alert("firing", device_id))
            assert told["alert"]["id"] == alert_id
            await readings(ws, 10, 80)  # still firing: the same episode, no new alert
            assert [a["id"] for a in firing(srv, device_id)] == [alert_id]
            await readings(ws, 20, 1)
            await live_until(watcher, is_alert("resolved", device_id))

    asyncio.run(rejoin())


def test_a_metric_that_stops_arriving_raises_no_data_while_the_device_stays_online(server: Server) -> None:
    device_id, token = server.register("metric-quiet-1")
    body = {k: v for k, v in HOT.items() if k not in ("op", "value")}
    made = api(server, "POST", "/api/rules", {**body, "kind": "no_data", "device": "*", "for_s": 1})
    assert made.status_code == 201, made.text

    async def scenario() -> None:
        async with live(server) as watcher, device(server, token) as ws:
            await recv_json(watcher)
            seq = await readings(ws, 0, 20)
            for n in range(25):  # only humidity from now on, for 2.5 s
                ack = await send_batch(ws, seq + n + 1, [{"ts": now_ms(), "values": {"hum": 50}}])
                assert ack["type"] == "ack"
                await asyncio.sleep(0.1)
            fired = await live_until(watcher, is_alert("firing", device_id), timeout=2)
            assert fired["alert"]["metric"] == "temp"
            await readings(ws, seq + 100, 21)
            await live_until(watcher, is_alert("resolved", device_id), timeout=3)

    asyncio.run(scenario())
