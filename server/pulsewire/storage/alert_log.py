"""Alert states, the alert history and the notification outbox in the database.

`write_changes` runs inside the transaction that stores the readings behind the changes (or the
clock's own transaction), so an alert, its state and its notifications are committed together
with what caused them, or not at all. The reads serve the HTTP API and the outbox worker.

Several instances may share one database, each with an outbox. A pending notification is due
when its `next_at_ms` has passed; an outbox delivers only the rows it claimed, and a claim sets
`next_at_ms` to when the claim runs out (`claim_due`, or `write_changes` for the rows it queues),
so no other outbox finds the row due meanwhile. That value is also the claim's token: an outcome
or a release is written only while the row still holds it (`record_attempts`), so an instance
whose claim ran out, and was taken over, cannot overwrite the outcome of the one that took it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from pulsewire.alerts import evaluate
from pulsewire.alerts.engine import Change, Key, Pair, written
from pulsewire.alerts.rules import rule_to_json
from pulsewire.alerts.webhook import idempotency_key
from pulsewire.storage.schema import alert_notifications, alert_states, alerts

PENDING, SENT, FAILED = "pending", "sent", "failed"


@dataclass(frozen=True, slots=True)
class Notification:
    id: int
    alert_id: int
    channel_id: str
    event: str
    key: str
    body: Mapping[str, Any]
    attempts: int
    first_attempt_ms: int | None
    claim: int  # the next_at_ms this row holds while claimed here: the claim's end and its token


@dataclass(frozen=True, slots=True)
class Written:
    """An event as committed: for the live channel, and to wake the outbox."""

    event: str
    alert: dict[str, Any]
    notifications: list[Notification]  # queued by this event, due now


def load_pairs(conn: Connection) -> dict[Key, Pair]:
    """Every stored pair, with its episode's flags from the alert row."""
    rows = conn.execute(
        select(alert_states, alerts.c.announced, alerts.c.acked_at, alerts.c.repeats).outerjoin(
            alerts, alerts.c.id == alert_states.c.alert_id
        )
    )
    return {
        (r.rule_id, r.device_id): Pair(
            state=evaluate.from_json(r.state),
            alert_id=r.alert_id,
            announced=bool(r.announced),
            acked=r.acked_at is not None,
            repeats=r.repeats or 0,
            silenced_until=r.silenced_until,
        )
        for r in rows
    }


def write_changes(
    conn: Connection,
    changes: Sequence[Change],
    now: int,
    claim: int,
    skip_devices: frozenset[str] = frozenset(),
) -> tuple[dict[int, int], list[Written]]:
    """Write the changes in order. Returns the alert id each new episode got (by change index)
    and the events written. Changes of `skip_devices` (removed before their readings were
    stored) are left out. The notifications queued are claimed until `claim` by the outbox of
    this instance, which takes them once this transaction commits."""
    ids: dict[int, int] = {}
    current: dict[Key, int | None] = {}
    out: list[Written] = []
    states: dict[Key, Change] = {}
    for i, change in enumerate(changes):
        if change.key[1] in skip_devices or not written(change):
            continue
        states[change.key] = change
        alert_id = current.get(change.key, change.before.alert_id)
        if change.event is None:
            after, before = change.after, change.before
            if (
                after is not None
                and alert_id is not None
                and after.acked
                and (before.acked, before.silenced_until)
                != (
                    after.acked,
                    after.silenced_until,
                )
            ):
                if not before.acked:
                    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(acked_at=now))
                out.append(Written("ack", alert_json(_alert_row(conn, alert_id), change.after), []))
            continue
        if change.opens_episode:
            alert_id = _open(conn, change)
            ids[i] = alert_id
        elif alert_id is None:
            continue  # an episode never written (a rule's pair dropped before it fired)
        else:
            _update(conn, alert_id, change)
        current[change.key] = alert_id if change.event.kind != "resolved" else None
        alert = alert_json(_alert_row(conn, alert_id), change.after)
        queued = _notify(conn, change, alert_id, alert, now, claim) if change.notify else []
        out.append(Written(change.event.kind, alert, queued))
    for key, change in states.items():
        _store_state(conn, key, change.after, current.get(key, change.after.alert_id if change.after else None))
    return ids, out


def _open(conn: Connection, change: Change) -> int:
    assert change.event is not None
    rule = change.entry.rule
    alert_id = conn.execute(
        insert(alerts)
        .values(
            rule_id=change.key[0],
            rule_name=rule.name,
            severity=rule.severity,
            device_id=change.key[1],
            metric=rule.metric,
            state="firing",
            since=change.event.since,
            value=change.event.value,
            ts=change.event.ts,
            announced=change.notify,
        )
        .returning(alerts.c.id)
    ).scalar_one()
    return int(alert_id)


def _update(conn: Connection, alert_id: int, change: Change) -> None:
    event = change.event
    assert event is not None
    if event.kind == "resolved":  # value and ts stay those of the last reading that met the condition
        conn.execute(update(alerts).where(alerts.c.id == alert_id).values(state="resolved", resolved_at=event.ts))
        return
    values: dict[str, Any] = {"ts": event.ts}
    if event.value is not None:
        values["value"] = event.value
    if event.kind == "repeat":
        values["repeats"] = alerts.c.repeats + 1
    elif change.notify:  # a late firing, announced now
        values["announced"] = True
    conn.execute(update(alerts).where(alerts.c.id == alert_id).values(**values))


def _store_state(conn: Connection, key: Key, pair: Pair | None, alert_id: int | None) -> None:
    where = and_(alert_states.c.rule_id == key[0], alert_states.c.device_id == key[1])
    if pair is None or (pair.state.phase == evaluate.OK and pair.silenced_until is None):
        conn.execute(delete(alert_states).where(where))
        return
    values = {"state": evaluate.to_json(pair.state), "alert_id": alert_id, "silenced_until": pair.silenced_until}
    table_insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(alert_states)
    conn.execute(
        table_insert.values(rule_id=key[0], device_id=key[1], **values).on_conflict_do_update(
            index_elements=["rule_id", "device_id"], set_=values
        )
    )


def _notify(
    conn: Connection, change: Change, alert_id: int, alert: dict[str, Any], now: int, claim: int
) -> list[Notification]:
    """One outbox row per channel of the rule, claimed until `claim` by this instance's outbox
    (another instance's would otherwise find it due and send it too)."""
    assert change.event is not None
    rule = change.entry.rule
    if not rule.channels:
        return []
    event = change.event.kind
    key = idempotency_key(alert_id, event, change.counter)
    body = {"alert": alert, "rule": {"id": change.key[0], **rule_to_json(rule)}}
    row = {"alert_id": alert_id, "event": event, "key": key, "body": body, "status": PENDING}
    ids = conn.execute(
        insert(alert_notifications).returning(alert_notifications.c.id, sort_by_parameter_order=True),
        [{**row, "channel_id": c, "created_ms": now, "next_at_ms": claim} for c in rule.channels],
    ).scalars()
    return [
        Notification(i, alert_id, c, event, key, body, 0, None, claim) for i, c in zip(ids, rule.channels, strict=True)
    ]


# -- the alert as the API shows it


def alert_json(row: Any, pair: Pair | None = None) -> dict[str, Any]:
    """`row`: an alerts row; `pair`: the pair's current flags (silence), when known."""
    return {
        "id": row.id,
        "rule": row.rule_id,
        "rule_name": row.rule_name,
        "severity": row.severity,
        "device": row.device_id,
        "metric": row.metric,
        "state": row.state,
        "since": row.since,
        "value": row.value,
        "ts": row.ts,
        "resolved_at": row.resolved_at,
        "acked": row.acked_at is not None,
        "acked_at": row.acked_at,
        "silenced_until": pair.silenced_until if pair is not None else getattr(row, "silenced_until", None),
    }


def _alert_row(conn: Connection, alert_id: int) -> Any:
    return conn.execute(select(alerts).where(alerts.c.id == alert_id)).one()


_WITH_SILENCE = select(alerts, alert_states.c.silenced_until).outerjoin(
    alert_states, and_(alert_states.c.rule_id == alerts.c.rule_id, alert_states.c.device_id == alerts.c.device_id)
)


def firing_alerts(conn: Connection, device_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
    query = _WITH_SILENCE.where(alerts.c.state == "firing").order_by(alerts.c.since.desc(), alerts.c.id.desc())
    if device_ids is not None:
        query = query.where(alerts.c.device_id.in_(list(device_ids)))
    return [alert_json(r) for r in conn.execute(query)]


def alert_history(
    conn: Connection, start: int, end: int, limit: int, device_id: str | None = None, rule_id: str | None = None
) -> list[dict[str, Any]]:
    """Alerts whose episode overlaps [start, end], newest first."""
    query = (
        _WITH_SILENCE.where(alerts.c.since <= end, or_(alerts.c.resolved_at.is_(None), alerts.c.resolved_at >= start))
        .order_by(alerts.c.since.desc(), alerts.c.id.desc())
        .limit(limit)
    )
    if device_id is not None:
        query = query.where(alerts.c.device_id == device_id)
    if rule_id is not None:
        query = query.where(alerts.c.rule_id == rule_id)
    return [alert_json(r) for r in conn.execute(query)]


def get_alert(conn: Connection, alert_id: int) -> dict[str, Any] | None:
    row = conn.execute(_WITH_SILENCE.where(alerts.c.id == alert_id)).first()
    return alert_json(row) if row is not None else None


def acknowledge_resolved(alert_id: int, now: int) -> Callable[[Connection], bool]:
    """An alert that is not firing can still be acknowledged (it records who looked); returns
    whether the alert exists."""

    def run(conn: Connection) -> bool:
        done = conn.execute(
            update(alerts).where(alerts.c.id == alert_id, alerts.c.acked_at.is_(None)).values(acked_at=now)
        )
        return done.rowcount > 0 or conn.scalar(select(alerts.c.id).where(alerts.c.id == alert_id)) is not None

    return run


# -- the outbox


def claim_due(
    now: int, until: int, limit: int, exclude: Iterable[int] = (), release: Sequence[Notification] = ()
) -> Callable[[Connection], list[Notification]]:
    """Claim up to `limit` notifications due at `now` (but those in `exclude`, being delivered
    here) for delivery by the caller until `until`, oldest due first. `release`: claims the
    caller holds and will not use, made due at once first, for whichever outbox looks next.

    The rows are read and pushed to `until` in one transaction, the read locking what it returns
    and skipping rows another transaction has locked (PostgreSQL's FOR UPDATE SKIP LOCKED): two
    outboxes claiming at once never get the same row, and neither waits for the other. SQLite has
    one writer, so there the transaction alone does it (SQLAlchemy leaves the clause out)."""

    def run(conn: Connection) -> list[Notification]:
        if release:
            conn.execute(
                update(alert_notifications)
                .where(
                    alert_notifications.c.id == bindparam("nid"),
                    alert_notifications.c.status == PENDING,
                    alert_notifications.c.next_at_ms == bindparam("held"),
                )
                .values(next_at_ms=now),
                [{"nid": n.id, "held": n.claim} for n in release],
            )
        if limit <= 0:
            return []
        rows = conn.execute(
            select(alert_notifications)
            .where(
                alert_notifications.c.status == PENDING,
                alert_notifications.c.next_at_ms <= now,
                alert_notifications.c.id.not_in(list(exclude)),
            )
            .order_by(alert_notifications.c.next_at_ms, alert_notifications.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
        if rows:
            conn.execute(
                update(alert_notifications)
                .where(alert_notifications.c.id.in_([r.id for r in rows]))
                .values(next_at_ms=until)
            )
        return [
            Notification(r.id, r.alert_id, r.channel_id, r.event, r.key, r.body, r.attempts, r.first_attempt_ms, until)
            for r in rows
        ]

    return run


def next_due(conn: Connection) -> int | None:
    """When the earliest pending notification falls due, or its claim runs out (server ms), or None."""
    return conn.scalar(
        select(alert_notifications.c.next_at_ms)
        .where(alert_notifications.c.status == PENDING)
        .order_by(alert_notifications.c.next_at_ms)
        .limit(1)
    )


@dataclass(frozen=True, slots=True)
class Attempt:
    """The outcome of one delivery attempt, to record."""

    id: int
    claim: int  # the claim it was made under (Notification.claim)
    status: str  # sent | pending (retry at next_at_ms) | failed
    attempts: int
    first_attempt_ms: int
    next_at_ms: int
    done_ms: int | None
    error: str | None


def record_attempts(attempts: Sequence[Attempt]) -> Callable[[Connection], list[int]]:
    """Record each outcome in place of its claim, if the row still holds that claim; returns the
    ids of those not recorded (their claim ran out and another outbox took the row, or will)."""

    def run(conn: Connection) -> list[int]:
        lost = []
        for a in attempts:
            done = conn.execute(
                update(alert_notifications)
                .where(
                    alert_notifications.c.id == a.id,
                    alert_notifications.c.status == PENDING,
                    alert_notifications.c.next_at_ms == a.claim,
                )
                .values(
                    status=a.status,
                    attempts=a.attempts,
                    first_attempt_ms=a.first_attempt_ms,
                    next_at_ms=a.next_at_ms,
                    done_ms=a.done_ms,
                    last_error=None if a.error is None else a.error[:200],
                )
            )
            if done.rowcount == 0:
                lost.append(a.id)
        return lost

    return run


def notifications_of(conn: Connection, alert_id: int) -> list[dict[str, Any]]:
    rows = conn.execute(
        select(alert_notifications).where(alert_notifications.c.alert_id == alert_id).order_by(alert_notifications.c.id)
    )
    return [
        {
            "id": r.id,
            "channel": r.channel_id,
            "event": r.event,
            "key": r.key,
            "status": r.status,
            "attempts": r.attempts,
            "created_at": r.created_ms,
            "next_at": r.next_at_ms if r.status == PENDING else None,
            "done_at": r.done_ms,
            "last_error": r.last_error,
        }
        for r in rows
    ]


def pending_count(conn: Connection) -> int:
    return int(
        conn.scalar(
            select(func.count()).select_from(alert_notifications).where(alert_notifications.c.status == PENDING)
        )
        or 0
    )
