"""Rollouts end to end against the real server on SQLite and PostgreSQL: plain WebSocket clients play
the boards (docs/protocol.md section 5): they get `update`, fetch the files with their token,
answer `result`, and come back with `boot` in their hello. Progress over HTTP and on /ws/live."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.clients import device, dumps, live, live_until, now_ms, recv_json, send_batch
from tests.support.releases import OLD, SESSION, new_release, take_update
from tests.support.server import Server, start_server
from tests.support.waiting import eventually

pytestmark = pytest.mark.anyio


async def until(check: Any, what: str) -> Any:
    return await eventually(check, 10, what)


def start(server: Server, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(server.base + "/api/rollouts", json=body, headers=server.admin(), timeout=30)


def status(server: Server, rollout_id: str) -> dict[str, Any]:
    resp = server.get(f"/api/rollouts/{rollout_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def steps(server: Server, rollout_id: str) -> dict[str, str]:
    return {d["device"]: d["step"] for d in status(server, rollout_id)["devices"]}


def control(server: Server, rollout_id: str, action: str) -> httpx.Response:
    return httpx.post(f"{server.base}/api/rollouts/{rollout_id}/{action}", headers=server.admin(), timeout=30)


@contextlib.asynccontextmanager
async def board(
    server: Server, token: str, fw: str, boot: dict[str, Any] | None = None
) -> AsyncIterator[ClientConnection]:
    """A board connected and welcomed, having said hello with `fw` (and `boot`, when given)."""
    hello: dict[str, Any] = {"type": "hello", "fw": fw, "uptime": 5}
    if boot is not None:
        hello["boot"] = boot
    async with device(server, token, hello=False) as ws:
        await ws.send(dumps(hello))
        assert (await recv_json(ws))["type"] == "welcome"
        yield ws


async def quiet(ws: ClientConnection, seconds: float) -> None:
    """Nothing arrives on `ws` for `seconds`."""
    with pytest.raises(TimeoutError):
        msg = await recv_json(ws, seconds)
        raise AssertionError(f"unexpected message: {msg}")


async def test_online_devices_update_reboot_on_trial_and_are_confirmed(server: Server) -> None:
    v = new_release(server)
    devs = [server.register() for _ in range(2)]
    async with live(server) as watcher, contextlib.AsyncExitStack() as stack:
        boards = [await stack.enter_async_context(board(server, token, OLD)) for _, token in devs]
        resp = start(server, {"version": v, "devices": [d for d, _ in devs]})
        assert resp.status_code == 201, resp.text
        rid = resp.json()["id"]
        assert resp.json()["state"] == "running" and resp.json()["canary_percent"] == 0
        for ws, (_, token) in zip(boards, devs, strict=True):
            cmd = await take_update(server, ws, token, v)
            main = f'FW_VERSION = "{v}"\n'.encode()
            assert cmd["args"]["rollout"] == rid
            assert sorted(cmd["args"]["files"], key=lambda f: f["path"]) == [
                {"path": "main.py", "sha256": hashlib.sha256(main).hexdigest(), "size": len(main)},
                {"path": "session.mpy", "sha256": hashlib.sha256(SESSION).hexdigest(), "size": len(SESSION)},
            ]
            await ws.send(dumps({"type": "result", "id": cmd["id"], "ok": True, "detail": "staged"}))
        await until(lambda: set(steps(server, rid).values()) == {"installed"}, "step")
        msg = await live_until(
            watcher, lambda m: m["type"] == "rollout" and m["device"] and m["device"]["step"] == "installed"
        )
        assert msg["rollout"]["id"] == rid and msg["rollout"]["version"] == v
    # Each board reboots into the new version on trial, then streams: confirmed.
    for dev, token in devs:
        async with board(server, token, v, {"state": "trial", "previous": OLD}) as ws:
            await until(lambda dev=dev: steps(server, rid)[dev] == "trial", "step")
            assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
            await until(lambda dev=dev: steps(server, rid)[dev] == "confirmed", "step")
    done = status(server, rid)
    assert done["state"] == "finished" and done["counts"]["confirmed"] == 2
    fw = {d["id"]: d["fw"] for d in server.get("/api/devices").json()}
    assert all(fw[d] == v for d, _ in devs)  # the firmware version of each device, as its hello said


async def test_an_offline_device_gets_its_update_after_its_next_hello(server: Server) -> None:
    v = new_release(server)
    dev, token = server.register()
    resp = start(server, {"version": v, "devices": [dev]})
    assert resp.status_code == 201
    rid = resp.json()["id"]
    assert steps(server, rid) == {dev: "queued"}
    async with board(server, token, OLD) as ws:
        cmd = await take_update(server, ws, token, v)
        assert steps(server, rid) == {dev: "downloading"}
        await ws.send(dumps({"type": "result", "id": cmd["id"], "ok": False, "detail": "no space left on flash"}))
        await until(lambda: steps(server, rid) == {dev: "failed"}, "step")
    out = status(server, rid)
    assert out["devices"][0]["reason"] == "no space left on flash" and out["state"] == "finished"


async def test_a_cut_mid_download_gets_the_update_again_at_the_next_hello(server: Server) -> None:
    v = new_release(server)
    dev, token = server.register()
    async with board(server, token, OLD) as ws:
        rid = start(server, {"version": v, "devices": [dev]}).json()["id"]
        await take_update(server, ws, token, v)
    # The board lost power before it staged the release: it comes back on its old version.
    async with board(server, token, OLD) as ws:
        cmd = await take_update(server, ws, token, v)
        out = status(server, rid)["devices"][0]
        assert out["step"] == "downloading" and out["attempts"] == 2
        await ws.send(dumps({"type": "result", "id": cmd["id"], "ok": True}))
        await until(lambda: steps(server, rid) == {dev: "installed"}, "step")
    async with board(server, token, v, {"state": "confirmed", "previous": OLD}):
        await until(lambda: steps(server, rid) == {dev: "confirmed"}, "step")


async def test_ten_boards_twenty_percent_canary_rolls_back_and_the_other_eight_never_get_update(server: Server) -> None:
    v = new_release(server)
    prefix = "fleet-" + secrets.token_hex(3)
    ids = [f"{prefix}-{i:02d}" for i in range(10)]
    tokens = dict(zip(ids, server.register_many(ids), strict=True))
    async with live(server) as watcher, contextlib.AsyncExitStack() as stack:
        boards = {d: await stack.enter_async_context(board(server, tokens[d], OLD)) for d in ids}
        resp = start(server, {"version": v, "devices": ids, "canary_percent": 20})
        assert resp.status_code == 201, resp.text
        rid = resp.json()["id"]
        canaries = [d["device"] for d in resp.json()["devices"] if d["canary"]]
        assert canaries == ids[:2]
        rest = ids[2:]
        cmds = {d: await take_update(server, boards[d], tokens[d], v) for d in canaries}
        for d in canaries:
            await boards[d].send(dumps({"type": "result", "id": cmds[d]["id"], "ok": True}))
        await until(lambda: {steps(server, rid)[d] for d in canaries} == {"installed"}, "step")
        # The first canary comes up fine; the second cannot import the new version and goes back.
        await stack.enter_async_context(board(server, tokens[canaries[0]], v, {"state": "confirmed", "previous": OLD}))
        why = "ImportError: no module named 'sensors'"
        back = {"state": "confirmed", "rolled_back_from": v, "reason": why}
        await stack.enter_async_context(board(server, tokens[canaries[1]], OLD, back))
        halted = await live_until(watcher, lambda m: m["type"] == "rollout" and m["rollout"]["state"] == "halted", 10)
        assert halted["rollout"]["reason"] == f"canary {canaries[1]} rolled_back: {why}"
        out = status(server, rid)
        assert out["state"] == "halted"
        assert {d["device"]: (d["step"], d["reason"]) for d in out["devices"] if d["canary"]} == {
            canaries[0]: ("confirmed", None),
            canaries[1]: ("rolled_back", why),
        }
        assert out["counts"]["queued"] == 8
        await asyncio.gather(*(quiet(boards[d], 1.5) for d in rest))  # never sent `update`
        # Nor when they reconnect while it is halted.
        async with board(server, tokens[rest[0]], OLD) as again:
            await quiet(again, 1)
        assert all(steps(server, rid)[d] == "queued" for d in rest)
        aborted = control(server, rid, "abort")
        assert aborted.status_code == 200 and aborted.json()["state"] == "aborted"


async def test_pause_resume_abort_and_a_release_in_use(server: Server) -> None:
    v = new_release(server)
    dev, token = server.register()
    rid = start(server, {"version": v, "devices": [dev]}).json()["id"]
    busy = start(server, {"version": v, "devices": [dev]})
    assert busy.status_code == 409 and dev in busy.json()["detail"] and rid in busy.json()["detail"]
    in_use = httpx.delete(f"{server.base}/api/releases/{v}", headers=server.admin(), timeout=10)
    assert in_use.status_code == 409 and rid in in_use.json()["detail"]
    assert control(server, rid, "pause").json()["state"] == "paused"
    assert control(server, rid, "pause").status_code == 409
    async with board(server, token, OLD) as ws:
        await quiet(ws, 1)  # paused: no update
        assert control(server, rid, "resume").json()["state"] == "running"
        await take_update(server, ws, token, v)  # resumed: sent at once to the online device
    out = control(server, rid, "abort")
    assert out.status_code == 200 and out.json()["state"] == "aborted"
    assert control(server, rid, "abort").status_code == 409
    assert control(server, rid, "resume").status_code == 409
    assert control(server, "ro_nothere", "pause").status_code == 404
    listed = server.get("/api/rollouts", params={"last": 50}).json()
    assert rid in {r["id"] for r in listed} and "devices" not in listed[0]
    assert httpx.delete(f"{server.base}/api/releases/{v}", headers=server.admin(), timeout=10).status_code == 200
    assert status(server, rid)["version"] == v  # the history outlives the release


@pytest.mark.parametrize(
    "body, status_code, detail",
    [
        ({"version": "0.0.none", "devices": "*"}, 400, "version: no release '0.0.none'"),
        ({"version": "{v}", "devices": ["nobody-here"]}, 400, "devices: unknown device(s) nobody-here"),
        ({"version": "{v}", "devices": []}, 400, "devices"),
        ({"version": "{v}", "devices": "all"}, 400, "devices"),
        ({"version": "{v}", "devices": ".."}, 400, "devices"),
        ({"version": "{v}", "devices": "*", "canary_percent": 101}, 400, "canary_percent"),
        ({"version": "../x", "devices": "*"}, 400, "version"),
        ({"version": "{v}", "devices": "*", "extra": 1}, 400, "extra"),
    ],
)
async def test_bad_rollouts_are_refused(server: Server, body: dict[str, Any], status_code: int, detail: str) -> None:
    v = new_release(server)
    if body["version"] == "{v}":
        body = {**body, "version": v}
    resp = start(server, body)
    assert resp.status_code == status_code, resp.text
    assert detail in resp.json()["detail"]


async def test_rollouts_need_the_admin_key(server: Server) -> None:
    v = new_release(server)
    resp = httpx.post(server.base + "/api/rollouts", json={"version": v, "devices": "*"}, timeout=10)
    assert resp.status_code == 401
    assert server.get("/api/rollouts/ro_nothere").status_code == 404


async def test_a_rollout_goes_on_after_a_restart(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    first = start_server(tmp_path, backend, request)
    v = new_release(first)
    dev, token = first.register()
    other, other_token = first.register()
    rid = start(first, {"version": v, "devices": [dev, other]}).json()["id"]
    async with board(first, token, OLD) as ws:
        await take_update(first, ws, token, v)
    first.stop()
    again = Server(tmp_path, database_url=first.database_url, admin_key=first.admin_key, port=first.port).start()
    request.addfinalizer(again.stop)
    assert steps(again, rid) == {dev: "downloading", other: "queued"}
    async with board(again, other_token, OLD) as ws:  # still queued: sent at its first hello after the restart
        cmd = await take_update(again, ws, other_token, v)
        await ws.send(dumps({"type": "result", "id": cmd["id"], "ok": True}))
        await until(lambda: steps(again, rid)[other] == "installed", "installed after the restart")
    async with board(again, token, v, {"state": "confirmed", "previous": OLD}):
        await until(lambda: steps(again, rid)[dev] == "confirmed", "confirmed after the restart")


async def test_live_rollout_messages_follow_the_subscription(server: Server) -> None:
    v = new_release(server)
    dev, token = server.register()
    async with live(server) as mine, live(server) as others:
        await mine.send(dumps({"type": "subscribe", "devices": [dev]}))
        await others.send(dumps({"type": "subscribe", "devices": ["someone-else"]}))
        await asyncio.sleep(0.3)  # the subscriptions are in before anything moves
        async with board(server, token, OLD) as ws:
            rid = start(server, {"version": v, "devices": [dev]}).json()["id"]
            await take_update(server, ws, token, v)
        step = await live_until(mine, lambda m: m["type"] == "rollout" and m["device"] is not None)
        assert step["device"]["device"] == dev and step["device"]["step"] == "downloading"
        assert step["rollout"]["id"] == rid and step["rollout"]["counts"]["downloading"] == 1
        # The rollout's own state goes to every client; a device's steps only to those who follow it.
        started = await live_until(others, lambda m: m["type"] == "rollout")
        assert started["device"] is None and started["rollout"]["state"] == "running"
        assert control(server, rid, "abort").status_code == 200
        aborted = await live_until(others, lambda m: m["type"] == "rollout")
        assert aborted["device"] is None and aborted["rollout"]["state"] == "aborted"


async def test_a_rollback_the_board_names_counts_even_when_its_result_was_lost(server: Server) -> None:
    """Staged, then the connection dropped before the `result`; the trial failed and the board went
    back. Its hello names this rollout (`boot.rollout`): rolled back, not sent the update again."""
    v = new_release(server)
    dev, token = server.register()
    async with board(server, token, OLD) as ws:
        rid = start(server, {"version": v, "devices": [dev]}).json()["id"]
        cmd = await take_update(server, ws, token, v)
    assert steps(server, rid) == {dev: "downloading"}
    why = "no welcome from the server in 3 boots (120 s each)"
    earlier = {"state": "confirmed", "rolled_back_from": v, "reason": "ImportError: earlier", "rollout": "ro_0"}
    async with board(server, token, OLD, earlier) as ws:  # an older rollout's report: sent again
        again = await take_update(server, ws, token, v)
        assert again["args"]["rollout"] == cmd["args"]["rollout"] == rid
    back = {"state": "confirmed", "rolled_back_from": v, "reason": why, "rollout": rid}
    async with board(server, token, OLD, back) as ws:
        await until(lambda: steps(server, rid)[dev] == "rolled_back", "rolled back")
        await quiet(ws, 1)
    done = status(server, rid)
    assert (done["state"], done["devices"][0]["reason"], done["devices"][0]["attempts"]) == ("finished", why, 2)


async def test_a_canary_silent_past_the_step_timeout_fails_halts_the_rollout_and_moves_on_if_it_returns(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request, rollout_step_timeout_s="1")
    v = new_release(server)
    (canary, canary_token), (other, other_token) = sorted(server.register() for _ in range(2))
    async with board(server, canary_token, OLD) as ws, board(server, other_token, OLD) as other_ws:
        rid = start(server, {"version": v, "devices": [canary, other], "canary_percent": 50}).json()["id"]
        await take_update(server, ws, canary_token, v)  # and then not a word
        await until(lambda: status(server, rid)["state"] == "halted", "halted")
        await quiet(other_ws, 1)
    out = status(server, rid)
    why = "no result to the update in 1 s"
    assert out["reason"] == f"canary {canary} failed: {why}"
    assert {d["device"]: (d["step"], d["reason"]) for d in out["devices"]} == {
        canary: ("failed", why),
        other: ("queued", None),
    }
    assert server.metric_value("pulsewire_rollouts", 'state="halted"') == 1
    assert server.metric_value("pulsewire_rollout_devices", 'step="failed"') == 1
    assert server.metric_value("pulsewire_rollout_devices", 'step="queued"') == 1
    assert server.metric_value("pulsewire_rollout_steps_total", 'step="failed"') == 1
    async with board(server, canary_token, v, {"state": "confirmed", "previous": OLD, "rollout": rid}):
        await until(lambda: steps(server, rid)[canary] == "confirmed", "the board's word wins")
    assert status(server, rid)["state"] == "halted"  # the operator decides whether to go on
    assert server.metric_value("pulsewire_rollout_steps_total", 'step="confirmed"') == 1
