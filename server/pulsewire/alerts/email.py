"""The notification email: a plain-text message built with the standard library, never by hand.

Names and values are checked where they come in (channels, rules, the device codec); here they are
neutralised once more, because a mail header is where an injected line break does harm: every
control character becomes a space before it reaches the subject or the body, the addresses must be
plain addr-specs, and the `email` package itself refuses a header holding CR or LF.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from pulsewire.alerts.channels import address_problem
from pulsewire.alerts.names import CONTROL
from pulsewire.alerts.webhook import EVENTS

IDEMPOTENCY_HEADER = "X-Pulsewire-Idempotency-Key"
# What idempotency_key makes, and what a Message-ID's left part may be (RFC 5322 3.6.4: a dot-atom).
_KEY = re.compile(r"(?=.{1,128}\Z)[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def alert_email(
    sender: str,
    to: Iterable[str],
    event: str,
    alert: Mapping[str, Any],
    rule: Mapping[str, Any],
    *,
    idempotency_key: str,
    sent_at: datetime | None = None,
) -> EmailMessage:
    """The message for one notification; `alert` and `rule` are their JSON objects as the API shows.

    The idempotency key is in the Message-ID and in a header of its own, so every retry of one
    notification is the same message to the receiving mail system. Raises ValueError for a bad
    address, event or key (a channel that passed `parse_channel` never has one).
    """
    recipients = [_checked_address(a, "to") for a in to]
    if not recipients:
        raise ValueError("to: no recipients")
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    if not _KEY.match(idempotency_key):
        raise ValueError("idempotency_key: 1 to 128 letters, digits, '_', '-', and single inner dots")
    message = EmailMessage(policy=SMTP)  # CRLF line ends, as SMTP sends them
    message["From"] = _checked_address(sender, "sender")
    message["To"] = ", ".join(recipients)
    message["Subject"] = subject(event, alert, rule)
    message["Message-ID"] = f"<{idempotency_key}@{sender.rpartition('@')[2]}>"
    message[IDEMPOTENCY_HEADER] = idempotency_key
    if sent_at is not None:
        message["Date"] = format_datetime(sent_at.astimezone(UTC))
    message.set_content(text(event, alert, rule))  # 7bit when ASCII, else UTF-8
    return message


def subject(event: str, alert: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    """`[critical] freezer warm: firing on freezer-1`."""
    return _clean(f"[{rule.get('severity')}] {rule.get('name')}: {event} on {alert.get('device')}")


def text(event: str, alert: Mapping[str, Any], rule: Mapping[str, Any]) -> str:
    metric = alert.get("metric")
    lines = [
        subject(event, alert, rule),
        "",
        f"Device: {alert.get('device')}",
        f"Value: {alert.get('value')}" + (f" ({metric})" if metric else ""),
        f"Since: {iso_utc(alert.get('since'))}",
        f"Reading at: {iso_utc(alert.get('ts'))}",
        f"Rule: {rule.get('name')}: {describe_rule(rule)}",
        f"Alert: {alert.get('id')}, {alert.get('state')}",
    ]
    return "\n".join(_clean(line) for line in lines) + "\n"


def describe_rule(rule: Mapping[str, Any]) -> str:
    """The rule in words: `temperature > -10 for 300 s, severity critical`."""
    target = rule.get("metric") or "any metric"
    if rule.get("kind") == "no_data":
        condition = f"no data ({target}) from {rule.get('device')}"
    elif rule.get("op") in ("outside", "inside"):
        condition = f"{target} {rule.get('op')} {rule.get('low')}..{rule.get('high')} on {rule.get('device')}"
    else:
        condition = f"{target} {rule.get('op')} {rule.get('value')} on {rule.get('device')}"
    return f"{condition} for {rule.get('for_s', 0)} s, severity {rule.get('severity')}"


def iso_utc(ms: object) -> str:
    """Milliseconds since the epoch as ISO 8601 UTC (`2026-11-30T12:05:00.000Z`)."""
    if type(ms) is not int:
        return "unknown"
    try:  # whole milliseconds added to the epoch: no float rounding
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return "unknown"
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _clean(text: str) -> str:
    # Defence in depth: a line break in a name would start a new header in the subject, or a
    # line that looks like another field in the body; a space keeps the text readable.
    return CONTROL.sub(" ", text)


def _checked_address(address: str, field: str) -> str:
    problem = address_problem(address)
    if problem:
        raise ValueError(f"{field}: {problem}")
    return address
