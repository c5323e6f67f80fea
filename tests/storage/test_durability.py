"""What was acked stays stored: across a restart, and when storage fails under a connected device."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.clients import device, now_ms, recv_json, send_batch
from tests.support.server import Server, start_server

pytestmark = pytest.mark.anyio


async def test_acked_readings_survive_a_restart(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    server = start_server(tmp_path, backend, request)
    dev, token = server.register()
    base = now_ms()
    async with device(server, token) as ws:
        for seq in range(1, 21):
            batch = [{"ts": base + seq * 10 + i, "values": {"t": float(seq), "ok": True}} for i in range(10)]
            assert (await send_batch(ws, seq, batch))["type"] == "ack"
    server.stop()
    again = Server(tmp_path, database_url=server.database_url, admin_key=server.admin_key, port=server.port).start()
    request.addfinalizer(again.stop)
    counted = again.telemetry(dev, interval=10**13, agg="count")
    assert [p["value"] for p in counted["t"]] == [200] and [p["value"] for p in counted["ok"]] == [200]
    async with device(again, token) as ws:  # the token still works after the restart
        assert (await send_batch(ws, 1, [{"ts": base, "values": {"t": 0.5}}]))["type"] == "ack"


async def test_storage_failure_closes_without_ack_and_the_resend_is_stored(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = start_server(tmp_path, "sqlite", request)
    dev, token = server.register()
    base = now_ms()
    async with device(server, token) as ws:
        assert (await send_batch(ws, 1, [{"ts": base, "values": {"t": 1.0}}]))["type"] == "ack"
        # An operator breaks the schema under the running server.
        with sqlite3.connect(tmp_path / "pulsewire.db") as db:
            db.execute("ALTER TABLE readings RENAME TO readings_away")
        await ws.send('{"type":"telemetry","seq":2,"data":[{"ts":' + str(base + 1) + ',"values":{"t":2.0}}]}')
        with pytest.raises(ConnectionClosed) as info:
            await recv_json(ws)  # neither ack nor error: the device keeps the batch
        assert info.value.rcvd is not None and info.value.rcvd.code == 1013
        assert re.fullmatch(r"storage unavailable; retry in \d+ s", info.value.rcvd.reason)
    assert '"storage unavailable" cause="storage failed" where=commit' in server.log_text()
    assert server.get("/healthz").status_code == 200  # the server stays up
    with sqlite3.connect(tmp_path / "pulsewire.db") as db:
        db.execute("ALTER TABLE readings_away RENAME TO readings")
    async with device(server, token) as ws:  # the device reconnects and resends
        answer = await send_batch(ws, 1, [{"ts": base, "values": {"t": 1.0}}, {"ts": base + 1, "values": {"t": 2.0}}])
        assert answer["type"] == "ack"
    assert [p["value"] for p in server.telemetry(dev, order="asc")["t"]] == [1.0, 2.0]
    assert server.metric_value("pulsewire_storage_errors_total") == 1
