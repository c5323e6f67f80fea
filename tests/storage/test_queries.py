"""Telemetry reads over every state storage can be in answer exactly as the plain reference."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, text

from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.foldcache import FoldCache
from pulsewire.storage.layout import DAY_MS, HOUR_MS, MINUTE_MS
from pulsewire.storage.queries import AGGREGATES, TelemetryQuery, read_series
from pulsewire.storage.upkeep import compact_all
from tests.storage import history
from tests.storage.reading import ALL_KEPT, read_points
from tests.support.server import database_url_for

TRUTH: dict[int, dict[int, tuple[float, bool]]] = {}
CACHE = FoldCache()


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Engine]:
    url = database_url_for(request.param, request) or f"sqlite:///{tmp_path_factory.mktemp('q') / 'q.db'}"
    eng = open_engine(url)
    migrate(eng)
    global CACHE
    TRUTH.clear()
    TRUTH.update(history.build(eng))
    CACHE = FoldCache()  # one per database, as one per server
    yield eng
    eng.dispose()


def test_the_history_is_in_every_state(stored: Engine) -> None:
    with stored.connect() as conn:
        blocks = conn.execute(text("SELECT res, count(*) FROM blocks GROUP BY res")).all()
        hot_in_packed = conn.execute(
            text("SELECT count(*) FROM readings WHERE ts < :t"), {"t": history.COMPACTED_BEFORE}
        ).scalar_one()
    assert {res for res, n in blocks if n} == {0, 1, 2} and hot_in_packed > 0


edge = st.one_of(
    st.integers(history.START - HOUR_MS, history.END + HOUR_MS),
    st.sampled_from([history.DAY + k * MINUTE_MS + d for k in range(-130, 130, 29) for d in (-1, 0, 1)]),
)
queries = st.builds(
    lambda a, b, width, agg, order, limit: TelemetryQuery(min(a, b), max(a, b), limit, order, width, agg),
    edge,
    edge,
    st.sampled_from([None, 7_000, 45_000, MINUTE_MS, 15 * MINUTE_MS, HOUR_MS, 3 * HOUR_MS, DAY_MS]),
    st.one_of(st.none(), st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=5, unique=True).map(tuple)),
    st.sampled_from(["asc", "desc"]),
    st.sampled_from([1, 7, 100_000]),
).filter(lambda q: q.interval is not None or q.agg is None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=st.sampled_from([1, 2, 3]), q=queries)
def test_every_query_answers_as_the_plain_reference(stored: Engine, sid: int, q: TelemetryQuery) -> None:
    with stored.connect() as conn:
        got = read_points(conn, sid, q)
    assert got == history.reference(TRUTH[sid], q)


def test_raw_values_come_back_bit_for_bit_and_booleans_stay_booleans(stored: Engine) -> None:
    q = TelemetryQuery(0, 10**15, 100_000, "asc")
    with stored.connect() as conn:
        for sid in (2, 3):
            got = read_points(conn, sid, q)
            want = history.reference(TRUTH[sid], q)
            assert [(ts, type(v), repr(v)) for ts, v in got] == [(ts, type(v), repr(v)) for ts, v in want]
    assert {type(v) for _, v in got} == {bool}


def test_a_week_long_range_with_nothing_in_most_of_it(stored: Engine) -> None:
    q = TelemetryQuery(history.DAY - 7 * DAY_MS, history.DAY + 7 * DAY_MS, 1000, "asc", HOUR_MS, ("count", "avg"))
    with stored.connect() as conn:
        assert read_points(conn, 1, q) == history.reference(TRUTH[1], q)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sid=st.sampled_from([1, 2, 3]), q=queries.filter(lambda q: q.interval is not None))
def test_folds_kept_for_the_next_query_answer_the_same(stored: Engine, sid: int, q: TelemetryQuery) -> None:
    with stored.connect() as conn:
        for _ in range(2):  # the second time from the cache where whole blocks were folded
            assert read_series(conn, sid, q, ALL_KEPT, CACHE).points == history.reference(TRUTH[sid], q)


def test_a_block_rewritten_by_compaction_is_not_taken_for_its_old_fold(stored: Engine) -> None:
    cache = FoldCache()
    q = TelemetryQuery(history.DAY - DAY_MS, history.DAY + DAY_MS, 100, "asc", 15 * MINUTE_MS, "count")
    with stored.connect() as conn:
        before = read_series(conn, 1, q, ALL_KEPT, cache).points
    late = history.DAY - DAY_MS + 3 * HOUR_MS  # a closed hour of the day before: its minute-day block changes
    with stored.begin() as conn:
        conn.execute(text("INSERT INTO readings VALUES (1, :t, 99.5, false)"), {"t": late})
    asyncio.run(compact_all(history.sync_runner(stored), history.COMPACTED_BEFORE, None))
    TRUTH[1][late] = (99.5, False)
    with stored.connect() as conn:
        after = read_series(conn, 1, q, ALL_KEPT, cache).points
    assert after == history.reference(TRUTH[1], q) and after != before
