"""Liveness and readiness on a server whose storage works (outages: tests/storage/test_outages.py)."""

from __future__ import annotations

import httpx

from tests.support.server import Server


def test_readiness_is_200_with_the_storage_record_and_answers_head(server: Server) -> None:
    server.register()  # a commit: last_commit_ms is set
    ready = server.get("/readyz")
    assert ready.status_code == 200 and "Retry-After" not in ready.headers
    body = ready.json()
    assert body["status"] == "ready" and body["storage"]["ready"] is True
    assert isinstance(body["storage"]["last_commit_ms"], int)
    head = httpx.head(server.base + "/readyz", timeout=10)
    assert head.status_code == 200 and head.content == b""
    assert server.metric_value("pulsewire_storage_ready") == 1


def test_liveness_reports_storage_beside_ok(server: Server) -> None:
    body = server.get("/healthz").json()
    assert body["status"] == "ok" and body["storage"]["ready"] is True


def test_openapi_documents_503_with_retry_after_for_liveness_and_readiness(server: Server) -> None:
    paths = server.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/readyz"):
        answer = paths[path]["get"]["responses"]["503"]
        assert "Retry-After" in answer["headers"], path
