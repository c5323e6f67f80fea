"""OPTIONS and 405 carry `Allow` with the methods of the path, on a real server."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import Server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Server:
    return start_server(tmp_path_factory.mktemp("allow"), "sqlite", request)


@pytest.mark.parametrize(
    "path,allow",
    [
        ("/api/devices", "GET, POST, OPTIONS"),
        ("/api/devices/greenhouse-1", "DELETE, OPTIONS"),
        ("/api/devices/greenhouse-1/token", "POST, OPTIONS"),
        ("/api/devices/greenhouse-1/commands", "POST, OPTIONS"),
        ("/api/devices/greenhouse-1/telemetry.csv", "GET, OPTIONS"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/openapi.json", "GET, HEAD, OPTIONS"),
        ("/", "GET, HEAD, OPTIONS"),  # the dashboard's files
        ("/js/main.js", "GET, HEAD, OPTIONS"),
    ],
)
def test_options_lists_the_methods(server: Server, path: str, allow: str) -> None:
    resp = httpx.options(server.base + path, headers=server.admin())
    assert resp.status_code == 204 and resp.headers["allow"] == allow and resp.content == b""


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("PUT", "/api/devices", "GET, POST, OPTIONS"),
        ("DELETE", "/api/devices", "GET, POST, OPTIONS"),
        ("GET", "/api/devices/greenhouse-1", "DELETE, OPTIONS"),
        ("PATCH", "/api/devices/greenhouse-1/latest", "GET, OPTIONS"),
        ("POST", "/healthz", "GET, HEAD, OPTIONS"),
        ("POST", "/index.html", "GET, HEAD, OPTIONS"),
        ("POST", "/docs/assets/swagger-ui.css", "GET, HEAD, OPTIONS"),
        ("DELETE", "/docs", "GET, OPTIONS"),
    ],
)
def test_a_wrong_method_gets_405_with_allow(server: Server, method: str, path: str, allow: str) -> None:
    resp = httpx.request(method, server.base + path, headers=server.admin())
    assert resp.status_code == 405 and resp.headers["allow"] == allow
    assert resp.json() == {"detail": "Method Not Allowed"}


def test_head_of_a_get_route_is_a_405_naming_get(server: Server) -> None:
    resp = httpx.head(server.base + "/api/devices")
    assert resp.status_code == 405 and resp.headers["allow"] == "GET, POST, OPTIONS"


def test_the_routes_still_answer(server: Server) -> None:
    assert httpx.get(server.base + "/api/devices").status_code == 200
    assert httpx.head(server.base + "/healthz").status_code == 200
    assert httpx.get(server.base + "/").status_code == 200
    assert httpx.get(server.base + "/no-such-file").status_code == 404
    assert httpx.delete(server.base + "/api/devices/nobody", headers=server.admin()).status_code == 404
    assert httpx.get(server.base + "/api/devices/nobody/latest").status_code == 404  # the route's own 404
    assert httpx.head(server.base + "/no-such-file").status_code == 404
