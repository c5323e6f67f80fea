"""The query planner: which resolution answers which part of a bucketed range."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pulsewire.storage.layout import DAY_MS, HOUR, HOUR_MS, MINUTE, MINUTE_MS, RAW
from pulsewire.storage.plan import Segment, floors_for, plan

ALL_KEPT = {RAW: 0, MINUTE: 0, HOUR: 0}
WIDTHS = [1, 1_000, 45_000, MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 6 * HOUR_MS, DAY_MS]
stamps = st.integers(0, 40 * DAY_MS)


def covers(segments: list[Segment], lo: int, hi: int) -> bool:
    at = lo
    for seg in segments:
        if seg.lo != at:
            return False
        at = seg.hi + 1
    return at == hi + 1


@given(stamps, stamps, st.sampled_from(WIDTHS))
def test_with_everything_kept_the_segments_tile_the_range_exactly(a: int, b: int, width: int) -> None:
    lo, hi = min(a, b), max(a, b)
    segments = plan(lo, hi, width, ALL_KEPT)
    assert covers(segments, lo, hi)
    for seg in segments:
        assert seg.exact
        if seg.res is not RAW:
            assert width % seg.res.bucket_ms == 0  # whole rollup buckets make whole query buckets
            assert seg.lo % seg.res.bucket_ms == 0 and (seg.hi + 1) % seg.res.bucket_ms == 0


def test_the_coarsest_rollup_serves_the_middle_and_finer_ones_the_edges() -> None:
    lo, hi = 10 * DAY_MS + 90_500, 12 * DAY_MS + 30_000  # neither end on a minute
    assert plan(lo, hi, HOUR_MS, ALL_KEPT) == [
        Segment(RAW, lo, 10 * DAY_MS + 119_999),
        Segment(MINUTE, 10 * DAY_MS + 120_000, 10 * DAY_MS + HOUR_MS - 1),
        Segment(HOUR, 10 * DAY_MS + HOUR_MS, 12 * DAY_MS - 1),
        Segment(RAW, 12 * DAY_MS, hi),
    ]
    assert [s.res for s in plan(lo, hi, 15 * MINUTE_MS, ALL_KEPT)] == [RAW, MINUTE, RAW]  # 15 min: no hours
    assert [s.res for s in plan(lo, hi, 45_000, ALL_KEPT)] == [RAW]  # not whole minutes: raw only


def test_where_raw_readings_expired_rollups_answer_and_say_they_are_not_exact() -> None:
    floors = {RAW: 20 * DAY_MS, MINUTE: 0, HOUR: 0}
    lo, hi = 10 * DAY_MS + 500, 30 * DAY_MS + 500
    segments = plan(lo, hi, HOUR_MS, floors)
    assert covers(segments, lo, hi)
    assert segments[0] == Segment(MINUTE, lo, 10 * DAY_MS + MINUTE_MS - 1, exact=False)
    assert all(s.exact for s in segments[1:])
    assert segments[-1] == Segment(RAW, 30 * DAY_MS, hi)  # after the raw floor, raw at the edge again


def test_nothing_is_planned_before_every_resolution_expired() -> None:
    floors = {RAW: 20 * DAY_MS, MINUTE: 18 * DAY_MS, HOUR: 16 * DAY_MS}
    segments = plan(0, 21 * DAY_MS, DAY_MS, floors)
    assert segments[0].lo == 16 * DAY_MS and segments[0].res is HOUR


def test_floors_start_at_the_window_holding_the_cutoff() -> None:
    floors = floors_for({RAW: 5 * HOUR_MS + 7, MINUTE: 3 * DAY_MS + 7, HOUR: None})
    assert floors == {RAW: 5 * HOUR_MS, MINUTE: 3 * DAY_MS, HOUR: 0}
