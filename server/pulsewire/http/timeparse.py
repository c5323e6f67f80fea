"""Times given to the HTTP API: epoch milliseconds or ISO 8601, to epoch milliseconds."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from pulsewire.protocol.rules import MAX_TS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_MS = re.compile(r"-?[0-9]+")


def parse_time(text: str, name: str) -> int:
    """`1763700000123`, `2025-11-21T04:40:00Z` or `2025-11-21T04:40:00+01:00`; a time without an offset is UTC.

    Raises ValueError with a message naming the parameter.
    """
    text = text.strip()
    if EPOCH_MS.fullmatch(text):
        ms = int(text)
    else:
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name}: {text[:40]!r} is neither epoch milliseconds nor an ISO 8601 time") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        ms = (when - EPOCH) // timedelta(milliseconds=1)  # exact: float seconds would round some ms down
    if not 0 <= ms <= MAX_TS:
        raise ValueError(f"{name}: {ms} is out of range 0..{MAX_TS} (ms since the Unix epoch)")
    return ms
