"""Server-to-device commands end to end: `POST /api/devices/{id}/commands`, the `command` and
`result` messages on a fake device, the stored per-device interval in `welcome`, the metric and
the CLI, against the real server on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from tests.support.cli import cli
from tests.support.clients import device, dumps, now_ms, recv_json, send_batch
from tests.support.server import Server
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio

DEFAULT_INTERVAL = 1000  # the `server` fixture's sample_interval_ms


async def command(
    server: Server, device_id: str, body: Any, wait: float | str | None = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    params = {} if wait is None else {"wait": str(wait)}
    async with httpx.AsyncClient(base_url=server.base, timeout=90) as client:
        return await client.post(
            f"/api/devices/{device_id}/commands",
            json=body,
            params=params,
            headers=server.admin() if headers is None else headers,
        )


def listed(server: Server, device_id: str) -> dict[str, Any]:
    devices = {d["id"]: d for d in server.get("/api/devices").json()}
    return devices[device_id]  # type: ignore[no-any-return]


async def hello(ws: ClientConnection) -> dict[str, Any]:
    await ws.send(dumps({"type": "hello", "fw": "test-1.0"}))
    welcome = await recv_json(ws)
    assert welcome["type"] == "welcome"
    return welcome


async def welcome_interval(server: Server, token: str) -> int:
    async with device(server, token, hello=False) as ws:
        return int((await hello(ws))["interval"])


def commands_total(server: Server, name: str, outcome: str) -> float:
    return server.metric_value("pulsewire_commands_total", f'name="{name}",outcome="{outcome}"')


# --- delivered and answered -----------------------------------------------------------------------


async def test_set_interval_is_delivered_answered_stored_and_sent_in_welcome(server: Server) -> None:
    dev, token = server.register()
    assert listed(server, dev)["interval_ms"] == DEFAULT_INTERVAL
    before = commands_total(server, "set_interval", "ok")
    async with device(server, token) as ws:
        call = asyncio.create_task(command(server, dev, {"name": "set_interval", "args": {"ms": 2500}}))
        sent = await recv_json(ws)
        assert sent["type"] == "command" and sent["name"] == "set_interval" and sent["args"] == {"ms": 2500}
        assert sent["id"].startswith("c-") and 1 <= len(sent["id"]) <= 64
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True, "detail": "applied"}))
        resp = await call
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"id": sent["id"], "name": "set_interval", "ok": True, "detail": "applied"}
        # Stored before the answer: the listing has it at once.
        assert listed(server, dev)["interval_ms"] == 2500
    assert await welcome_interval(server, token) == 2500  # and the next connection is told so
    assert commands_total(server, "set_interval", "ok") == before + 1
    log = server.log_text()
    assert "command sent" in log and f"id={sent['id']}" in log and "command result" in log


async def test_device_refusal_comes_back_with_its_detail_and_changes_nothing(server: Server) -> None:
    dev, token = server.register()
    before = commands_total(server, "set_interval", "failed")
    async with device(server, token) as ws:
        call = asyncio.create_task(command(server, dev, {"name": "set_interval", "args": {"ms": 60000}}))
        sent = await recv_json(ws)
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": False, "detail": "interval too long"}))
        resp = await call
    assert resp.status_code == 200
    assert resp.json() == {"id": sent["id"], "name": "set_interval", "ok": False, "detail": "interval too long"}
    assert listed(server, dev)["interval_ms"] == DEFAULT_INTERVAL
    assert await welcome_interval(server, token) == DEFAULT_INTERVAL
    assert commands_total(server, "set_interval", "failed") == before + 1


async def test_reboot_is_delivered_and_a_result_without_detail_gives_null(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token) as ws:
        call = asyncio.create_task(command(server, dev, {"name": "reboot"}))
        sent = await recv_json(ws)
        assert sent == {"type": "command", "id": sent["id"], "name": "reboot", "args": {}}
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True}))
        resp = await call
    assert resp.status_code == 200
    assert resp.json() == {"id": sent["id"], "name": "reboot", "ok": True, "detail": None}


async def test_each_command_gets_its_own_id_and_results_match_by_id(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token) as ws:
        first = asyncio.create_task(command(server, dev, {"name": "reboot"}))
        one = await recv_json(ws)
        second = asyncio.create_task(command(server, dev, {"name": "set_interval", "args": {"ms": 700}}))
        two = await recv_json(ws)
        assert one["id"] != two["id"]
        # Answered out of order: each caller still gets its own result.
        await ws.send(dumps({"type": "result", "id": two["id"], "ok": True, "detail": "second"}))
        await ws.send(dumps({"type": "result", "id": one["id"], "ok": False, "detail": "first"}))
        a, b = await first, await second
    assert a.json() == {"id": one["id"], "name": "reboot", "ok": False, "detail": "first"}
    assert b.json() == {"id": two["id"], "name": "set_interval", "ok": True, "detail": "second"}


async def test_a_device_is_offline_for_commands_until_its_hello(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token, hello=False) as ws:
        refused = await command(server, dev, {"name": "reboot"}, wait=5)
        assert refused.status_code == 409 and refused.json() == {"detail": "device is offline"}
        with pytest.raises(TimeoutError):  # nothing was sent
            await asyncio.wait_for(ws.recv(), 0.3)
        await hello(ws)
        call = asyncio.create_task(command(server, dev, {"name": "reboot"}, wait=5))
        sent = await recv_json(ws)
        assert sent["type"] == "command" and sent["name"] == "reboot"
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True}))
        assert (await call).status_code == 200


# --- no answer ------------------------------------------------------------------------------------


async def test_no_result_in_time_is_504_and_a_late_success_is_still_stored(server: Server) -> None:
    dev, token = server.register()
    before = commands_total(server, "set_interval", "timeout")
    async with device(server, token) as ws:
        call = asyncio.create_task(command(server, dev, {"name": "set_interval", "args": {"ms": 4200}}, wait=0.5))
        sent = await recv_json(ws)
        resp = await call
        assert resp.status_code == 504
        assert resp.json() == {"detail": "no result from the device within 0.5 s"}
        assert listed(server, dev)["interval_ms"] == DEFAULT_INTERVAL
        # The device applied it after all: the server records it, so the next welcome agrees.
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True}))
        await eventually(lambda: listed(server, dev)["interval_ms"] == 4200, 5, "interval 4200 stored")
        assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
    assert commands_total(server, "set_interval", "timeout") == before + 1


async def test_connection_ending_before_the_answer_is_503(server: Server) -> None:
    dev, token = server.register()
    before = commands_total(server, "reboot", "lost")
    async with device(server, token) as ws:
        call = asyncio.create_task(command(server, dev, {"name": "reboot"}, wait=30))
        sent = await recv_json(ws)
        assert sent["name"] == "reboot"
        started = asyncio.get_running_loop().time()
    resp = await call  # the device closed without answering
    assert resp.status_code == 503
    assert "connection ended before it answered" in resp.json()["detail"]
    assert asyncio.get_running_loop().time() - started < 10  # told at once, not after wait
    assert commands_total(server, "reboot", "lost") == before + 1


async def test_replaced_connection_fails_its_pending_commands(server: Server) -> None:
    dev, token = server.register()
    async with device(server, token) as old:
        call = asyncio.create_task(command(server, dev, {"name": "reboot"}, wait=30))
        assert (await recv_json(old))["name"] == "reboot"
        async with device(server, token) as new:
            resp = await call
            assert resp.status_code == 503
            # The command is not sent again on the newer connection.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(new.recv(), 0.3)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(old.recv(), 5)


# --- offline --------------------------------------------------------------------------------------


async def test_reboot_of_an_offline_device_is_409(server: Server) -> None:
    dev, _ = server.register()
    before = commands_total(server, "reboot", "offline")
    resp = await command(server, dev, {"name": "reboot"})
    assert resp.status_code == 409 and resp.json() == {"detail": "device is offline"}
    assert commands_total(server, "reboot", "offline") == before + 1


async def test_set_interval_of_an_offline_device_waits_for_its_next_welcome(server: Server) -> None:
    dev, token = server.register()
    before = commands_total(server, "set_interval", "queued")
    resp = await command(server, dev, {"name": "set_interval", "args": {"ms": 30000}})
    assert resp.status_code == 202, resp.text
    body = resp.json()
    assert body["id"] is None and body["name"] == "set_interval" and body["status"] == "queued"
    assert "offline" in body["detail"] and "30000 ms in welcome" in body["detail"]
    assert listed(server, dev)["interval_ms"] == 30000
    async with device(server, token, hello=False) as ws:
        assert (await hello(ws))["interval"] == 30000
        with pytest.raises(TimeoutError):  # no command follows: the welcome said it all
            await asyncio.wait_for(ws.recv(), 0.3)
    assert await welcome_interval(server, token) == 30000  # it stays the device's interval
    assert commands_total(server, "set_interval", "queued") == before + 1


async def test_a_whole_number_written_with_a_fraction_is_an_integer(server: Server) -> None:
    """JSON Schema counts 30000.0 as an integer, so the OpenAPI document allows it: it is taken."""
    dev, _ = server.register()
    resp = await command(server, dev, {"name": "set_interval", "args": {"ms": 30000.0}})
    assert resp.status_code == 202, resp.text
    assert listed(server, dev)["interval_ms"] == 30000


# --- wait=0 ---------------------------------------------------------------------------------------


async def test_wait_zero_answers_202_at_once_and_the_result_still_counts(server: Server) -> None:
    dev, token = server.register()
    before = commands_total(server, "set_interval", "sent")
    async with device(server, token) as ws:
        resp = await command(server, dev, {"name": "set_interval", "args": {"ms": 1500}}, wait=0)
        assert resp.status_code == 202
        body = resp.json()
        assert body["name"] == "set_interval" and body["status"] == "sent" and body["id"].startswith("c-")
        sent = await recv_json(ws)
        assert sent["id"] == body["id"] and sent["args"] == {"ms": 1500}
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True}))
        await eventually(lambda: listed(server, dev)["interval_ms"] == 1500, 5, "interval 1500 stored")
    assert commands_total(server, "set_interval", "sent") == before + 1


# --- results the server did not ask for -----------------------------------------------------------


async def test_result_with_unknown_id_is_logged_and_ignored(server: Server) -> None:
    dev, token = server.register()
    t0 = now_ms()
    async with device(server, token) as ws:
        await ws.send(dumps({"type": "result", "id": "c-never-sent", "ok": True, "detail": "hm"}))
        # No error comes back, and the connection carries on: the next answer is the batch's ack.
        assert await send_batch(ws, 1, [{"ts": t0 + 5, "values": {"t": 1.0}}]) == {"type": "ack", "seq": 1}
        # A result answered twice: the second one is unknown too.
        call = asyncio.create_task(command(server, dev, {"name": "reboot"}))
        sent = await recv_json(ws)
        for _ in range(2):
            await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True}))
        assert (await call).json()["ok"] is True
        assert await send_batch(ws, 2, [{"ts": t0 + 6, "values": {"t": 2.0}}]) == {"type": "ack", "seq": 2}
    await eventually(
        lambda: server.log_text().count("result for an unknown command id") >= 2, 5, "both unknown results logged"
    )
    assert "c-never-sent" in server.log_text()
    assert server.telemetry(dev)["t"] == [{"ts": t0 + 6, "value": 2.0}, {"ts": t0 + 5, "value": 1.0}]


# --- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body, wait, detail",
    [
        ({"name": "launch"}, None, "name: unknown command 'launch'; known: reboot, set_interval"),
        ({"name": "set_interval"}, None, "args.ms: required integer, the sampling interval in ms (100..86400000)"),
        ({"name": "set_interval", "args": {"ms": "5000"}}, None, "args.ms: required integer"),
        ({"name": "set_interval", "args": {"ms": 2.5}}, None, "args.ms: required integer"),
        ({"name": "set_interval", "args": {"ms": 99}}, None, "args.ms: 99 is out of range 100..86400000"),
        ({"name": "set_interval", "args": {"ms": 86_400_001}}, None, "args.ms: 86400001 is out of range"),
        ({"name": "set_interval", "args": {"ms": 900, "x": 1}}, None, "args: unknown argument(s) x"),
        ({"name": "reboot", "args": {"now": True}}, None, "args: reboot takes no arguments (got now)"),
        ({"name": "reboot", "args": [1]}, None, "args: Input should be a valid dictionary"),
        ({"name": 7}, None, "name: Input should be a valid string"),
        ({"args": {}}, None, "name: Field required"),
        ({"name": "reboot", "priority": 1}, None, "priority: Extra inputs are not permitted"),
        ({"name": "reboot"}, 61, "wait: Input should be less than or equal to 60"),
        ({"name": "reboot"}, -1, "wait: Input should be greater than or equal to 0"),
        ({"name": "reboot"}, "soon", "wait: Input should be a valid number"),
    ],
)
async def test_bad_commands_are_400_with_a_detail(server: Server, body: Any, wait: Any, detail: str) -> None:
    dev, token = server.register()
    async with device(server, token) as ws:
        resp = await command(server, dev, body, wait=wait)
        assert resp.status_code == 400, resp.text
        assert isinstance(resp.json()["detail"], str) and resp.json()["detail"].startswith(detail)
        with pytest.raises(TimeoutError):  # nothing was sent
            await asyncio.wait_for(ws.recv(), 0.2)
    assert listed(server, dev)["interval_ms"] == DEFAULT_INTERVAL


async def test_unknown_device_is_404_and_admin_key_is_required(server: Server) -> None:
    for body in ({"name": "reboot"}, {"name": "set_interval", "args": {"ms": 1000}}):
        resp = await command(server, "no-such-device", body)
        assert resp.status_code == 404 and resp.json() == {"detail": "no device 'no-such-device'"}
    assert "no-such-device" not in {d["id"] for d in server.get("/api/devices").json()}
    dev, _ = server.register()
    missing = await command(server, dev, {"name": "set_interval", "args": {"ms": 1000}}, headers={})
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = await command(server, dev, {"name": "reboot"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403 and wrong.json() == {"detail": "wrong admin key"}
    # Credentials come first: a bad command without them is 401, not 400.
    assert (await command(server, dev, {"name": "launch"}, headers={})).status_code == 401
    assert listed(server, dev)["interval_ms"] == DEFAULT_INTERVAL


# --- command line ---------------------------------------------------------------------------------


async def run_cli(server: Server, *args: str) -> Any:
    return await asyncio.to_thread(cli, *args, "--server", server.base, "--admin-key", server.admin_key)


async def test_cli_set_interval_and_reboot(server: Server) -> None:
    dev, token = server.register()
    offline = await run_cli(server, "device", "set-interval", dev, "3000")
    assert offline.returncode == 0, offline.stderr
    assert (
        offline.stdout.strip() == f"{dev}: device is offline; it gets interval 3000 ms in welcome when it next connects"
    )
    refused = await run_cli(server, "device", "reboot", dev)
    assert refused.returncode == 1 and "409: device is offline" in refused.stderr
    bad = await run_cli(server, "device", "set-interval", dev, "5")
    assert bad.returncode == 1 and "400: args.ms: 5 is out of range 100..86400000" in bad.stderr
    unknown = await run_cli(server, "device", "reboot", "no-such-device")
    assert unknown.returncode == 1 and "404: no device 'no-such-device'" in unknown.stderr

    async with device(server, token, hello=False) as ws:
        assert (await hello(ws))["interval"] == 3000
        done = asyncio.create_task(run_cli(server, "device", "set-interval", dev, "2000"))
        sent = await recv_json(ws, timeout=30)
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": True, "detail": "applied"}))
        out = await done
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"{dev}: set_interval done ({sent['id']}): applied"

        failed = asyncio.create_task(run_cli(server, "device", "reboot", dev))
        sent = await recv_json(ws, timeout=30)
        await ws.send(dumps({"type": "result", "id": sent["id"], "ok": False, "detail": "battery low"}))
        out = await failed
        assert out.returncode == 1 and f"{dev}: reboot failed ({sent['id']}): battery low" in out.stderr

        silent = await run_cli(server, "device", "reboot", dev, "--wait", "0.5")
        assert silent.returncode == 1 and "504: no result from the device within 0.5 s" in silent.stderr
        assert (await recv_json(ws))["name"] == "reboot"

        nowait = await run_cli(server, "device", "reboot", dev, "--wait", "0")
        assert nowait.returncode == 0, nowait.stderr
        sent = await recv_json(ws)
        assert nowait.stdout.strip() == f"{dev}: reboot sent as {sent['id']}; not waiting for the result"
    assert listed(server, dev)["interval_ms"] == 2000
