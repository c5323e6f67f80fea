"""Peer: the FastAPI WebSocket server a tutorial would write: one INSERT and commit per reading,
a plain list of live sockets, same hello/telemetry/ack subset. Run: uvicorn naive_fastapi:app --port 18082
(the database file: $NAIVE_PEER_DB, default /tmp/naive_peer.db)."""

import json
import os
import time

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from sqlalchemy import create_engine, text

engine = create_engine("sqlite:///" + os.environ.get("NAIVE_PEER_DB", "/tmp/naive_peer.db"))
with engine.begin() as c:
    c.execute(text("DROP TABLE IF EXISTS readings"))
    c.execute(
        text(
            "CREATE TABLE readings (device TEXT, metric TEXT, ts INTEGER, value REAL, PRIMARY KEY (device, metric, ts))"
        )
    )
app = FastAPI()
live: list[WebSocket] = []


@app.websocket("/ws/live")
async def ws_live(ws: WebSocket):
    await ws.accept()
    live.append(ws)
    await ws.send_text(json.dumps({"type": "snapshot", "devices": []}))
    try:
        while True:
            await ws.receive_text()
    except WebSocketDisconnect:
        live.remove(ws)


@app.websocket("/ws/device")
async def ws_device(ws: WebSocket):
    await ws.accept(subprotocol="pulsewire.v1")
    device = (ws.headers.get("authorization") or "anon")[-12:]
    try:
        while True:
            msg = json.loads(await ws.receive_text())
            if msg["type"] == "hello":
                await ws.send_text(json.dumps({"type": "welcome", "time": int(time.time() * 1000), "interval": 1000}))
                continue
            for r in msg["data"]:
                for k, v in r["values"].items():
                    with engine.begin() as c:
                        c.execute(
                            text("INSERT OR IGNORE INTO readings VALUES (:d,:m,:t,:v)"),
                            dict(d=device, m=k, t=r["ts"], v=v),
                        )
            out = json.dumps({"type": "telemetry", "device": device, "data": msg["data"]})
            for c in list(live):
                await c.send_text(out)
            await ws.send_text(json.dumps({"type": "ack", "seq": msg["seq"]}))
    except WebSocketDisconnect:
        pass
