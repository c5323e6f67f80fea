"""The webhook request (docs/protocol.md, alerts): its body, signature, headers, what an answer means.

No I/O: the sender posts `webhook_body(...)` with `webhook_headers(...)` and hands the status it got
(or None) to `classify`. `alert` and `rule` are the JSON objects the API shows for them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any, Literal

from pulsewire import __version__

EVENTS = ("firing", "repeat", "resolved", "test")
SIGNATURE_HEADER = "X-Pulsewire-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = f"pulsewire/{__version__}"
_PREFIX = "sha256="
_SIGNATURE = re.compile(r"sha256=[0-9a-fA-F]{64}\Z")
# What an alert id may hold: it goes into a header and a Message-ID as it is.
_KEY_PART = re.compile(r"(?=.{1,64}\Z)[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*\Z")


def idempotency_key(alert_id: int | str, event: str, n: int) -> str:
    """The key of one notification: `alert-<alert id>-<event>-<n>`.

    `n` counts the notifications of that event for that alert (0 for `firing` and `resolved`; 1, 2,
    ... for each `repeat`). The key depends on nothing else, so every retry of a notification, even
    after a restart, carries the same key, and a receiver that saw it already can drop the copy.
    """
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    if type(n) is not int or n < 0:
        raise ValueError("n must be an integer >= 0")
    if isinstance(alert_id, bool) or not _KEY_PART.match(str(alert_id)):
        raise ValueError("alert_id must be an integer, or letters, digits, '_' and single inner dots")
    return f"alert-{alert_id}-{event}-{n}"


def webhook_body(event: str, alert: Mapping[str, Any], rule: Mapping[str, Any], idempotency_key: str) -> bytes:
    """The body, as compact UTF-8 JSON with the keys in the documented order; these bytes are signed."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}")
    document = {"event": event, "alert": dict(alert), "rule": dict(rule), "idempotency_key": idempotency_key}
    # allow_nan=False: NaN and Infinity are not JSON, and a strict receiver would refuse the body.
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body, keyed with the channel secret in UTF-8>`."""
    return _PREFIX + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify(secret: str, body: bytes, header: str | None) -> bool:
    """Is `header` the signature of `body`? Compared in constant time, so timing reveals nothing.

    None (a request with no signature header) is simply not a match.
    """
    if header is None or not _SIGNATURE.match(header):
        return False
    return hmac.compare_digest(signature(secret, body), header.lower())


def webhook_headers(secret: str, body: bytes, idempotency_key: str) -> dict[str, str]:
    """The headers to send with `body`. The key is in the body too (signed); the header lets a
    receiver or a proxy drop a copy without parsing the body."""
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, body),
        IDEMPOTENCY_HEADER: idempotency_key,
        "User-Agent": USER_AGENT,
    }


def classify(status: int | None) -> Literal["delivered", "retry"]:
    """What an answer means: a 2xx is delivery; anything else, or no answer (None), is retried.

    Redirects are not followed: the signature is for the configured URL, and following one would
    send the body somewhere the admin never named. A 4xx is retried too, as the contract says: the
    usual causes (a receiver mid-deploy answering 404, a secret being rotated answering 401, a
    rate limit answering 429) mend themselves within minutes, and a notification dropped on the
    first 4xx would be lost for good, while the retry schedule bounds what a receiver that stays
    wrong costs; it ends as a failed notification, visible to the admin.
    """
    if status is not None and 200 <= status <= 299:
        return "delivered"
    return "retry"
