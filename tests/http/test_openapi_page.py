"""`GET /docs`: the OpenAPI page works with no network beyond the server itself."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Route

from tests.support.browser import chromium, watch_console
from tests.support.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("openapi-page"), "sqlite", request)


def test_the_page_names_no_other_host(server: Server) -> None:
    html = server.get("/docs").text
    refs = re.findall(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""", html)
    assert "/docs/assets/swagger-ui-bundle.js" in refs and "/openapi.json" in refs
    assert not re.search(r"https?://", html), "the page names another host"
    for ref in refs:
        assert server.get(ref).status_code == 200, ref


def test_the_old_viewer_address_leads_to_the_page(server: Server) -> None:
    moved = server.get("/redoc", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/docs"


def test_the_page_renders_the_api_from_this_server_only(server: Server) -> None:
    with chromium() as browser:
        page = browser.new_page()
        log = watch_console(page)
        hosts: list[str] = []

        def only_this_server(route: Route) -> None:
            hosts.append(urlsplit(route.request.url).hostname or "")
            if hosts[-1] == "127.0.0.1":
                route.continue_()
            else:
                route.abort()

        page.route("**/*", only_this_server)
        page.goto(server.base + "/docs")
        page.wait_for_selector(".opblock-summary-path")  # operations drawn from /openapi.json
        paths = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {"/api/devices", "/api/devices/{device_id}/telemetry", "/healthz"} <= {p.strip() for p in paths}
        assert set(hosts) == {"127.0.0.1"}, f"the page asked other hosts: {sorted(set(hosts))}"
        assert not log.unexpected(), log.errors
