"""The OpenAPI document says what the server does: schemathesis (`--checks all`) against a real server.

Every status a route answers is documented, every request the document allows is taken, every
request it forbids is refused, OPTIONS and 405 carry `Allow`. The run is bounded and seeded.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pulsewire.releases.bundle import make, pack
from tests.http.openapi_rules import A_RELEASE
from tests.support.clients import device, now_ms, send_batch
from tests.support.env import ROOT
from tests.support.server import Server, start_server

SEED = "20261130"
EXAMPLES = "25"  # per operation and phase: about 15 s for the whole API on this machine
RUN_TIMEOUT_S = 120
HOOKS = "tests.http.openapi_rules"  # imported by the schemathesis process, not this one


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    # With a read key, the read routes refuse a request without credentials too (checked: ignored_auth).
    served = start_server(tmp_path_factory.mktemp("openapi-conformance"), "sqlite", request, read_key="pwr-conformance")
    _, token = served.register("conformance-1")  # a device the generated requests can reach
    asyncio.run(_fire_alert_1(served, token))  # and an alert (id 1, the least id) to acknowledge
    release = pack(make(A_RELEASE, [("main.py", b'FW_VERSION = "1.0.0-conformance"\n')]))  # to roll out
    stored = httpx.post(served.base + "/api/releases", content=release, headers=served.admin(), timeout=10)
    assert stored.status_code == 201, stored.text
    return served


@pytest.fixture(scope="module")
def rollout_id(server: Server) -> str:
    """A rollout of the fixture's release, for the generated requests to read, pause, resume and abort."""
    body = {"version": A_RELEASE, "devices": ["conformance-1"]}
    started = httpx.post(server.base + "/api/rollouts", json=body, headers=server.admin(), timeout=10)
    assert started.status_code == 201, started.text
    return str(started.json()["id"])


async def _fire_alert_1(server: Server, token: str) -> None:
    rule = {"name": "hot", "kind": "threshold", "device": "conformance-1", "metric": "t", "op": ">", "value": 0}
    made = httpx.post(server.base + "/api/rules", json={**rule, "severity": "info"}, headers=server.admin())
    assert made.status_code == 201, made.text
    async with device(server, token) as ws:
        assert (await send_batch(ws, 1, [{"ts": now_ms(), "values": {"t": 1}}]))["type"] == "ack"
    alerts = httpx.get(server.base + "/api/alerts?state=firing", headers=server.admin()).json()["alerts"]
    assert [a["id"] for a in alerts] == [1]


def schemathesis(server: Server, workdir: Path, *args: str, rollout_id: str = "") -> subprocess.CompletedProcess[str]:
    """`schemathesis run` with every check, authenticated as admin, seeded; its output in the result."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": HOOKS, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    env["CONFORMANCE_ROLLOUT_ID"] = rollout_id  # read by the hooks
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "run",
        *args,
        "--checks=all",
        f"--header=Authorization: Bearer {server.admin_key}",
        f"--max-examples={EXAMPLES}",
        f"--seed={SEED}",
        "--generation-deterministic",
        "--request-timeout=15",
        "--no-color",
    ]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )


def test_schemathesis_finds_nothing(server: Server, rollout_id: str, tmp_path: Path) -> None:
    run = schemathesis(server, tmp_path, server.base + "/openapi.json", rollout_id=rollout_id)
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    assert "No issues found" in run.stdout, run.stdout[-4000:]


def test_an_undocumented_status_fails_the_run(server: Server, tmp_path: Path) -> None:
    """The check above can fail: with the 404 of token rotation taken out of the document, it does."""
    doc = server.get("/openapi.json").json()
    rotate = doc["paths"]["/api/devices/{device_id}/token"]["post"]
    del rotate["responses"]["404"]
    schema = tmp_path / "openapi.json"
    schema.write_text(json.dumps(doc))
    run = schemathesis(
        server, tmp_path, str(schema), f"--url={server.base}", "--include-path=/api/devices/{device_id}/token"
    )
    assert run.returncode != 0, run.stdout[-4000:]
    assert "Undocumented status code" in run.stdout and "Received: 404" in run.stdout, run.stdout[-4000:]
