"""Schemathesis hooks (SCHEMATHESIS_HOOKS): the rules OpenAPI cannot state.

OpenAPI describes each query parameter on its own, so it cannot say that `agg` needs `interval`
or that `start` may not be after `end` (docs/protocol.md lists both as 400). Generated requests
are made to keep these two rules before they are sent: `agg` without `interval` gets one, and a
`start` after `end` swaps with it. Each value stays as valid or invalid as it was generated, so a
request meant to be refused still is, and every other refusal still counts.

Alert rule and channel bodies are checked by the pure cores (`parse_rule`, `parse_channel`), more
strictly than a JSON Schema can say (a URL's host, an address's parts, markup in a name), and a
rule's channels must exist. A body generated as valid is therefore made one: a rule names no
channels, and a body the core still refuses is swapped for the documented example. Bodies meant to
be refused are sent as generated.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from pulsewire.alerts.channels import ChannelError, parse_channel
from pulsewire.alerts.rules import RuleError, parse_rule
from pulsewire.http.timeparse import parse_time

AN_INTERVAL = 60_000
A_RULE = {
    "name": "freezer warm",
    "kind": "threshold",
    "device": "freezer-1",
    "metric": "temperature",
    "op": ">",
    "value": -10,
    "severity": "critical",
}
A_CHANNEL = {"name": "me", "type": "email", "to": ["a@example.org"]}


def _ms(value: Any) -> int | None:
    try:
        return parse_time(str(value), "t")
    except ValueError:
        return None


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _valid_alert_body(case)
    query = case.query
    if not isinstance(query, dict):
        return
    if query.get("agg") is not None and query.get("interval") is None:
        query["interval"] = AN_INTERVAL
    start, end = query.get("start"), query.get("end")
    if start is not None and end is not None:
        lo, hi = _ms(start), _ms(end)
        if lo is not None and hi is not None and lo > hi:
            query["start"], query["end"] = end, start


def _valid_alert_body(case: Any) -> None:
    path, method = case.operation.path, case.operation.method.upper()
    if path.startswith("/api/rules") and method in ("POST", "PUT"):
        if isinstance(case.body, dict) and "channels" in case.body:
            case.body["channels"] = []
        try:
            parse_rule(case.body)
        except RuleError:
            case.body = dict(A_RULE)
    elif path == "/api/channels" and method == "POST":
        try:
            parse_channel(case.body)
        except ChannelError:
            case.body = dict(A_CHANNEL)
