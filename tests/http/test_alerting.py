"""Alert rules and channels over HTTP (`/api/rules`, `/api/channels`) against the real server, on
SQLite and on PostgreSQL: create, read, replace, delete, every refusal, secrets never shown, and
test notifications to a real webhook receiver and a real SMTP server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certs import self_signed
from tests.support.receivers import WebhookReceiver, server_tls, smtp_server, webhook_receiver
from tests.support.server import Server, start_server

SECRET = "s3cret-of-the-ops-hook"
WEBHOOK = {"name": "ops", "type": "webhook", "url": "https://hooks.example.org/pulsewire", "secret": SECRET}
EMAIL = {"name": "me", "type": "email", "to": ["a@example.org", "b@example.org"]}
RULE = {
    "name": "freezer warm",
    "kind": "threshold",
    "device": "freezer-1",
    "metric": "temperature",
    "op": ">",
    "value": -10,
    "for_s": 300,
    "repeat_s": 3600,
    "severity": "critical",
}
READ_KEY = "pwr-alerting-test"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Server:
    return start_server(tmp_path_factory.mktemp(f"alerting-{request.param}"), request.param, request, read_key=READ_KEY)


def call(server: Server, method: str, path: str, body: Any = None, key: str | None = "admin") -> httpx.Response:
    headers = {} if key is None else {"Authorization": f"Bearer {server.admin_key if key == 'admin' else key}"}
    with httpx.Client(base_url=server.base, timeout=30) as client:
        return client.request(method, path, json=body, headers=headers)


def add(server: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    made = call(server, "POST", path, body)
    assert made.status_code == 201, made.text
    return made.json()  # type: ignore[no-any-return]


def rule_with(**changes: Any) -> dict[str, Any]:
    body = {**RULE, **changes}
    return {k: v for k, v in body.items() if v is not None}


# --- channels -------------------------------------------------------------------------------------


def test_channels_are_added_listed_and_deleted_and_never_show_the_secret(server: Server) -> None:
    hook = add(server, "/api/channels", WEBHOOK)["id"]
    mail = add(server, "/api/channels", EMAIL)["id"]
    listed = {c["id"]: c for c in call(server, "GET", "/api/channels").json()}
    assert {k: v for k, v in listed[hook].items() if k != "created_ms"} == {
        "id": hook,
        "name": "ops",
        "type": "webhook",
        "url": WEBHOOK["url"],
    }
    assert {k: v for k, v in listed[mail].items() if k != "created_ms"} == {
        "id": mail,
        "name": "me",
        "type": "email",
        "to": EMAIL["to"],
    }
    assert SECRET not in call(server, "GET", "/api/channels").text
    assert call(server, "DELETE", f"/api/channels/{hook}").json() == {"id": hook}
    assert hook not in {c["id"] for c in call(server, "GET", "/api/channels").json()}
    gone = call(server, "DELETE", f"/api/channels/{hook}")
    assert gone.status_code == 404 and gone.json() == {"detail": f"no channel {hook!r}"}


@pytest.mark.parametrize(
    "body,detail",
    [
        ({**WEBHOOK, "url": "ftp://x.example.org/"}, "url: the scheme must be http or https"),
        ({**WEBHOOK, "secret": "short"}, "secret: 5 characters, expected 16 to 256"),
        ({**EMAIL, "to": ["a@example.org\r\nBcc: b@example.org"]}, "to[0]: control characters"),
        ({**EMAIL, "name": "<script>x</script>"}, "name: markup"),
        ({**EMAIL, "type": "pager"}, "type: required, one of webhook, email"),
        ({**EMAIL, "cc": ["x@example.org"]}, "cc: not a field of email channels"),
        (["not", "an", "object"], "body: expected a JSON object"),
    ],
    ids=["url", "secret", "header-injection", "markup", "type", "unknown-field", "not-an-object"],
)
def test_a_bad_channel_is_refused_with_the_reason(server: Server, body: Any, detail: str) -> None:
    before = call(server, "GET", "/api/channels").json()
    refused = call(server, "POST", "/api/channels", body)
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith(detail), refused.text
    assert call(server, "GET", "/api/channels").json() == before


def test_channels_need_the_admin_key_even_to_list(server: Server) -> None:
    for method, path, body in (
        ("GET", "/api/channels", None),
        ("POST", "/api/channels", EMAIL),
        ("DELETE", "/api/channels/ch_x", None),
    ):
        assert call(server, method, path, body, key=None).status_code == 401
        assert call(server, method, path, body, key=READ_KEY).status_code == 403


# --- rules ----------------------------------------------------------------------------------------


def test_a_rule_is_added_read_replaced_and_deleted(server: Server) -> None:
    channel = add(server, "/api/channels", EMAIL)["id"]
    made = add(server, "/api/rules", rule_with(channels=[channel]))
    rule_id = made["id"]
    assert made == {
        **RULE,
        "value": -10.0,
        "low": None,
        "high": None,
        "channels": [channel],
        "id": rule_id,
        "created_ms": made["created_ms"],
        "updated_ms": made["created_ms"],
    }
    assert call(server, "GET", f"/api/rules/{rule_id}").json() == made
    assert made in call(server, "GET", "/api/rules").json()

    band = rule_with(op="outside", value=None, low=-25, high=-15, channels=[])
    replaced = call(server, "PUT", f"/api/rules/{rule_id}", band)
    assert replaced.status_code == 200, replaced.text
    now = replaced.json()
    assert (now["op"], now["low"], now["high"], now["value"], now["channels"]) == ("outside", -25, -15, None, [])
    assert now["created_ms"] == made["created_ms"] and now["updated_ms"] >= made["updated_ms"]
    assert call(server, "GET", f"/api/rules/{rule_id}").json() == now

    assert call(server, "DELETE", f"/api/rules/{rule_id}").json() == {"id": rule_id}
    for method, body in (("GET", None), ("PUT", RULE), ("DELETE", None)):
        gone = call(server, method, f"/api/rules/{rule_id}", body)
        assert gone.status_code == 404 and gone.json() == {"detail": f"no rule {rule_id!r}"}, method


def test_a_no_data_rule_on_every_device(server: Server) -> None:
    body = {"name": "silent", "kind": "no_data", "device": "*", "metric": None, "for_s": 300, "severity": "warning"}
    made = add(server, "/api/rules", body)
    assert (made["kind"], made["device"], made["metric"], made["op"], made["repeat_s"]) == (
        "no_data",
        "*",
        None,
        None,
        0,
    )
    assert call(server, "GET", f"/api/rules/{made['id']}").json() == made


@pytest.mark.parametrize(
    "body,detail",
    [
        (rule_with(op="=="), "op: '==' is unknown"),
        (rule_with(op="outside", value=None, low=5, high=1), "low: 5.0 is above high (1.0)"),
        (rule_with(for_s=-1), "for_s: -1 is out of range"),
        (rule_with(repeat_s=10**9), "repeat_s: 1000000000 is out of range"),
        (rule_with(metric="temp erature"), "metric: required"),
        (rule_with(name="<img src=x onerror=alert(1)>"), "name: markup"),
        (rule_with(severity="panic"), "severity: required"),
        (rule_with(channels=["no such/id"]), "channels[0]: not a channel id"),
        (rule_with(colour="red"), "colour: unknown field"),
        ("a rule", "body: expected a JSON object"),
    ],
    ids=[
        "op",
        "band",
        "negative",
        "huge",
        "metric",
        "markup",
        "severity",
        "channel-id",
        "unknown-field",
        "not-an-object",
    ],
)
def test_a_bad_rule_is_refused_with_the_reason(server: Server, body: Any, detail: str) -> None:
    before = call(server, "GET", "/api/rules").json()
    refused = call(server, "POST", "/api/rules", body)
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith(detail), refused.text
    assert call(server, "GET", "/api/rules").json() == before


def test_a_rule_may_name_only_channels_that_exist(server: Server) -> None:
    real = add(server, "/api/channels", EMAIL)["id"]
    before = call(server, "GET", "/api/rules").json()
    refused = call(server, "POST", "/api/rules", rule_with(channels=[real, "ch_missing"]))
    assert refused.status_code == 400 and refused.json() == {"detail": "channels: no channel 'ch_missing'"}
    assert call(server, "GET", "/api/rules").json() == before

    rule_id = add(server, "/api/rules", rule_with(channels=[real]))["id"]
    kept = call(server, "GET", f"/api/rules/{rule_id}").json()
    refused = call(server, "PUT", f"/api/rules/{rule_id}", rule_with(channels=["ch_missing"]))
    assert refused.status_code == 400 and refused.json() == {"detail": "channels: no channel 'ch_missing'"}
    assert call(server, "GET", f"/api/rules/{rule_id}").json() == kept


def test_a_channel_named_by_rules_cannot_be_deleted(server: Server) -> None:
    channel = add(server, "/api/channels", WEBHOOK)["id"]
    first = add(server, "/api/rules", rule_with(channels=[channel]))["id"]
    second = add(server, "/api/rules", rule_with(name="other", channels=[channel]))["id"]
    refused = call(server, "DELETE", f"/api/channels/{channel}")
    assert refused.status_code == 409
    named = ", ".join(sorted([first, second]))
    assert refused.json() == {"detail": f"channel {channel!r} is named by rules {named}; change them first"}
    assert channel in {c["id"] for c in call(server, "GET", "/api/channels").json()}

    call(server, "DELETE", f"/api/rules/{first}")
    call(server, "PUT", f"/api/rules/{second}", rule_with(channels=[]))
    assert call(server, "DELETE", f"/api/channels/{channel}").status_code == 200


def test_rules_are_read_with_the_read_key_and_written_with_the_admin_key(server: Server) -> None:
    rule_id = add(server, "/api/rules", RULE)["id"]
    assert call(server, "GET", "/api/rules", key=None).status_code == 401
    for path in ("/api/rules", f"/api/rules/{rule_id}"):
        assert call(server, "GET", path, key=READ_KEY).status_code == 200
    for method, path, body in (
        ("POST", "/api/rules", RULE),
        ("PUT", f"/api/rules/{rule_id}", RULE),
        ("DELETE", f"/api/rules/{rule_id}", None),
    ):
        assert call(server, method, path, body, key=None).status_code == 401
        assert call(server, method, path, body, key=READ_KEY).status_code == 403
    assert call(server, "GET", f"/api/rules/{rule_id}").status_code == 200


def test_an_id_that_is_no_id_is_refused(server: Server) -> None:
    refused = call(server, "GET", "/api/rules/a.b")
    assert refused.status_code == 400 and refused.json()["detail"].startswith("rule_id: String should match pattern")


def test_rules_and_channels_survive_a_restart(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    served = start_server(tmp_path, "sqlite", request)
    channel = add(served, "/api/channels", WEBHOOK)["id"]
    rule = add(served, "/api/rules", rule_with(channels=[channel]))
    served.stop()
    served.start()
    assert call(served, "GET", f"/api/rules/{rule['id']}").json() == rule
    assert [c["id"] for c in call(served, "GET", "/api/channels").json()] == [channel]


# --- test notifications ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver(SECRET) as running:
        yield running


def hook_to(server: Server, receiver: WebhookReceiver, path: str) -> str:
    return add(server, "/api/channels", {**WEBHOOK, "url": receiver.url(path)})["id"]  # type: ignore[no-any-return]


def test_a_test_notification_reaches_the_webhook_signed_with_a_fresh_key(
    server: Server, receiver: WebhookReceiver
) -> None:
    channel = hook_to(server, receiver, "/ok")
    keys = []
    for _ in range(2):
        tested = call(server, "POST", f"/api/channels/{channel}/test")
        assert tested.status_code == 200, tested.text
        assert tested.json() == {"delivered": True, "status": 200, "detail": "200 OK"}
        got = receiver.received[-1]
        assert got.verified
        body = json.loads(got.body)
        assert body["event"] == "test" and body["idempotency_key"] == got.headers["Idempotency-Key"]
        assert re.fullmatch(r"alert-0-test-\d+", body["idempotency_key"])
        assert body["alert"]["id"] == 0 and body["alert"]["state"] == "firing"
        assert body["rule"]["channels"] == [channel] and body["alert"]["rule"] == body["rule"]["id"]
        keys.append(body["idempotency_key"])
    assert keys[0] != keys[1]


def test_a_test_notification_says_why_it_was_not_delivered(server: Server, receiver: WebhookReceiver) -> None:
    failing = hook_to(server, receiver, "/fail")
    tested = call(server, "POST", f"/api/channels/{failing}/test").json()
    assert tested == {
        "delivered": False,
        "status": 500,
        "detail": "500 Internal Server Error: database on fire second line",
    }
    looping = hook_to(server, receiver, "/loop")
    tested = call(server, "POST", f"/api/channels/{looping}/test").json()
    assert tested == {"delivered": False, "status": 302, "detail": "302 Found: redirect to /loop not followed"}
    mail = add(server, "/api/channels", EMAIL)["id"]
    tested = call(server, "POST", f"/api/channels/{mail}/test").json()
    assert tested == {"delivered": False, "status": None, "detail": "no SMTP server set (smtp_host)"}


def test_testing_a_channel_needs_the_admin_key_and_a_channel_that_exists(server: Server) -> None:
    missing = call(server, "POST", "/api/channels/ch_missing/test")
    assert missing.status_code == 404 and missing.json() == {"detail": "no channel 'ch_missing'"}
    assert call(server, "POST", "/api/channels/ch_missing/test", key=None).status_code == 401
    assert call(server, "POST", "/api/channels/ch_missing/test", key=READ_KEY).status_code == 403


def test_a_test_email_reaches_the_smtp_server(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    with smtp_server() as mailbox:
        smtp = {"smtp_host": "127.0.0.1", "smtp_port": str(mailbox.port), "smtp_security": "none"}
        served = start_server(tmp_path, "sqlite", request, **{**smtp, "smtp_sender": "pulsewire@example.org"})
        channel = add(served, "/api/channels", EMAIL)["id"]
        tested = call(served, "POST", f"/api/channels/{channel}/test").json()
    assert tested == {"delivered": True, "status": 250, "detail": "250 accepted for 2 recipients"}
    assert mailbox.mail[0].recipients == EMAIL["to"]
    assert b"Subject: [info] test notification: test on test-device" in mailbox.mail[0].content


def test_an_https_webhook_is_checked_against_the_trust_store(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "receiver")
    with webhook_receiver(SECRET, tls=server_tls(cert, key)) as receiver:
        untrusting = start_server(tmp_path / "untrusting", "sqlite", request)
        channel = hook_to(untrusting, receiver, "/ok")
        tested = call(untrusting, "POST", f"/api/channels/{channel}/test").json()
        assert not tested["delivered"] and tested["detail"].startswith("TLS certificate not accepted"), tested
        assert receiver.received == []

        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the server inherits it: the receiver's CA is trusted
        trusting = start_server(tmp_path / "trusting", "sqlite", request)
        channel = hook_to(trusting, receiver, "/ok")
        tested = call(trusting, "POST", f"/api/channels/{channel}/test").json()
        assert tested == {"delivered": True, "status": 200, "detail": "200 OK"}
        assert receiver.received[-1].verified
