"""ISO_TIME, the grammar of times the OpenAPI document gives, is exactly what parse_time takes."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsewire.http.timeparse import ISO_RE, ISO_TIME, parse_time
from pulsewire.protocol.rules import MAX_TS


@settings(max_examples=500, deadline=None)
@given(st.from_regex(ISO_TIME, fullmatch=True))
def test_every_time_the_pattern_allows_is_taken(text: str) -> None:
    assert 0 <= parse_time(text, "start") <= MAX_TS


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789-:T.Z+ WwZz", max_size=40))
def test_a_string_is_taken_only_as_epoch_ms_or_by_the_pattern(text: str) -> None:
    try:
        parse_time(text, "start")
    except ValueError:
        return
    assert text.isascii() and (text.lstrip("-").isdigit() or ISO_RE.fullmatch(text)), text


def test_every_calendar_day_from_1970_matches_and_no_other() -> None:
    day, days = date(1970, 1, 1), 0
    while day.year < 2401:
        assert ISO_RE.fullmatch(day.isoformat()), day
        day += timedelta(days=1)
        days += 1
    for text in ("2023-02-29", "2100-02-29", "2025-04-31", "2025-13-01", "2025-00-10", "1969-12-31", "2025-1-1"):
        assert not ISO_RE.fullmatch(text), text
    assert ISO_RE.fullmatch("2024-02-29") and ISO_RE.fullmatch("2000-02-29")


@pytest.mark.parametrize(
    "text",
    [
        " 1763700000123",  # no spaces around
        "2025-11-21 04:40:00",  # T, not a space
        "2025-11-21T04",  # hours and minutes at least
        "2025-W47-5",  # week dates are ISO 8601, but not in the grammar
        "2025-11-21T04:40:00+01:00:30",
        "1970-01-01T00:30+01:00",  # before the epoch
        "2025-11-21T04:40:00Z\n",
    ],
)
def test_other_forms_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="neither epoch milliseconds nor an ISO 8601 time"):
        parse_time(text, "start")


def test_the_documented_forms_are_taken() -> None:
    assert parse_time("2025-11-21", "start") == 1763683200000
    assert parse_time("2025-11-21T04:40", "start") == 1763700000000
    assert parse_time("2025-11-21T05:40:00+01:00", "start") == 1763700000000
    assert parse_time("2025-11-21T04:40:00.123456789Z", "start") == 1763700000123
    assert parse_time("1970-01-01T00:30-01:00", "start") == 5_400_000
