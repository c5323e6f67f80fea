"""Times given to the HTTP API: epoch milliseconds or ISO 8601, to epoch milliseconds.

ISO_TIME is the one grammar of ISO 8601 times the server reads: the API's OpenAPI document gives
it as the pattern of `start` and `end`, and parse_time refuses any other string, so what the
document allows is what the server takes. It admits real calendar dates only (February 29 in leap
years), from 1970 on; on 1970-01-01 a time with a `+` offset is refused, as it may fall before the epoch.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pulsewire.protocol.rules import MAX_TS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MS = re.compile(r"-?[0-9]+")

_YEAR = r"(?:19[7-9][0-9]|[2-9][0-9]{3})"
_LEAP_YEAR = r"(?:19(?:7[26]|8[048]|9[26])|[2-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[2468][048]|[3579][26])00)"
_MONTH_DAY = r"(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_DATE = rf"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_HH_MM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_TIME = rf"{_HH_MM}(?::[0-5][0-9](?:\.[0-9]{{1,9}})?)?(?:Z|[+-]{_HH_MM})?"
_NOT_BEFORE_THE_EPOCH = r"(?!1970-01-01T[0-9:.]*\+)"  # a + offset on the first day may reach back past it
ISO_TIME = rf"^{_NOT_BEFORE_THE_EPOCH}{_DATE}(?:T{_TIME})?$"  # a JSON Schema (ECMA-262) pattern, and a Python one
ISO_RE = re.compile(ISO_TIME)
# A query parameter that `parse_time` reads, as OpenAPI describes it.
TIME_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TS}, {"type": "string", "pattern": ISO_TIME}]}


def parse_time(text: str, name: str) -> int:
    """`1763700000123`, `2025-11-21T04:40:00Z` or `2025-11-21T04:40:00+01:00`; a time without an offset is UTC.

    Raises ValueError with a message naming the parameter.
    """
    if EPOCH_MS.fullmatch(text):
        ms = int(text)
    else:
        if not ISO_RE.fullmatch(text):
            raise ValueError(f"{name}: {text[:40]!r} is neither epoch milliseconds nor an ISO 8601 time")
        when = datetime.fromisoformat(text)
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ms = (when - EPOCH) // timedelta(milliseconds=1)  # exact: float seconds would round some ms down
    if not 0 <= ms <= MAX_TS:
        raise ValueError(f"{name}: {ms} is out of range 0..{MAX_TS} (ms since the Unix epoch)")
    return ms
