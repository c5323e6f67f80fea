"""Notifications end to end, against the real server: a crossing reading reaches a real webhook
receiver (which verifies the signature) and a real SMTP server over STARTTLS; repeats stop when
acknowledged; a replayed buffer notifies nothing; a failing or hanging receiver is retried and
never slows ingest; and a server killed with notifications queued delivers each of them, once by
key, after its restart."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections import Counter
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.certs import self_signed
from tests.support.clients import device, now_ms, send_batch
from tests.support.receivers import Received, WebhookReceiver, server_tls, smtp_server, webhook_receiver
from tests.support.server import Server, free_port, start_server
from tests.support.waiting import wait_until

SECRET = "a-webhook-secret-for-the-tests"
HOT = {"name": "too hot", "kind": "threshold", "metric": "temp", "op": ">", "value": 30, "severity": "critical"}
# Retries within the test's patience: the first after at most 0.2 s, none after more than 0.5 s;
# attempts of at most 1 s, so a claim lost with its instance runs out within 11 s (notify_claim_s).
FAST_RETRIES = {
    "notify_retry_first_s": "0.2",
    "notify_retry_cap_s": "0.5",
    "webhook_timeout_s": "1",
    "smtp_timeout_s": "1",
}


def api(server: Server, method: str, path: str, body: Any = None) -> httpx.Response:
    return httpx.request(method, server.base + path, json=body, headers=server.admin(), timeout=30)


def made(answer: httpx.Response) -> Any:
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def webhook(server: Server, url: str) -> str:
    return str(
        made(api(server, "POST", "/api/channels", {"name": "hook", "type": "webhook", "url": url, "secret": SECRET}))[
            "id"
        ]
    )


def rule(server: Server, device_id: str, channels: list[str], **changes: Any) -> str:
    return str(
        made(api(server, "POST", "/api/rules", {**HOT, "device": device_id, "channels": channels, **changes}))["id"]
    )


async def send(server: Server, token: str, *values: float, ts: int | None = None, first_seq: int = 1) -> None:
    """Each value as one acked reading, 1 ms apart from `ts` (default now)."""
    start = ts if ts is not None else now_ms()
    async with device(server, token) as ws:
        for i, value in enumerate(values):
            ack = await send_batch(ws, first_seq + i, [{"ts": start + i, "values": {"temp": value}}])
            assert ack["type"] == "ack", ack


def bodies(received: list[Received], path: str = "/ok") -> list[dict[str, Any]]:
    return [json.loads(r.body) for r in received if r.path == path]


def test_a_crossing_reaches_a_webhook_signed_and_an_email_over_starttls(
    tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path, "mail")
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the server trusts the mail server's certificate
    with webhook_receiver(SECRET) as receiver, smtp_server(starttls=server_tls(cert, key)) as mailbox:
        mail = {"smtp_host": "127.0.0.1", "smtp_port": str(mailbox.port), "smtp_sender": "pulsewire@example.org"}
        server = start_server(tmp_path / "server", "sqlite", request, **mail)
        device_id, token = server.register("freezer-1")
        hook = webhook(server, receiver.url("/ok"))
        email = made(api(server, "POST", "/api/channels", {"name": "me", "type": "email", "to": ["ops@example.org"]}))[
            "id"
        ]
        rule_id = rule(server, device_id, [hook, email])
        sent = time.monotonic()
        asyncio.run(send(server, token, 20, 35))
        wait_until(lambda: receiver.received and mailbox.mail, 5, "the webhook and the email")
        took = time.monotonic() - sent
        asyncio.run(send(server, token, 10, first_seq=10))
        wait_until(lambda: len(receiver.received) == 2 and len(mailbox.mail) == 2, 5, "the resolved notifications")

    firing, resolved = receiver.received
    assert firing.verified and resolved.verified
    note = json.loads(firing.body)
    assert (note["event"], note["rule"]["id"], note["rule"]["name"]) == ("firing", rule_id, "too hot")
    assert (note["alert"]["device"], note["alert"]["value"], note["alert"]["state"]) == (device_id, 35, "firing")
    assert note["idempotency_key"] == f"alert-{note['alert']['id']}-firing-0" == firing.headers["Idempotency-Key"]
    assert json.loads(resolved.body)["event"] == "resolved"
    assert json.loads(resolved.body)["idempotency_key"] == f"alert-{note['alert']['id']}-resolved-0"
    message = message_from_bytes(mailbox.mail[0].content, policy=default_policy)
    assert mailbox.mail[0].over_tls and mailbox.mail[0].recipients == ["ops@example.org"]
    assert "too hot" in str(message["Subject"]) and f"alert-{note['alert']['id']}-firing-0" in str(
        message["Message-ID"]
    )
    assert took < 5
    sent_total = server.metric_value("pulsewire_notifications_sent_total", 'type="webhook"')
    assert sent_total == 2 and server.metric_value("pulsewire_notifications_sent_total", 'type="email"') == 2


def test_repeats_come_until_acknowledged_and_a_replayed_buffer_notifies_nothing(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    with webhook_receiver(SECRET) as receiver:
        server = start_server(tmp_path, "sqlite", request)
        device_id, token = server.register("nagging-1")
        hook = webhook(server, receiver.url("/ok"))
        rule(server, device_id, [hook], repeat_s=1)
        asyncio.run(send(server, token, 40))
        wait_until(lambda: len(receiver.received) >= 3, 6, "a firing and two repeats")
        keys = [b["idempotency_key"] for b in bodies(receiver.received)]
        alert_id = bodies(receiver.received)[0]["alert"]["id"]
        assert keys[:3] == [f"alert-{alert_id}-firing-0", f"alert-{alert_id}-repeat-1", f"alert-{alert_id}-repeat-2"]
        made(api(server, "POST", f"/api/alerts/{alert_id}/ack", {}))
        count = len(receiver.received)
        time.sleep(2.5)
        assert len(receiver.received) <= count + 1  # one repeat may have been on its way already

        # A board back after an hour away: its buffer crosses and clears, all stale: nothing sent.
        replayed_id, replayed_token = server.register("replayed-1")
        rule(server, replayed_id, [hook])
        before = len(receiver.received)
        asyncio.run(send(server, replayed_token, 50, 51, 5, ts=now_ms() - 3_600_000))
        history = made(api(server, "GET", f"/api/alerts?device={replayed_id}"))["alerts"]
        assert [(a["state"], a["value"]) for a in history] == [("resolved", 50)]
        time.sleep(1)
        assert len(receiver.received) == before


def test_a_failing_receiver_is_retried_then_marked_failed_and_a_hanging_one_never_slows_ingest(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    settings = {**FAST_RETRIES, "notify_give_up_s": "2", "notify_concurrency": "2"}
    with webhook_receiver(SECRET) as receiver:
        server = start_server(tmp_path, "sqlite", request, **settings)
        device_id, token = server.register("flaky-1")
        failing, hanging = webhook(server, receiver.url("/fail")), webhook(server, receiver.url("/slow"))
        rule(server, device_id, [failing, hanging])
        asyncio.run(send(server, token, 40))
        alert_id = made(api(server, "GET", f"/api/alerts?state=firing&device={device_id}"))["alerts"][0]["id"]

        async def ingest_meanwhile() -> float:
            """Acks keep coming while both slots hang on /slow and /fail is retried."""
            slowest = 0.0
            async with device(server, token) as ws:
                for seq in range(100, 160):
                    started = time.monotonic()
                    ack = await send_batch(ws, seq, [{"ts": now_ms(), "values": {"temp": 41}}])
                    assert ack["type"] == "ack"
                    slowest = max(slowest, time.monotonic() - started)
                    await asyncio.sleep(0.02)
            return slowest

        assert asyncio.run(ingest_meanwhile()) < 0.5

        def settled() -> list[dict[str, Any]] | None:
            found = made(api(server, "GET", f"/api/alerts/{alert_id}/notifications"))["notifications"]
            return found if all(n["status"] == "failed" for n in found) else None

        notes = wait_until(settled, 15, "both notifications given up on")
    by_channel = {n["channel"]: n for n in notes}
    assert by_channel[failing]["attempts"] >= 3 and by_channel[failing]["last_error"].startswith("500")
    assert by_channel[hanging]["last_error"] == "timed out after 1 s"
    fails = [r for r in receiver.received if r.path == "/fail"]
    assert len({json.loads(r.body)["idempotency_key"] for r in fails}) == 1  # every retry, the same key
    assert server.metric_value("pulsewire_notifications_failed_total", 'type="webhook"') == 2
    assert server.metric_value("pulsewire_notifications_retried_total", 'type="webhook"') >= 2


def test_notifications_queued_when_the_server_is_killed_arrive_after_its_restart_once_each(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/ok"  # nothing listens there yet: the receiver is down
    server = start_server(tmp_path, "sqlite", request, **FAST_RETRIES)
    tokens = {}
    hook = webhook(server, url)
    for n in range(5):
        device_id, tokens[device_id] = server.register(f"killed-{n}")
        rule(server, device_id, [hook])
    for token in tokens.values():
        asyncio.run(send(server, token, 40, 10, 41))  # firing, resolved, firing again: 3 notifications each
    wait_until(
        lambda: server.metric_value("pulsewire_notifications_retried_total", 'type="webhook"') >= 15, 10, "retries"
    )
    assert server.proc is not None
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    with webhook_receiver(SECRET, port=port) as receiver:
        server.start()
        # Those in an attempt when it died come once their claim runs out.
        wait_until(lambda: len(received_keys(receiver)) == 15, 25, "every notification after the restart")
        time.sleep(1)  # anything sent twice would have come by now
    keys = Counter(received_keys(receiver))
    assert len(keys) == 15 and set(keys.values()) == {1}, keys
    assert all(r.verified for r in receiver.received)
    events = Counter(k.split("-")[2] for k in keys)
    assert events == {"firing": 10, "resolved": 5}


def received_keys(receiver: WebhookReceiver) -> list[str]:
    return [r.headers["Idempotency-Key"] for r in receiver.received]
