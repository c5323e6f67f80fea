"""Storage outages under a running server, for real: a private PostgreSQL stopped and started
again, and a full disk. Readiness says so with the cause, liveness stays up but no longer says
"ok", devices and HTTP clients get the documented answers (503 with Retry-After, close 1013 with
when to come back), the log stays short and free of tracebacks, and everything works again
once storage does."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from tests.storage.test_faults import _fill, _readings, small_disk  # noqa: F401 (a fixture)
from tests.support.clients import device, live, now_ms, recv_json, send_batch
from tests.support.postgres import PrivatePostgres, private_postgres  # noqa: F401 (a fixture)
from tests.support.server import Server
from tests.support.waiting import eventually, wait_until

# Short waits, so the test sees the hint, the probe and the recovery in seconds.
FAST = {"storage_retry_s": "2", "storage_retry_max_s": "4", "storage_probe_s": "0.5", "storage_probe_timeout_s": "3"}
HINT = re.compile(r"^storage unavailable; retry in (\d+) s$")


def readiness(server: Server) -> tuple[int, dict[str, Any], str | None]:
    resp = server.get("/readyz")
    return resp.status_code, resp.json(), resp.headers.get("Retry-After")


def assert_not_ready(server: Server, cause: str) -> None:
    status, body, retry_after = readiness(server)
    assert (status, body["status"], body["cause"]) == (503, "not ready", cause), body
    assert retry_after is not None and 1 <= int(retry_after) <= 4
    head = httpx.head(server.base + "/readyz", timeout=10)
    assert head.status_code == 503 and head.headers["Retry-After"].isdigit()
    live = server.get("/healthz")
    assert live.status_code == 200  # liveness: a restart would not bring storage back
    assert live.json()["status"] == "storage failing" and live.json()["storage"]["cause"] == cause


def wait_ready(server: Server, timeout: float = 30) -> None:
    wait_until(lambda: readiness(server)[0] == 200, timeout, "/readyz 200 again")
    body = readiness(server)[1]
    assert body["status"] == "ready" and body["storage"]["ready"] is True
    assert server.get("/healthz").json()["status"] == "ok"


def assert_quiet_log(server: Server, most: int) -> None:
    """No traceback, no "Exception in ASGI application", and at most `most` warning or error lines
    (uvicorn's line for every refused handshake aside: refusals of any kind log it)."""
    lines = server.log_lines()
    text = "\n".join(lines)
    assert "Traceback" not in text and "Exception in ASGI application" not in text, text[-3000:]
    loud = [
        line for line in lines if re.search(r" (warning|error) ", line) and "without completing handshake" not in line
    ]
    assert len(loud) <= most, "\n".join(loud)
    assert len(lines) <= 30, text


def batch(start: int, n: int = 5) -> list[dict[str, Any]]:
    return [{"ts": start + i, "values": {"t": float(i)}} for i in range(n)]


async def closed_for_storage(ws: Any, seq: int, data: list[dict[str, Any]]) -> int:
    """Send a batch the server cannot store; the close's hint in seconds (1013, neither ack nor error)."""
    await ws.send(_json({"type": "telemetry", "seq": seq, "data": data}))
    with pytest.raises(ConnectionClosed) as info:
        while True:
            answer = await recv_json(ws, 30)
            assert answer["type"] == "ack", answer  # acks of earlier batches only
    rcvd = info.value.rcvd
    assert rcvd is not None and rcvd.code == 1013, rcvd
    hint = HINT.match(rcvd.reason)
    assert hint is not None, rcvd.reason
    return int(hint.group(1))


def test_readiness_finds_postgresql_gone_from_an_idle_server_and_back(
    private_postgres: PrivatePostgres,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    pg = private_postgres
    server = Server(tmp_path, database_url=pg.url, settings=dict(FAST)).start()
    request.addfinalizer(server.stop)
    assert readiness(server)[0] == 200
    pg.stop()  # nothing is committed, yet readiness finds the database gone (a probe)
    wait_until(lambda: readiness(server)[0] == 503, 10, "/readyz 503 on an idle server")
    assert_not_ready(server, "database unreachable")
    pg.start()
    wait_ready(server)
    assert server.metric_value("pulsewire_storage_failures_total", 'cause="database unreachable"') >= 1
    assert_quiet_log(server, most=1)


def test_a_database_that_stops_answering_is_found_within_the_probe_timeout(
    private_postgres: PrivatePostgres,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    pg = private_postgres
    server = Server(tmp_path, database_url=pg.url, settings=dict(FAST)).start()
    request.addfinalizer(server.stop)
    assert readiness(server)[0] == 200
    frozen = pg.pids()
    for pid in frozen:  # a database host that hangs rather than refuses
        os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(1)  # past storage_probe_s
        started = time.monotonic()
        status, body, _ = readiness(server)
        assert time.monotonic() - started < 3 + 1.5  # storage_probe_timeout_s, and no longer
        assert (status, body["cause"]) == (503, "storage not answering")
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    wait_ready(server)


def test_a_postgresql_outage_answers_devices_and_http_clients_with_503_and_1013(
    private_postgres: PrivatePostgres,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    pg = private_postgres
    server = Server(tmp_path, database_url=pg.url, settings=dict(FAST)).start()
    request.addfinalizer(server.stop)
    (dev, token), (_, other_token) = server.register("steady"), server.register("late")

    async def outage() -> None:
        base = now_ms()
        async with device(server, token) as ws:
            assert (await send_batch(ws, 1, batch(base)))["type"] == "ack"
            await asyncio.to_thread(pg.stop)
            with pytest.raises(websockets.InvalidStatus) as refused:  # a handshake: the token cannot be checked
                async with device(server, other_token):
                    pass
            response = refused.value.response
            assert response.status_code == 503 and 1 <= int(response.headers["Retry-After"]) <= 4
            assert b"storage unavailable (database unreachable); retry in " in response.body
            listed = await asyncio.to_thread(server.get, "/api/devices")
            assert listed.status_code == 503 and 1 <= int(listed.headers["Retry-After"]) <= 4
            assert listed.json()["detail"].startswith("storage unavailable (database unreachable); retry in ")
            async with live(server) as dashboard:  # its snapshot cannot be read
                with pytest.raises(ConnectionClosed) as closed:
                    await dashboard.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
            assert HINT.match(closed.value.rcvd.reason)
            hint = await closed_for_storage(ws, 2, batch(base + 100))  # the connected device
            assert 1 <= hint <= 4
        await asyncio.to_thread(pg.start)
        await eventually(lambda: server.get("/api/devices").status_code == 200, 30, "the device list again")
        async with device(server, token) as ws:  # the device comes back and resends
            assert (await send_batch(ws, 1, batch(base + 100)))["type"] == "ack"

    asyncio.run(outage())
    assert len(server.telemetry(dev, limit=100)["t"]) == 10  # each reading once
    for where in ("device", "handshake", "http", "live"):
        assert server.metric_value("pulsewire_storage_refusals_total", f'where="{where}"') >= 1
    assert server.get("/readyz").status_code == 200
    # One line per cause per minute, and one when storage came back.
    assert_quiet_log(server, most=1)
    assert sum('"storage available again"' in line for line in server.log_lines()) == 1


def _logged_at(line: str) -> float:
    """Seconds since the epoch of a text log line's stamp (2026-11-30T11:03:23.254Z ...)."""
    stamp = datetime.strptime(line.split(" ", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    return stamp.timestamp()


def test_simulated_devices_wait_as_long_as_the_server_asks(
    private_postgres: PrivatePostgres,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    pg = private_postgres
    retry = {"storage_retry_s": "4", "storage_retry_max_s": "6", "sample_interval_ms": "200"}
    server = Server(tmp_path, database_url=pg.url, settings=retry).start()
    request.addfinalizer(server.stop)
    out_path = tmp_path / "simulate.log"
    command = [
        sys.executable,
        "-m",
        "pulsewire",
        "simulate",
        "1",
        "--server",
        server.base,
        "--admin-key",
        server.admin_key,
    ]
    with open(out_path, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "temperature" in server.get("/api/devices/sim-1/latest").text, 20, "sim-1 streaming")
        pg.stop()

        def waits() -> list[str]:  # told to wait after a close, or reconnecting after a refusal or a close
            text = out_path.read_text()
            return [
                line for line in text.splitlines() if "simulated device told to wait" in line or "reconnecting" in line
            ]

        closed = wait_until(waits, 20, "the device closed for storage trouble")[0]
        waited = float(re.search(r"in_s=([\d.]+)", closed).group(1))  # type: ignore[union-attr]
        hint = re.search(r"retry in (\d+) s", closed)  # in the close's reason, when the error is logged
        assert 2 <= waited <= 6 and (hint is None or waited >= int(hint.group(1)))
        # The next try gets 503 with Retry-After (the token cannot be checked): waited for too.
        again = wait_until(lambda: waits()[1:], waited + 10, "the next try")[0]
        assert "HTTP 503" in again
        assert _logged_at(again) - _logged_at(closed) >= waited - 0.05
        assert float(re.search(r"in_s=([\d.]+)", again).group(1)) >= 1  # type: ignore[union-attr]
        pg.start()
        before = len(server.telemetry("sim-1", keys="temperature", limit=100_000)["temperature"])
        wait_until(
            lambda: len(server.telemetry("sim-1", keys="temperature", limit=100_000)["temperature"]) > before + 3,
            30,
            "readings again",
        )
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)


def test_a_full_disk_makes_the_server_not_ready_until_a_commit_succeeds_again(
    small_disk: Path,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    db = small_disk / "pulsewire.db"
    server = Server(tmp_path / "server", database_url=f"sqlite:///{db}", settings=dict(FAST)).start()
    request.addfinalizer(server.stop)
    dev, token = server.register("filled")
    start = now_ms() - 3_600_000

    async def full_disk() -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]]]:
        acked: list[list[dict[str, Any]]] = []
        async with device(server, token) as ws:
            acked.append(_readings(start, 200))
            assert (await send_batch(ws, 1, acked[0]))["type"] == "ack"
            with sqlite3.connect(db) as other:  # the WAL emptied: every commit from here on needs new space
                other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            _fill(small_disk, leave=0)
            for seq in range(2, 200):
                data = _readings(start + seq * 200_000, 200)
                await ws.send(_json({"type": "telemetry", "seq": seq, "data": data}))
                try:
                    answer = await recv_json(ws, 30)
                except ConnectionClosed as exc:
                    assert exc.rcvd is not None and exc.rcvd.code == 1013 and HINT.match(exc.rcvd.reason)
                    return acked, data
                assert answer["type"] == "ack", answer
                acked.append(data)
        raise AssertionError("the disk never filled up")

    acked, refused = asyncio.run(full_disk())
    assert_not_ready(server, "disk full")
    # A probe reads, and a read cannot show that commits work again: still not ready.
    time.sleep(1)  # past storage_probe_s: the next check probes
    assert_not_ready(server, "disk full")

    (small_disk / "filler").unlink()  # space returns; the device comes back and resends

    async def resend() -> None:
        async with device(server, token) as ws:
            assert (await send_batch(ws, 1, refused))["type"] == "ack"

    asyncio.run(resend())
    wait_ready(server, timeout=5)
    stored = server.telemetry(dev, keys="m1", limit=100_000)["m1"]
    assert len(stored) == 200 * (len(acked) + 1)
    assert_quiet_log(server, most=1)


def _json(data: Any) -> str:
    return orjson.dumps(data).decode()
