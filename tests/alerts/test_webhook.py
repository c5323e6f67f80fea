"""The webhook request: body bytes, signature, headers, idempotency keys, and what an answer means."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from pulsewire import __version__
from pulsewire.alerts.webhook import (
    classify,
    idempotency_key,
    signature,
    verify,
    webhook_body,
    webhook_headers,
)

SECRET = "s3cr3t-0123456789abcdef"
ALERT = {
    "id": 7,
    "rule": 3,
    "device": "freezer-1",
    "metric": "temperature",
    "state": "firing",
    "since": 1796040000000,
    "value": -4.5,
    "ts": 1796040300000,
    "acked": False,
}
RULE = {"id": 3, "name": "freezer warm", "kind": "threshold", "op": ">", "value": -10, "severity": "critical"}


def test_the_body_is_compact_utf8_json_with_the_documented_keys_in_order() -> None:
    body = webhook_body("firing", ALERT, {**RULE, "name": "Gefrierschrank wärmer"}, "alert-7-firing-0")
    assert b" " not in body.replace("Gefrierschrank wärmer".encode(), b"") and b"\n" not in body
    assert "wärmer".encode() in body  # UTF-8 as such, not \u escapes
    decoded = json.loads(body.decode("utf-8"))
    assert list(decoded) == ["event", "alert", "rule", "idempotency_key"]
    assert decoded["event"] == "firing"
    assert decoded["alert"] == ALERT
    assert decoded["idempotency_key"] == "alert-7-firing-0"
    assert body.startswith(b'{"event":"firing","alert":{"id":7,"rule":3,"device":"freezer-1",')


def test_the_body_refuses_an_unknown_event_and_values_that_are_not_json() -> None:
    with pytest.raises(ValueError):
        webhook_body("fired", ALERT, RULE, "k")
    with pytest.raises(ValueError):
        webhook_body("firing", {**ALERT, "value": float("nan")}, RULE, "k")


def test_the_signature_is_the_hmac_sha256_of_the_raw_body() -> None:
    body = webhook_body("firing", ALERT, RULE, "alert-7-firing-0")
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body) == "sha256=" + expected


@pytest.mark.parametrize(
    "secret, body, hex_digest",
    [
        # RFC 4231 section 4.3 (test case 2), HMAC-SHA-256.
        ("Jefe", b"what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        # `printf '%s' BODY | openssl dgst -sha256 -hmac SECRET`
        (
            SECRET,
            b'{"event":"test","alert":{"id":1},"rule":{"name":"r"},"idempotency_key":"alert-1-test-0"}',
            "be4ae8668e93c9f1dfc1f3b36f0854ca887b10363413e77dc95e37c63fffc1fd",
        ),
    ],
)
def test_known_answers(secret: str, body: bytes, hex_digest: str) -> None:
    assert signature(secret, body) == f"sha256={hex_digest}"
    assert verify(secret, body, f"sha256={hex_digest}")


def test_verify_accepts_the_signature_and_nothing_else() -> None:
    body = webhook_body("resolved", ALERT, RULE, "alert-7-resolved-0")
    good = signature(SECRET, body)
    assert verify(SECRET, body, good)
    assert verify(SECRET, body, good.upper().replace("SHA256=", "sha256="))  # hex case is not meaning
    assert not verify(SECRET, body + b" ", good)
    assert not verify(SECRET + "x", body, good)
    flipped = good[:-1] + ("0" if good[-1] != "0" else "1")
    assert not verify(SECRET, body, flipped)
    for header in ("", good[7:], "sha1=" + good[7:], good + "00", good[:-2], "sha256=" + "g" * 64, good + "\n"):
        assert not verify(SECRET, body, header), header
    assert not verify(SECRET, body, "sha256=" + "é" * 64)  # non-ASCII: False, not a TypeError
    assert not verify(SECRET, body, None)  # no header at all


def test_the_headers() -> None:
    body = webhook_body("firing", ALERT, RULE, "alert-7-firing-0")
    headers = webhook_headers(SECRET, body, "alert-7-firing-0")
    assert headers == {
        "Content-Type": "application/json",
        "X-Pulsewire-Signature": signature(SECRET, body),
        "Idempotency-Key": "alert-7-firing-0",
        "User-Agent": f"pulsewire/{__version__}",
    }
    assert SECRET not in "".join(headers.values())


def test_one_key_per_notification_the_same_for_each_retry() -> None:
    assert idempotency_key(7, "firing", 0) == idempotency_key(7, "firing", 0) == "alert-7-firing-0"
    keys = {
        idempotency_key(alert, event, n)
        for alert in (7, 17, "7", "a.b")
        for event in ("firing", "repeat", "resolved", "test")
        for n in range(5)
    }
    assert len(keys) == 3 * 4 * 5  # 7 and "7" are one alert id; every other triple differs


@pytest.mark.parametrize(
    "alert_id, event, n",
    [
        (7, "fired", 0),
        (7, "firing", -1),
        (7, "firing", 1.0),
        (7, "firing", True),
        (True, "firing", 0),
        ("a-b", "firing", 0),
        ("a\r\nX: 1", "firing", 0),
        ("", "firing", 0),
        ("x" * 65, "firing", 0),
        ("a..b", "firing", 0),
        (".a", "firing", 0),
        (-1, "firing", 0),
    ],
)
def test_bad_key_parts_are_refused(alert_id: object, event: str, n: object) -> None:
    with pytest.raises(ValueError):
        idempotency_key(alert_id, event, n)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_a_2xx_is_delivery(status: int) -> None:
    assert classify(status) == "delivered"


@pytest.mark.parametrize("status", [None, 100, 199, 300, 301, 302, 307, 308, 400, 401, 404, 410, 429, 500, 503, 600])
def test_anything_else_is_retried(status: int | None) -> None:
    assert classify(status) == "retry"
