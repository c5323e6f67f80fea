"""Security headers on the dashboard, the API and /docs; in Chromium, no page breaks the policy."""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from pulsewire.http.security_headers import DASHBOARD_POLICY
from tests.support.browser import Device, chromium, watch_console
from tests.support.clients import SUBPROTOCOL
from tests.support.server import Server, start_server

FIXED = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}
# Collects the page's CSP violations before any of its scripts run.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("security-headers"), "sqlite", request)


def directives(policy: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (p.strip() for p in policy.split(";")) if d}


@pytest.mark.parametrize(
    "method,path",
    [
        ("GET", "/"),
        ("GET", "/index.html"),
        ("GET", "/js/main.js"),
        ("GET", "/api/devices"),
        ("GET", "/api/devices/nobody/latest"),  # a refusal too
        ("GET", "/openapi.json"),
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("OPTIONS", "/api/devices"),
        ("PUT", "/api/devices"),
        ("GET", "/no-such-file"),
    ],
)
def test_every_http_answer_has_the_headers(server: Server, method: str, path: str) -> None:
    resp = httpx.request(method, server.base + path)
    for name, value in FIXED.items():
        assert resp.headers.get(name) == value, (name, resp.headers)
    policy = directives(resp.headers["content-security-policy"])
    assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
    assert policy["object-src"] == "'none'" and policy["base-uri"] == "'self'"


def test_the_docs_page_allows_its_own_inline_script_only(server: Server) -> None:
    resp = server.get("/docs")
    policy = directives(resp.headers["content-security-policy"])
    scripts = re.findall(rb"<script>(.*?)</script>", resp.content, re.DOTALL)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    assert "unsafe-inline" not in resp.headers["content-security-policy"]
    assert policy["frame-ancestors"] == "'none'" and resp.headers["x-frame-options"] == "DENY"


def test_websocket_handshakes_get_no_page_headers(server: Server) -> None:
    """The live channel answers its upgrade as before: the middleware leaves WebSockets alone."""
    with connect(server.ws_base + "/ws/live") as ws:
        headers = ws.response.headers
        assert "content-security-policy" not in headers and "x-frame-options" not in headers


def test_the_policy_names_no_other_host() -> None:
    assert not re.search(r"https?:|\*|unsafe", DASHBOARD_POLICY)


def _violations(page: Any) -> list[str]:
    return list(page.evaluate("window.__violations"))


def test_dashboard_and_docs_run_under_the_policy_in_chromium(server: Server) -> None:
    device_id, token = server.register("csp-1")
    with chromium() as browser:
        page = browser.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        log = watch_console(page)
        device = Device(server, token)
        try:
            device.reading(temperature=20.5)
            page.goto(server.base + "/")
            value = page.locator(f'.card[data-device="{device_id}"] [data-metric="temperature"] .value')
            value.wait_for()
            assert value.inner_text() == "20.5 °C"
            device.reading(temperature=22.25)  # pushed over the page's own WebSocket
            page.wait_for_function("(el) => el.textContent === '22.25 °C'", arg=value.element_handle(), timeout=5000)
        finally:
            device.close()
        assert _violations(page) == [] and not log.errors, (_violations(page), log.errors)

        page.goto(server.base + "/docs")
        page.wait_for_selector(".opblock-summary-path")  # Swagger UI ran and drew the API
        assert _violations(page) == [] and not log.errors, (_violations(page), log.errors)


def test_chromium_reports_what_the_policy_blocks(server: Server) -> None:
    """The check above can see a violation: an inline script on the dashboard is reported."""
    with chromium() as browser:
        page = browser.new_page()
        page.add_init_script(RECORD_VIOLATIONS)
        page.goto(server.base + "/")
        page.evaluate(
            """() => { const s = document.createElement("script"); s.textContent = "1"; document.head.append(s); }"""
        )
        page.wait_for_function("window.__violations.length > 0")
        assert any(v.startswith("script-src") for v in _violations(page)), _violations(page)


def test_a_device_handshake_is_untouched(server: Server) -> None:
    _, token = server.register("csp-2")
    with connect(
        server.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        assert "content-security-policy" not in ws.response.headers
