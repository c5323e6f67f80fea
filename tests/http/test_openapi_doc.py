"""The OpenAPI document, read as a client would: every refusal with its body, no 422, the rules stated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pulsewire.app.factory import create_app
from pulsewire.http.telemetry import AGG_LIST, KEYS
from pulsewire.http.timeparse import ISO_TIME
from pulsewire.protocol.rules import (
    COMMANDS,
    DEVICE_ID_PATTERN,
    MAX_INTERVAL_MS,
    MIN_INTERVAL_MS,
    STORED_DEVICE_ID_PATTERN,
)
from pulsewire.settings import Settings

ERROR_BODY = {"$ref": "#/components/schemas/ErrorOut"}
ADMIN = {
    ("post", "/api/devices"),
    ("post", "/api/devices/{device_id}/token"),
    ("delete", "/api/devices/{device_id}"),
    ("post", "/api/devices/{device_id}/commands"),
    ("get", "/api/admin/check"),
    ("post", "/api/channels"),
    ("get", "/api/channels"),  # channels hold secrets: even listing them takes the admin key
    ("delete", "/api/channels/{channel_id}"),
    ("post", "/api/channels/{channel_id}/test"),
    ("post", "/api/rules"),
    ("put", "/api/rules/{rule_id}"),
    ("delete", "/api/rules/{rule_id}"),
    ("post", "/api/alerts/{alert_id}/ack"),
    ("get", "/api/alerts/{alert_id}/notifications"),  # delivery errors may quote a receiver's answer
    ("post", "/api/releases"),
    ("delete", "/api/releases/{version}"),
    ("post", "/api/rollouts"),
    ("post", "/api/rollouts/{rollout_id}/pause"),
    ("post", "/api/rollouts/{rollout_id}/resume"),
    ("post", "/api/rollouts/{rollout_id}/abort"),
}
# Routes that always need a credential, though not the admin key: a device token (or the admin key).
DEVICE = {("get", "/api/releases/{version}/files/{path}")}


@pytest.fixture(scope="module")
def doc(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return create_app(Settings(data_dir=tmp_path_factory.mktemp("doc"), query_max_limit=5000)).openapi()


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_no_422_anywhere(doc: dict[str, Any]) -> None:
    assert "422" not in str(doc) and "HTTPValidationError" not in str(doc)


def test_every_refusal_has_the_detail_body(doc: dict[str, Any]) -> None:
    assert doc["components"]["schemas"]["ErrorOut"]["required"] == ["detail"]
    for method, path, op in operations(doc):
        for status, answer in op["responses"].items():
            if int(status) < 400:
                continue
            body = answer["content"]["application/json"]["schema"]
            if path in ("/healthz", "/readyz"):  # their 503 is their status body
                assert body["required"] == ["status", "storage"], (method, path, status)
            else:
                assert body == ERROR_BODY, (method, path, status)


def test_input_may_be_refused_with_400(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        takes_input = op.get("parameters") or op.get("requestBody")
        assert ("400" in op["responses"]) == bool(takes_input), (method, path)


def test_credentials(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        answers = op["responses"]
        if (method, path) in ADMIN or (method, path) in DEVICE:
            assert {"401", "403"} <= set(answers), (method, path)
        elif path.startswith("/api/"):
            assert "401" in answers and "403" not in answers, (method, path)
        if "401" in answers:
            assert answers["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_credentials_are_declared_as_bearer(doc: dict[str, Any], tmp_path: Path) -> None:
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for method, path, op in operations(doc):
        if (method, path) in ADMIN or (method, path) in DEVICE:
            assert op["security"] == [{"bearer": []}], (method, path)
        elif path.startswith("/api/"):  # open unless a read key is set
            assert op["security"] == [{}, {"bearer": []}], (method, path)
        else:
            assert "security" not in op, (method, path)
    with_read_key = create_app(Settings(data_dir=tmp_path, read_key="pwr-1")).openapi()
    assert with_read_key["paths"]["/api/devices"]["get"]["security"] == [{"bearer": []}]


def test_every_storage_route_may_answer_503_with_retry_after(doc: dict[str, Any]) -> None:
    for method, path, op in operations(doc):
        if path.startswith("/api/devices"):
            retry_after = op["responses"]["503"]["headers"]["Retry-After"]
            assert retry_after["schema"] == {"type": "integer", "minimum": 0}
            # Commands also answer 503 when the device's connection ends: then without it.
            assert retry_after["required"] is (not path.endswith("/commands")), (method, path)


def test_parameters_are_constrained(doc: dict[str, Any]) -> None:
    op = doc["paths"]["/api/devices/{device_id}/telemetry"]["get"]
    params = {p["name"]: p["schema"] for p in op["parameters"]}
    assert (
        params["device_id"]["pattern"] == STORED_DEVICE_ID_PATTERN
    )  # paths also reach . and .. stored by older versions
    assert doc["components"]["schemas"]["DeviceIn"]["properties"]["id"]["pattern"] == DEVICE_ID_PATTERN
    for name in ("start", "end"):
        assert params[name]["anyOf"] == [
            {"type": "integer", "minimum": 0, "maximum": 2**53 - 1},
            {"type": "string", "pattern": ISO_TIME},
        ]
    assert params["limit"] == {"type": "integer", "minimum": 1, "maximum": 5000}  # query_max_limit
    assert params["keys"]["pattern"] == KEYS and params["agg"]["pattern"] == AGG_LIST
    assert params["order"]["enum"] == ["asc", "desc"]
    assert params["interval"]["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 2**53 - 1}


def test_a_command_body_is_one_of_the_known_commands(doc: dict[str, Any]) -> None:
    body = doc["components"]["schemas"]["CommandIn"]
    assert body["properties"]["name"]["enum"] == list(COMMANDS) and body["required"] == ["name"]
    by_name = {alt["properties"]["name"]["const"]: alt for alt in body["oneOf"]}
    assert set(by_name) == set(COMMANDS)
    ms = by_name["set_interval"]["properties"]["args"]["properties"]["ms"]
    assert ms == {"type": "integer", "minimum": MIN_INTERVAL_MS, "maximum": MAX_INTERVAL_MS}
    assert by_name["reboot"]["properties"]["args"]["anyOf"] == [
        {"type": "null"},
        {"type": "object", "maxProperties": 0},
    ]


def test_the_document_is_the_same_on_every_call(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert app.openapi() is app.openapi() and app.openapi() == app.openapi()
