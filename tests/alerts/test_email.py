"""The alert email: subject, body, idempotency headers, and no way for a value to add a header."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest

from pulsewire.alerts.email import alert_email, iso_utc

SENDER = "pulsewire@alerts.example.org"
ALERT = {
    "id": 7,
    "rule": 3,
    "device": "freezer-1",
    "metric": "temperature",
    "state": "firing",
    "since": 1796040000000,
    "value": -4.5,
    "ts": 1796040300123,
    "acked": False,
}
RULE = {
    "id": 3,
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
HEADERS = sorted(
    ["From", "To", "Subject", "Message-ID", "X-Pulsewire-Idempotency-Key", "Content-Type", "Content-Transfer-Encoding"]
    + ["MIME-Version"]
)
INJECTIONS = [
    "warm\r\nBcc: evil@example.org",
    "warm\nBcc: evil@example.org",
    "warm\rBcc: evil@example.org",
    "warm\r\n\r\nfake body",
    "warm\x00\x0b\x0c\x85\u2028Bcc: evil@example.org",
]


def build(event: str = "firing", alert: dict[str, Any] = ALERT, rule: dict[str, Any] = RULE, **kw: Any) -> EmailMessage:
    kw.setdefault("idempotency_key", "alert-7-firing-0")
    return alert_email(SENDER, ["ops@example.org", "me@example.org"], event, alert, rule, **kw)


def sent(message: EmailMessage) -> EmailMessage:
    """The message as a mail server reads it: its bytes, parsed again."""
    parsed = message_from_bytes(message.as_bytes(), policy=SMTP)
    assert isinstance(parsed, EmailMessage)  # what the SMTP policy builds
    return parsed


def test_subject_and_addresses() -> None:
    message = sent(build())
    assert message["Subject"] == "[critical] freezer warm: firing on freezer-1"
    assert message["From"] == SENDER
    assert message["To"] == "ops@example.org, me@example.org"
    assert message.get_content_type() == "text/plain"


def test_the_body_says_value_since_reading_time_and_rule() -> None:
    body = sent(build()).get_content()
    assert "Value: -4.5 (temperature)" in body
    assert "Since: 2026-11-30T12:00:00.000Z" in body
    assert "Reading at: 2026-11-30T12:05:00.123Z" in body
    assert "Rule: freezer warm: temperature > -10 on freezer-1 for 300 s, severity critical" in body


def test_a_band_and_a_no_data_rule_read_as_words() -> None:
    band = {**RULE, "op": "outside", "low": 2, "high": 8, "value": None}
    assert "temperature outside 2..8 on freezer-1" in sent(build(rule=band)).get_content()
    no_data = {**RULE, "kind": "no_data", "metric": None, "device": "*", "op": None}
    body = sent(build(alert={**ALERT, "metric": None, "value": None}, rule=no_data)).get_content()
    assert "Rule: freezer warm: no data (any metric) from * for 300 s" in body
    assert "Value: None\r\n" in body or "Value: None\n" in body


def test_the_idempotency_key_is_in_the_message_id_and_a_header() -> None:
    message = sent(build(event="repeat", idempotency_key="alert-7-repeat-2"))
    assert message["Message-ID"] == "<alert-7-repeat-2@alerts.example.org>"
    assert message["X-Pulsewire-Idempotency-Key"] == "alert-7-repeat-2"
    # Every retry builds the same message.
    assert build(idempotency_key="k.1").as_bytes() == build(idempotency_key="k.1").as_bytes()


def test_a_date_when_given() -> None:
    assert "Date" not in build()
    when = datetime(2026, 11, 30, 12, 5, 1, tzinfo=UTC)
    assert sent(build(sent_at=when))["Date"] == "Mon, 30 Nov 2026 12:05:01 +0000"


@pytest.mark.parametrize("text", INJECTIONS)
@pytest.mark.parametrize(
    "part, field", [("rule", "name"), ("rule", "severity"), ("alert", "device"), ("alert", "value")]
)
def test_no_value_can_add_a_header(text: str, part: str, field: str) -> None:
    rule, alert = dict(RULE), dict(ALERT)
    (rule if part == "rule" else alert)[field] = text
    head = build(alert=alert, rule=rule).as_bytes().split(b"\r\n\r\n", 1)[0]
    message = sent(build(alert=alert, rule=rule))
    assert sorted(message.keys()) == HEADERS
    assert message.get_all("Bcc") is None
    assert b"\nBcc:" not in head and b"\rBcc:" not in head
    assert "\r" not in message["Subject"] and "\n" not in message["Subject"]
    # The text is still there, neutralised, for a human to read.
    assert "warm" in message.get_content()
    assert not any(line.startswith("Bcc:") for line in message.get_content().splitlines())


@pytest.mark.parametrize(
    "sender, to",
    [
        ("pulsewire@example.org\r\nBcc: evil@example.org", ["ops@example.org"]),
        ("Pulsewire <pulsewire@example.org>", ["ops@example.org"]),
        (SENDER, ["ops@example.org\r\nBcc: evil@example.org"]),
        (SENDER, ["ops@example.org, evil@example.org"]),
        (SENDER, ["Ops <ops@example.org>"]),
        (SENDER, []),
    ],
)
def test_bad_addresses_are_refused(sender: str, to: list[str]) -> None:
    with pytest.raises(ValueError):
        alert_email(sender, to, "firing", ALERT, RULE, idempotency_key="k")


@pytest.mark.parametrize("key", ["", "k\r\nBcc: evil@example.org", "a>b", "a@b", "a b", "x" * 129, ".k", "k.", "k..1"])
def test_a_bad_key_is_refused(key: str) -> None:
    with pytest.raises(ValueError):
        build(idempotency_key=key)


def test_an_unknown_event_is_refused() -> None:
    with pytest.raises(ValueError):
        build(event="fired")


@pytest.mark.parametrize(
    "ms, text",
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1796040300123, "2026-11-30T12:05:00.123Z"),
        (-1, "1969-12-31T23:59:59.999Z"),
        (2**53 - 1, "unknown"),  # past year 9999
        (None, "unknown"),
        (1.5, "unknown"),
        (True, "unknown"),
    ],
)
def test_iso_utc(ms: object, text: str) -> None:
    assert iso_utc(ms) == text
