"""Schemathesis hooks (SCHEMATHESIS_HOOKS): the telemetry rules that tie two query parameters.

OpenAPI describes each query parameter on its own, so it cannot say that `agg` needs `interval`
or that `start` may not be after `end` (docs/protocol.md lists both as 400). Generated requests
are made to keep these two rules before they are sent: `agg` without `interval` gets one, and a
`start` after `end` swaps with it. Each value stays as valid or invalid as it was generated, so a
request meant to be refused still is, and every other refusal still counts.
"""

from __future__ import annotations

from typing import Any

import schemathesis

from pulsewire.http.timeparse import parse_time

AN_INTERVAL = 60_000


def _ms(value: Any) -> int | None:
    try:
        return parse_time(str(value), "t")
    except ValueError:
        return None


@schemathesis.hook
def before_call(ctx: Any, case: Any, **kwargs: Any) -> None:
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
