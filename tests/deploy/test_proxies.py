"""docs/deployment.md's reverse-proxy configurations, as printed, in front of a real server.

Debian's nginx, Apache and lighttpd each hold TLS (the test's self-signed certificate) and serve
Pulsewire under /pulsewire/ (prefix stripped) to a server that runs with the documented
environment file (root_path, trusted_proxies). tests/run installs all three in CI.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from playwright.sync_api import expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

from pulsewire.settings import Settings
from tests.support.browser import require_chromium, watch_console
from tests.support.certs import self_signed
from tests.support.chromium import CHROMIUM, LAUNCH_ARGS
from tests.support.clients import SUBPROTOCOL, now_ms
from tests.support.server import Server
from tests.support.simboard import board, firmware_config
from tests.support.waiting import wait_until
from tests.support.webservers import DOC_IDLE_TIMEOUT_S, Proxy, config_block, env_file

SET_BY_THE_TEST_RUNNER = ("PULSEWIRE_HOST", "PULSEWIRE_PORT", "PULSEWIRE_DATA_DIR", "PULSEWIRE_ADMIN_KEY")
FORGED = "203.0.113.9"
PING_INTERVAL_S = 1
IDLE_TIMEOUT_S = 3  # the proxies' idle timeout in these tests (documented: DOC_IDLE_TIMEOUT_S)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    """A server with docs/deployment.md's pulsewire.env (the runner sets host, port, folder and key)."""
    documented = env_file(config_block("pulsewire.env"))
    assert set(SET_BY_THE_TEST_RUNNER) <= set(documented)
    settings = {
        k.removeprefix("PULSEWIRE_").lower(): v for k, v in documented.items() if k not in SET_BY_THE_TEST_RUNNER
    }
    assert settings == {"root_path": "/pulsewire", "trusted_proxies": "127.0.0.1,::1"}
    # The keepalive made short enough to outlast the proxies' (shortened) idle timeouts in a test.
    keepalive = {"ping_interval_s": str(PING_INTERVAL_S), "ping_timeout_s": str(PING_INTERVAL_S)}
    server = Server(tmp_path_factory.mktemp("server"), settings=settings | keepalive).start()
    request.addfinalizer(server.stop)
    return server


@pytest.fixture(scope="module", params=["nginx", "apache", "lighttpd"])
def proxy(
    request: pytest.FixtureRequest,
    server: Server,
    certificate: tuple[Path, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Proxy]:
    cert, key = certificate
    folder = tmp_path_factory.mktemp(request.param)
    running = Proxy(request.param, folder, server.port, cert, key, idle_timeout_s=IDLE_TIMEOUT_S).start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certificate[0])


@contextmanager
def _device(proxy: Proxy, tls: ssl.SSLContext, token: str, **options: Any) -> Iterator[ClientConnection]:
    """A device on the proxy's wss:// device channel, past its hello."""
    with connect(
        proxy.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}", **options.pop("headers", {})},
        ssl=tls,
        open_timeout=10,
        **options,
    ) as ws:
        ws.send(orjson.dumps({"type": "hello", "fw": "proxy-test", "uptime": 1}).decode())
        assert orjson.loads(ws.recv(5))["type"] == "welcome"
        yield ws


def _register(proxy: Proxy, tls: ssl.SSLContext, server: Server) -> tuple[str, str]:
    device_id = f"{proxy.kind}-{now_ms()}"
    resp = httpx.post(proxy.base + "/api/devices", json={"id": device_id}, headers=server.admin(), verify=tls)
    assert resp.status_code == 201, resp.text
    return device_id, resp.json()["token"]


def _live_until(live: ClientConnection, device_id: str, kind: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        msg = orjson.loads(live.recv(10))
        if msg["type"] == kind and msg.get("device") == device_id:
            return msg  # type: ignore[no-any-return]
    raise AssertionError(f"no {kind} for {device_id} on the live channel")


def _logged(server: Server, what: str, device_id: str) -> str:
    def line() -> str | None:
        found = [ln for ln in server.log_lines() if what in ln and f"device={device_id} " in ln]
        return found[-1] if found else None

    return str(wait_until(line, 5, f"{what} logged for {device_id}"))


def test_a_device_is_acked_and_its_readings_go_live_through_the_proxy(
    proxy: Proxy, server: Server, tls: ssl.SSLContext
) -> None:
    device_id, token = _register(proxy, tls, server)
    with connect(proxy.ws_base + "/ws/live", ssl=tls, open_timeout=10, max_size=None) as live:
        assert orjson.loads(live.recv(5))["type"] == "snapshot"
        with _device(proxy, tls, token) as ws:
            ts = now_ms()
            ws.send(orjson.dumps({"type": "telemetry", "seq": 1, "data": [{"ts": ts, "values": {"t": 4.25}}]}).decode())
            assert orjson.loads(ws.recv(5)) == {"type": "ack", "seq": 1}
            assert _live_until(live, device_id, "telemetry")["data"] == [{"ts": ts, "values": {"t": 4.25}}]
            ws.close(1000, "done for today")
        assert _live_until(live, device_id, "status")["online"] is False
    stored = httpx.get(f"{proxy.base}/api/devices/{device_id}/telemetry", verify=tls).json()
    assert stored == {"t": [{"ts": ts, "value": 4.25}]}
    # The device's own close passes through the proxy, code and reason.
    line = _logged(server, "device disconnected", device_id)
    assert "by=device" in line and "close_code=1000" in line and 'reason="done for today"' in line, line


def test_the_client_address_is_the_one_the_proxy_saw_never_one_a_client_forged(
    proxy: Proxy, server: Server, tls: ssl.SSLContext
) -> None:
    device_id, token = _register(proxy, tls, server)
    with _device(proxy, tls, token, headers={"X-Forwarded-For": FORGED}, source_address=("127.0.0.2", 0)):
        pass
    line = _logged(server, "device connected", device_id)
    # The proxy (127.0.0.1, trusted) says the client is 127.0.0.2; the forged address is not believed.
    assert "client=127.0.0.2" in line and FORGED not in line, line


def test_the_prefix_without_its_slash_is_redirected(proxy: Proxy, tls: ssl.SSLContext) -> None:
    resp = httpx.get(proxy.base, verify=tls)
    assert resp.status_code == 301 and resp.headers["location"].endswith("/pulsewire/"), resp.headers
    assert httpx.get(proxy.base + "/healthz", verify=tls).status_code == 200


def test_the_dashboard_and_the_api_page_under_the_sub_path_in_chromium(
    proxy: Proxy, server: Server, tls: ssl.SSLContext
) -> None:
    require_chromium()
    device_id, token = _register(proxy, tls, server)
    with _device(proxy, tls, token) as ws, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            page = browser.new_context(ignore_https_errors=True).new_page()
            log = watch_console(page)
            page.goto(proxy.base + "/")
            expect(page.locator("#conn")).to_have_attribute("data-state", "live", timeout=10_000)
            value = page.locator(f'.card[data-device="{device_id}"] [data-metric="temperature"] .value')
            for seq, reading in enumerate((19.5, 22.25), start=1):
                batch = {
                    "type": "telemetry",
                    "seq": seq,
                    "data": [{"ts": now_ms(), "values": {"temperature": reading}}],
                }
                ws.send(orjson.dumps(batch).decode())
                assert orjson.loads(ws.recv(5))["type"] == "ack"
                expect(value).to_have_text(f"{reading:g} °C", timeout=5000)
            page.goto(proxy.base + "/docs")
            expect(page.locator(".swagger-ui .info .title")).to_contain_text("Pulsewire", timeout=10_000)
            expect(page.locator(".opblock-summary-path").first).to_be_visible()
            assert not log.unexpected(), log.errors
        finally:
            browser.close()


def test_the_firmware_streams_through_the_proxy_verifying_it(
    proxy: Proxy, server: Server, certificate: tuple[Path, Path], tls: ssl.SSLContext
) -> None:
    """The board's `server` URL carries the sub-path; its `ca` is the proxy's certificate."""
    device_id, token = _register(proxy, tls, server)
    acks_before = server.metric_value("pulsewire_acks_total")
    config = firmware_config(proxy.base, token, ca="ca.pem")
    with board(config=config, files={"/ca.pem": certificate[0].read_bytes()}) as sim:
        sim.wait_for_line("link: online", timeout=30)
        wait_until(lambda: _stored_count(proxy, tls, device_id) >= 3, 20, "the board's readings stored")
        wait_until(lambda: server.metric_value("pulsewire_acks_total") > acks_before, 10, "the board's batches acked")
    line = _logged(server, "device connected", device_id)
    assert "client=127.0.0.1" in line, line


def _stored_count(proxy: Proxy, tls: ssl.SSLContext, device_id: str) -> int:
    resp = httpx.get(f"{proxy.base}/api/devices/{device_id}/telemetry", verify=tls)
    return sum(len(points) for points in resp.json().values()) if resp.status_code == 200 else 0


def test_an_idle_device_outlasts_the_proxy_s_idle_timeout(proxy: Proxy, server: Server, tls: ssl.SSLContext) -> None:
    """The server's pings keep a quiet connection busy, so the proxy never drops it as idle."""
    defaults = Settings()
    assert defaults.ping_interval_s + defaults.ping_timeout_s < DOC_IDLE_TIMEOUT_S  # as documented
    _, token = _register(proxy, tls, server)
    with _device(proxy, tls, token) as ws:
        time.sleep(IDLE_TIMEOUT_S * 2)  # silent, past the proxy's idle timeout
        ws.send(orjson.dumps({"type": "telemetry", "seq": 1, "data": [{"ts": now_ms(), "values": {"t": 1}}]}).decode())
        assert orjson.loads(ws.recv(5)) == {"type": "ack", "seq": 1}
