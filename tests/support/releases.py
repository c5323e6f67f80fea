"""Releases for tests of rollouts against real servers: one uploaded, and the `update` command taken
as a board takes it (tests/http/test_rollouts.py, tests/cluster/)."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

from pulsewire.releases.bundle import make, pack
from tests.support.clients import recv_json
from tests.support.server import Server

OLD = "0.3.1"
SESSION = b"M\x06" + secrets.token_bytes(3000)


def new_release(server: Server) -> str:
    v = "1.0." + secrets.token_hex(3)
    data = pack(make(v, [("session.mpy", SESSION), ("main.py", f'FW_VERSION = "{v}"\n'.encode())], 6))
    resp = httpx.post(server.base + "/api/releases", content=data, headers=server.admin(), timeout=30)
    assert resp.status_code == 201, resp.text
    return v


async def take_update(server: Server, ws: ClientConnection, token: str, v: str) -> dict[str, Any]:
    """Receive the `update` command and download every file it lists, as a board does, checking each sha256."""
    cmd = await recv_json(ws, 10)
    assert cmd["type"] == "command" and cmd["name"] == "update", cmd
    args = cmd["args"]
    assert args["version"] == v and args["base"] == f"/api/releases/{v}/files/"
    async with httpx.AsyncClient(base_url=server.base, headers={"Authorization": f"Bearer {token}"}) as http:
        for f in args["files"]:
            got = await http.get(args["base"] + f["path"], headers={"Range": f"bytes=0-{f['size'] - 1}"})
            assert got.status_code == 206 and hashlib.sha256(got.content).hexdigest() == f["sha256"]
    return cmd  # type: ignore[no-any-return]
