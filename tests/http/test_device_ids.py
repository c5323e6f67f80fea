"""Device ids "." and "..": refused when registered, and removable when an older version stored them.

They would be URL path segments meaning "here" and "up" (/api/devices/.. is /api to every client),
so the server refuses them; devices stored under them before stay reachable as %2E and %2E%2E.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import cli as pulsewire
from tests.support.server import Server, start_server

DOT_IDS = [".", ".."]


def store_as_an_older_version_did(server: Server, device_ids: list[str]) -> None:
    """Rows an older version wrote when it registered these ids (it accepted them)."""
    with sqlite3.connect(server.data_dir / "pulsewire.db", timeout=10) as db:
        for i, device_id in enumerate(device_ids):
            db.execute(
                "INSERT INTO devices (id, name, token_hash, created_at) VALUES (?, ?, ?, ?)",
                (device_id, device_id, f"{i:064x}", int(time.time() * 1000)),
            )


def listed(server: Server) -> list[str]:
    return [d["id"] for d in server.get("/api/devices").json()]


@pytest.fixture
def server(tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path, "sqlite", request)


@pytest.mark.parametrize("device_id", [*DOT_IDS, "", "a/b", "x" * 65])
def test_registering_a_dot_segment_id_is_refused(server: Server, device_id: str) -> None:
    resp = httpx.post(server.base + "/api/devices", json={"id": device_id}, headers=server.admin(), timeout=10)
    assert resp.status_code == 400 and resp.json()["detail"].startswith("id: String should match pattern")
    assert listed(server) == []


@pytest.mark.parametrize("device_id", ["...", ".a", "a.", "-", "_.-"])
def test_ids_with_dots_that_are_not_dot_segments_are_fine(server: Server, device_id: str) -> None:
    server.register(device_id)
    assert listed(server) == [device_id]


def test_the_openapi_schema_states_the_rule(server: Server) -> None:
    """JSON Schema patterns are ECMA-262 regexes, where the lookahead works as it does here."""
    schemas = server.get("/openapi.json").json()["components"]["schemas"]
    assert schemas["DeviceIn"]["properties"]["id"]["pattern"] == r"^(?!\.\.?$)[A-Za-z0-9_.-]{1,64}$"


def test_devices_stored_as_dot_segments_can_be_removed_over_http(server: Server) -> None:
    store_as_an_older_version_did(server, DOT_IDS)
    assert listed(server) == DOT_IDS
    with httpx.Client(base_url=server.base, headers=server.admin(), timeout=10) as client:
        assert client.get("/api/devices/%2E%2E/latest").json() == {}
        assert client.delete("/api/devices/%2E%2E").json() == {"id": "..", "purged_readings": 0}
        assert listed(server) == ["."]
        assert client.delete("/api/devices/%2E", params={"purge": "true"}).json() == {"id": ".", "purged_readings": 0}
    assert listed(server) == []


def test_the_cli_removes_them_and_refuses_to_add_them(server: Server) -> None:
    store_as_an_older_version_did(server, DOT_IDS)
    common = ["--server", server.base, "--admin-key", server.admin_key]
    for device_id in DOT_IDS:
        added = pulsewire("device", "add", device_id, *common)
        assert added.returncode == 2 and f"{device_id!r} is not a device id" in added.stderr
    rotated = pulsewire("device", "rotate", "..", *common)
    assert rotated.returncode == 0 and "new token for ..: pwd_" in rotated.stdout
    for device_id in DOT_IDS:
        removed = pulsewire("device", "remove", device_id, *common)
        assert removed.returncode == 0 and f"removed {device_id}" in removed.stdout
    assert listed(server) == []
