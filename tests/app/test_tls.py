"""Native TLS: `pulsewire serve --tls-cert/--tls-key` serves https and wss, and refuses a bad pair at start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from pulsewire.app.tls import tls_problem
from tests.support.certs import self_signed
from tests.support.clients import device, live, live_until, now_ms, recv_json, send_batch
from tests.support.server import Server, free_port
from tests.support.simboard import board, firmware_config
from tests.support.waiting import wait_until


@pytest.fixture
def tls_server(tmp_path: Path, request: pytest.FixtureRequest) -> Server:
    cert, key = self_signed(tmp_path)
    settings = {"tls_cert": str(cert), "tls_key": str(key), "sample_interval_ms": "200"}
    server = Server(tmp_path / "server", settings=settings, ca=cert).start()
    request.addfinalizer(server.stop)
    return server


@pytest.mark.anyio
async def test_https_api_and_wss_channels_verified_against_the_certificate(tls_server: Server) -> None:
    assert tls_server.base.startswith("https://")
    dev, token = tls_server.register()  # an https call, verified against the test's certificate
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(tls_server.base + "/healthz")  # the system's CAs do not know it
    with pytest.raises(httpx.HTTPError):
        httpx.get(tls_server.base.replace("https", "http") + "/healthz", timeout=3)  # no plain http on this port
    async with live(tls_server) as dashboard:
        assert (await recv_json(dashboard))["type"] == "snapshot"
        async with device(tls_server, token) as ws:
            ts = now_ms()
            assert await send_batch(ws, 1, [{"ts": ts, "values": {"t": 1.5}}]) == {"type": "ack", "seq": 1}
        pushed = await live_until(dashboard, lambda m: m["type"] == "telemetry" and m["device"] == dev)
        assert pushed["data"] == [{"ts": ts, "values": {"t": 1.5}}]
    assert tls_server.telemetry(dev)["t"] == [{"ts": ts, "value": 1.5}]
    out = (tls_server.data_dir / "server.out").read_text()
    assert f"Dashboard:  {tls_server.base}/" in out and f"Live:       {tls_server.ws_base}/ws/live" in out
    assert f"url={tls_server.base}" in "\n".join(tls_server.log_lines())  # the "listening" line


def test_the_firmware_streams_over_wss_verifying_the_server(tls_server: Server) -> None:
    device_id, token = tls_server.register()
    assert tls_server.ca is not None
    config = firmware_config(tls_server.base, token, ca="ca.pem")
    with board(config=config, files={"/ca.pem": tls_server.ca.read_bytes()}) as sim:
        sim.wait_for_line("link: online", timeout=30)
        wait_until(lambda: len(_stored(tls_server, device_id)) >= 3, 20, "readings over wss stored")
        acked = sim.status()
    assert acked["readings"] >= 3
    assert tls_server.metric_value("pulsewire_acks_total") >= 1


def test_the_firmware_refuses_a_server_its_ca_does_not_vouch_for(tls_server: Server, tmp_path: Path) -> None:
    other, _ = self_signed(tmp_path, "other")
    _, token = tls_server.register()
    config = firmware_config(tls_server.base, token, ca="ca.pem")
    with board(config=config, files={"/ca.pem": other.read_bytes()}) as sim:
        sim.wait_for_line("link: cannot connect", timeout=30)
        assert not any("link: online" in line for line in sim.lines)


def _stored(server: Server, device_id: str) -> list[object]:
    resp = server.get(f"/api/devices/{device_id}/telemetry", params={"order": "asc"})
    return [p for points in resp.json().values() for p in points] if resp.status_code == 200 else []


def test_a_certificate_and_its_key_are_a_pair(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "a")
    other_cert, other_key = self_signed(tmp_path, "b")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    assert tls_problem(cert, key) is None
    assert "does not belong to the certificate" in (tls_problem(cert, other_key) or "")
    assert "cannot read the TLS key" in (tls_problem(cert, tmp_path / "none.key") or "")
    assert "not a PEM certificate" in (tls_problem(junk, key) or "")
    encrypted = tmp_path / "encrypted.key"
    subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-aes256", "-passout", "pass:secret", "-out", str(encrypted)], check=True
    )
    assert "is encrypted" in (tls_problem(cert, encrypted) or "")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--tls-cert", "{cert}"], "tls_cert is set but tls_key is not"),
        (["--tls-key", "{key}"], "tls_key is set but tls_cert is not"),
        (["--tls-cert", "{cert}", "--tls-key", "{dir}/missing.key"], "cannot read the TLS key"),
        (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "does not belong to the certificate"),
        (["--tls-cert", "{key}", "--tls-key", "{key}"], "not a PEM certificate"),
    ],
)
def test_serve_refuses_a_bad_certificate_and_key_with_a_message(tmp_path: Path, flags: list[str], message: str) -> None:
    cert, key = self_signed(tmp_path, "a")
    _, other_key = self_signed(tmp_path, "b")
    names = {"cert": cert, "key": key, "other_key": other_key, "dir": tmp_path}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULSEWIRE_")}
    done = subprocess.run(
        [sys.executable, "-m", "pulsewire", "serve", "--port", str(free_port()), "--data-dir", str(tmp_path / "d")]
        + [flag.format(**names) for flag in flags],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
