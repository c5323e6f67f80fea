"""The outbox's claims in storage: a claimed notification is due for nobody else until its claim
runs out, then it is claimable again; an outcome replaces the claim only while the row still holds
it; a released claim is due at once; and on PostgreSQL two claims at once, from two transactions
or from many threads, never get the same row and never wait for each other."""

from __future__ import annotations

import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine, insert, select, text

from pulsewire.storage.alert_log import FAILED, PENDING, SENT, Attempt, claim_due, record_attempts
from pulsewire.storage.engine import migrate, open_engine
from pulsewire.storage.schema import alert_notifications

T = TypeVar("T")
T0 = 1_763_700_000_000
LEASE = 40_000


def write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:  # what the writer's `call` does: one transaction
        return fn(conn)


def queue(engine: Engine, count: int, due: int = T0) -> list[int]:
    """`count` pending notifications, due at `due`; their ids."""
    batch = secrets.token_hex(4)
    rows = [
        {
            "alert_id": 1,
            "channel_id": "ch_1",
            "event": "firing",
            "key": f"alert-{batch}{i}-firing-0",
            "body": {"alert": {}, "rule": {}},
            "status": PENDING,
            "created_ms": due,
            "next_at_ms": due,
        }
        for i in range(count)
    ]
    with engine.begin() as conn:
        return list(
            conn.execute(
                insert(alert_notifications).returning(alert_notifications.c.id, sort_by_parameter_order=True), rows
            ).scalars()
        )


def claim(engine: Engine, now: int, limit: int = 100) -> list[int]:
    return [n.id for n in write(engine, claim_due(now, now + LEASE, limit))]


def test_a_claimed_notification_is_due_again_only_once_its_claim_runs_out(engine: Engine) -> None:
    ids = queue(engine, 3)
    assert claim(engine, T0 - 1) == []  # not due yet
    first = write(engine, claim_due(T0, T0 + LEASE, 100))
    assert [n.id for n in first] == ids and {n.claim for n in first} == {T0 + LEASE}
    assert claim(engine, T0 + 1) == [] and claim(engine, T0 + LEASE - 1) == []  # held: due for nobody else
    # The instance that claimed them died without recording anything: after the lease they are
    # due again, for whoever claims them, with their attempts as they were.
    again = write(engine, claim_due(T0 + LEASE, T0 + 2 * LEASE, 100))
    assert [n.id for n in again] == ids and [n.attempts for n in again] == [0, 0, 0]
    assert [n.key for n in again] == [n.key for n in first]  # the same idempotency keys
    assert {n.claim for n in again} == {T0 + 2 * LEASE}


def test_an_outcome_replaces_the_claim_it_was_made_under_and_no_other(engine: Engine) -> None:
    sent, retried, failed, late = queue(engine, 4)
    held = {n.id: n.claim for n in write(engine, claim_due(T0, T0 + LEASE, 100))}

    def attempt(nid: int, status: str, next_at: int, claim: int | None = None) -> Attempt:
        done = None if status == PENDING else T0 + 5
        return Attempt(nid, held[nid] if claim is None else claim, status, 1, T0, next_at, done, "x")

    lost = write(
        engine,
        record_attempts(
            [
                attempt(sent, SENT, T0 + 5),
                attempt(retried, PENDING, T0 + 2_000),
                attempt(failed, FAILED, T0 + 5),
                attempt(late, SENT, T0 + 5, claim=T0 + LEASE - 1),  # a claim it no longer holds
            ]
        ),
    )
    assert lost == [late]
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(select(alert_notifications))}
    assert [rows[i].status for i in (sent, retried, failed, late)] == [SENT, PENDING, FAILED, PENDING]
    assert rows[late].next_at_ms == T0 + LEASE and rows[late].attempts == 0  # still under its claim
    assert claim(engine, T0 + 1_999) == []  # the retry is due at its own time, not at once
    assert claim(engine, T0 + 2_000) == [retried]
    assert claim(engine, T0 + LEASE) == [late]  # sent and failed are never due again
    # The claim taken over: an outcome from the first claim is not recorded over the second's.
    assert write(engine, record_attempts([attempt(late, PENDING, T0 + LEASE + 1)])) == [late]


def test_a_released_claim_is_due_at_once_and_a_stale_release_changes_nothing(engine: Engine) -> None:
    ids = queue(engine, 3)
    held = write(engine, claim_due(T0, T0 + LEASE, 100))
    assert claim(engine, T0 + 10) == []
    # Releasing two of them (claiming nothing): due at once, for any outbox.
    assert write(engine, claim_due(T0 + 10, T0 + 10 + LEASE, 0, release=held[:2])) == []
    assert claim(engine, T0 + 10) == ids[:2]
    # A release under a claim the row no longer holds leaves the new claim alone.
    assert write(engine, claim_due(T0 + 20, T0 + 20 + LEASE, 0, release=held[:2])) == []
    assert claim(engine, T0 + 20) == []


def test_a_claim_leaves_out_what_is_being_sent_here_and_takes_the_oldest_due_first(engine: Engine) -> None:
    late, early, middle = queue(engine, 1, due=T0 + 3), queue(engine, 1, due=T0 + 1), queue(engine, 1, due=T0 + 2)
    assert [n.id for n in write(engine, claim_due(T0 + 5, T0 + LEASE, 2, exclude=early))] == [*middle, *late]


@pytest.fixture
def pg(postgres_database: Callable[[], str]) -> Iterator[Engine]:
    eng = open_engine(postgres_database(), pool_size=16)
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.mark.postgres
def test_two_claims_at_once_get_different_rows_and_neither_waits(pg: Engine) -> None:
    ids = queue(pg, 10)
    with pg.connect() as first, pg.connect() as second:
        first.begin()
        mine = claim_due(T0, T0 + LEASE, 6)(first)  # its rows stay locked: the transaction is open
        second.begin()
        second.execute(text("SET LOCAL lock_timeout = '2s'"))  # waiting on `first` would fail the test
        theirs = claim_due(T0, T0 + LEASE, 10)(second)
        second.commit()
        first.commit()
    assert [n.id for n in mine] == ids[:6] and [n.id for n in theirs] == ids[6:]
    assert claim(pg, T0 + 1) == []


@pytest.mark.postgres
def test_many_outboxes_claiming_together_claim_each_row_once(pg: Engine) -> None:
    ids = queue(pg, 300)
    claimed: list[list[int]] = [[] for _ in range(8)]
    start = threading.Barrier(len(claimed))

    def outbox(mine: list[int]) -> None:
        start.wait()
        while got := claim(pg, T0, limit=3):
            mine += got

    threads = [threading.Thread(target=outbox, args=(mine,)) for mine in claimed]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    counts = Counter(i for mine in claimed for i in mine)
    assert sorted(counts) == ids and set(counts.values()) == {1}
    assert sum(1 for mine in claimed if mine) > 1  # they did claim side by side
