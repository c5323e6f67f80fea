"""Bucketed reads on SQLite walk the buckets; they must answer exactly as GROUP BY does."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, event, text

from pulsewire.storage import queries
from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.queries import AGGREGATES, TelemetryQuery, read_series, series_statement, stream_series

SERIES = {1: 0, 2: 0, 3: 0}  # series id -> readings (filled below)
# Range ends on, just before and just after readings: where an off-by-one in the walk would show.
_STAMPS = [1_000 + 37 * i for i in range(0, 3_000, 97)] + [
    10_000_000 * b + 5_000 + 11 * i for b in range(5) for i in (0, 1, 199)
]
EDGES = sorted({t + d for t in [*_STAMPS, 123_456] for d in (-1, 0, 1)})


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    eng = open_engine(f"sqlite:///{tmp_path_factory.mktemp('queries') / 'q.db'}")
    migrate(eng)
    with eng.begin() as conn:
        rows: list[dict[str, Any]] = []
        # 1: dense and regular; 2: bursts with long gaps; 3: one reading. Values mix ints and floats.
        rows += [{"s": 1, "t": 1_000 + 37 * i, "v": (i % 13) * 0.7 - 3, "b": False} for i in range(3_000)]
        for burst in range(5):
            base = 10_000_000 * burst + 5_000
            rows += [{"s": 2, "t": base + 11 * i, "v": (i * 7) % 5, "b": False} for i in range(200)]
        rows.append({"s": 3, "t": 123_456, "v": 42.5, "b": False})
        conn.execute(text("INSERT INTO readings (series_id, ts, value, is_bool) VALUES (:s, :t, :v, :b)"), rows)
    for row in rows:
        SERIES[row["s"]] += 1
    yield eng
    eng.dispose()


def group_by(engine: Engine, series_id: int, q: TelemetryQuery) -> list[tuple[Any, ...]]:
    """(bucket, value, ...) rows as GROUP BY gives them (the last column, is_bool, left out)."""
    with engine.connect() as conn:
        return [tuple(row[:-1]) for row in conn.execute(series_statement(series_id, q))]


def walked(engine: Engine, series_id: int, q: TelemetryQuery) -> tuple[list[tuple[Any, ...]], list[str]]:
    statements: list[str] = []

    def record(conn: Any, cursor: Any, statement: str, *rest: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        with engine.connect() as conn:
            return list(read_series(conn, series_id, q)), statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


# One aggregate by name, or several distinct ones in any order (as `agg=max,avg` asks).
aggregates_strategy = st.one_of(
    st.sampled_from(AGGREGATES),
    st.lists(st.sampled_from(AGGREGATES), min_size=1, max_size=len(AGGREGATES), unique=True).map(tuple),
)

queries_strategy = st.builds(
    lambda sid, a, b, width, agg, order, limit: (
        sid,
        TelemetryQuery(start=min(a, b), end=max(a, b), limit=limit, order=order, interval=width, agg=agg),
    ),
    st.sampled_from(sorted(SERIES)),
    st.one_of(st.sampled_from(EDGES), st.integers(0, 50_000_000)),
    st.one_of(st.sampled_from(EDGES), st.integers(0, 60_000_000)),
    st.sampled_from([1, 7, 100, 1_000, 5_000, 60_000, 900_000, 3_600_000]),
    aggregates_strategy,
    st.sampled_from(["asc", "desc"]),
    st.integers(1, 3_000),
)


@settings(max_examples=300, deadline=None)
@given(case=queries_strategy)
def test_the_walk_answers_exactly_as_group_by(engine: Engine, case: tuple[int, TelemetryQuery]) -> None:
    series_id, q = case
    got, _ = walked(engine, series_id, q)
    assert got == group_by(engine, series_id, q)
    assert all(len(point) == 1 + len(q.aggs) for point in got)


@settings(max_examples=60, deadline=None)
@given(case=queries_strategy)
def test_several_aggregates_are_each_the_one_asked_alone(engine: Engine, case: tuple[int, TelemetryQuery]) -> None:
    series_id, q = case
    together, _ = walked(engine, series_id, q)
    for column, agg in enumerate(q.aggs, start=1):
        alone, _ = walked(engine, series_id, replace(q, agg=agg))
        assert [(p[0], p[column]) for p in together] == alone


def test_several_aggregates_walk_one_range_aggregate_each(engine: Engine) -> None:
    q = TelemetryQuery(start=0, end=200_000, limit=1_000, order="asc", interval=1_000, agg=("avg", "min", "max"))
    got, statements = walked(engine, 1, q)
    walk = [s for s in statements if "WITH RECURSIVE" in s]
    assert len(walk) == 1 and walk[0].count("FROM readings") == 3, statements
    assert got == group_by(engine, 1, q) and len(got) == 111
    first = [v for t, v in read_all(engine, 1) if 1_000 <= t < 2_000]
    assert got[0][0] == 1_000 and got[0][2:] == (min(first), max(first))
    assert got[0][1] == pytest.approx(sum(first) / len(first), rel=1e-12)


def test_a_day_of_minutes_is_walked_not_sorted(engine: Engine) -> None:
    q = TelemetryQuery(start=0, end=200_000, limit=1_000, order="asc", interval=1_000, agg="avg")
    got, statements = walked(engine, 1, q)
    assert any("WITH RECURSIVE" in s for s in statements), statements
    assert got == group_by(engine, 1, q) and len(got) == 111  # readings from 1,000 to 111,963
    desc = TelemetryQuery(start=0, end=200_000, limit=5, order="desc", interval=1_000, agg="count")
    got_desc, _ = walked(engine, 1, desc)
    assert got_desc == group_by(engine, 1, desc) and [ts for ts, _ in got_desc] == [
        111_000,
        110_000,
        109_000,
        108_000,
        107_000,
    ]


def test_a_span_of_mostly_empty_buckets_uses_group_by(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    # Series 2: five bursts 10,000,000 ms apart; 1 ms buckets would be ~40 M to walk.
    q = TelemetryQuery(start=0, end=60_000_000, limit=10_000, order="asc", interval=1, agg="max")
    got, statements = walked(engine, 2, q)
    assert not any("WITH RECURSIVE" in s for s in statements)
    assert got == group_by(engine, 2, q) and len(got) == SERIES[2]
    monkeypatch.setattr(queries, "WALK_MAX_BUCKETS", 10**9)  # the walk gives the same, only slower
    walked_anyway, statements = walked(engine, 2, TelemetryQuery(0, 10_010_000, 10_000, "asc", 1_000, "max"))
    assert any("WITH RECURSIVE" in s for s in statements)
    assert walked_anyway == group_by(engine, 2, TelemetryQuery(0, 10_010_000, 10_000, "asc", 1_000, "max"))


def test_an_empty_range_and_streaming_in_chunks(engine: Engine) -> None:
    empty = TelemetryQuery(start=500_000_000, end=600_000_000, limit=10, order="asc", interval=1_000, agg="avg")
    assert walked(engine, 1, empty)[0] == []
    q = TelemetryQuery(start=0, end=10**9, limit=100_000, order="asc", interval=100, agg="sum")
    with engine.connect() as conn:
        chunks = list(stream_series(conn, 1, q, chunk=500))
    assert [len(c) for c in chunks[:-1]] == [500] * (len(chunks) - 1) and 0 < len(chunks[-1]) <= 500
    assert [p for c in chunks for p in c] == group_by(engine, 1, q)


def test_unknown_aggregate_never_reaches_the_sql(engine: Engine) -> None:
    bad = TelemetryQuery(start=0, end=10**9, limit=10, order="asc", interval=1_000, agg="avg); DROP TABLE x; --")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown aggregate"), engine.connect() as conn:
        read_series(conn, 1, bad)
    among_good = replace(bad, agg=("min", "max); DROP TABLE x; --"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown aggregate"), engine.connect() as conn:
        read_series(conn, 1, among_good)


def read_all(engine: Engine, series_id: int) -> list[tuple[int, float]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT ts, value FROM readings WHERE series_id = :s ORDER BY ts"), {"s": series_id})
        return [(ts, value) for ts, value in rows]
