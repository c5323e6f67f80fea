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

A release bundle generated as valid (any bytes, to the schema) is made a real one, of a version not
stored yet; a rollout generated as valid names the release the server fixture made, for every device; and a
valid request about one rollout names the rollout the fixture started (its id in
CONFORMANCE_ROLLOUT_ID), which random ids never reach.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

import schemathesis

from pulsewire.alerts.channels import ChannelError, parse_channel
from pulsewire.alerts.rules import RuleError, parse_rule
from pulsewire.http.timeparse import parse_time
from pulsewire.releases.bundle import make, pack

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
A_RELEASE = "1.0.0-conformance"  # uploaded by the server fixture (test_openapi_conformance.py)


def _ms(value: Any) -> int | None:
    try:
        return parse_time(str(value), "t")
    except ValueError:
        return None


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
    if case.meta is not None and case.meta.generation.mode.is_positive:
        _valid_alert_body(case)
        _valid_release_body(case)
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


def _valid_release_body(case: Any) -> None:
    path, method = case.operation.path, case.operation.method.upper()
    if path == "/api/releases" and method == "POST":
        version = "0.0." + secrets.token_hex(6)
        case.body = pack(make(version, [("main.py", f'FW_VERSION = "{version}"\n'.encode())]))
    elif path == "/api/rollouts" and method == "POST" and isinstance(case.body, dict):
        case.body["version"] = A_RELEASE
        case.body["devices"] = "*"  # the generated requests may have removed any one device
    elif path.startswith("/api/rollouts/{rollout_id}") and isinstance(case.path_parameters, dict):
        known = os.environ.get("CONFORMANCE_ROLLOUT_ID")
        if known:
            case.path_parameters["rollout_id"] = known
