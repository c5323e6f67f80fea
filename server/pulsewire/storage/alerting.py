"""Alert rules and notification channels: the writes (run on the batching writer) and the reads.

Bodies are stored as the checked JSON of the API (`rule_to_json`, `channel_to_json` with the
secret) and read back through the same checks, so what storage hands out is always a valid
`Rule` or `Channel`. A rule may only name channels that exist, and a channel named by a rule
cannot be deleted: both are checked inside the write's transaction, so no rule is ever left
pointing at nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select, update

from pulsewire.alerts.channels import Channel, channel_to_json, parse_channel
from pulsewire.alerts.rules import Rule, parse_rule, rule_to_json
from pulsewire.storage.schema import alert_channels, alert_rules


class RuleNotFound(Exception):
    pass


class ChannelNotFound(Exception):
    pass


class UnknownChannels(Exception):
    """A rule names channel ids that do not exist (`ids`, in the rule's order)."""

    def __init__(self, ids: list[str]) -> None:
        super().__init__(", ".join(ids))
        self.ids = ids


class ChannelInUse(Exception):
    """A channel cannot be deleted while rules name it (`rule_ids`, sorted)."""

    def __init__(self, rule_ids: list[str]) -> None:
        super().__init__(", ".join(rule_ids))
        self.rule_ids = rule_ids


@dataclass(frozen=True, slots=True)
class StoredRule:
    id: str
    rule: Rule
    created_ms: int
    updated_ms: int


@dataclass(frozen=True, slots=True)
class StoredChannel:
    id: str
    channel: Channel
    created_ms: int


# Writes: each returns a function for BatchingWriter.call, which runs it in its own transaction.


def add_channel(channel_id: str, channel: Channel, created_ms: int) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        body = channel_to_json(channel, reveal_secret=True)
        conn.execute(
            insert(alert_channels).values(
                id=channel_id, name=channel.name, type=channel.kind, body=body, created_ms=created_ms
            )
        )

    return run


def replace_channel(channel_id: str, channel: Channel) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        body = channel_to_json(channel, reveal_secret=True)
        done = conn.execute(
            update(alert_channels)
            .where(alert_channels.c.id == channel_id)
            .values(name=channel.name, type=channel.kind, body=body)
        )
        if done.rowcount == 0:
            raise ChannelNotFound(channel_id)

    return run


def delete_channel(channel_id: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        users = sorted(r.id for r in _rules(conn) if channel_id in r.rule.channels)
        if users:
            raise ChannelInUse(users)
        if conn.execute(delete(alert_channels).where(alert_channels.c.id == channel_id)).rowcount == 0:
            raise ChannelNotFound(channel_id)

    return run


def add_rule(rule_id: str, rule: Rule, created_ms: int) -> Callable[[Connection], StoredRule]:
    def run(conn: Connection) -> StoredRule:
        _check_channels(conn, rule.channels)
        conn.execute(
            insert(alert_rules).values(
                id=rule_id, body=rule_to_json(rule), created_ms=created_ms, updated_ms=created_ms
            )
        )
        return StoredRule(rule_id, rule, created_ms, created_ms)

    return run


def replace_rule(rule_id: str, rule: Rule, updated_ms: int) -> Callable[[Connection], StoredRule]:
    def run(conn: Connection) -> StoredRule:
        created_ms = conn.scalar(select(alert_rules.c.created_ms).where(alert_rules.c.id == rule_id))
        if created_ms is None:
            raise RuleNotFound(rule_id)
        _check_channels(conn, rule.channels)
        conn.execute(
            update(alert_rules)
            .where(alert_rules.c.id == rule_id)
            .values(body=rule_to_json(rule), updated_ms=updated_ms)
        )
        return StoredRule(rule_id, rule, created_ms, updated_ms)

    return run


def delete_rule(rule_id: str) -> Callable[[Connection], None]:
    def run(conn: Connection) -> None:
        if conn.execute(delete(alert_rules).where(alert_rules.c.id == rule_id)).rowcount == 0:
            raise RuleNotFound(rule_id)

    return run


def _check_channels(conn: Connection, wanted: Iterable[str]) -> None:
    wanted = list(wanted)
    if not wanted:
        return
    found = set(conn.scalars(select(alert_channels.c.id).where(alert_channels.c.id.in_(wanted))))
    missing = [c for c in wanted if c not in found]
    if missing:
        raise UnknownChannels(missing)


# Reads: plain functions of a connection (storage/reads.py calls them on a pooled one).


def list_rules(conn: Connection) -> list[StoredRule]:
    return _rules(conn)


def get_rule(conn: Connection, rule_id: str) -> StoredRule | None:
    found = _rules(conn, rule_id)
    return found[0] if found else None


def list_channels(conn: Connection) -> list[StoredChannel]:
    return _channels(conn)


def get_channel(conn: Connection, channel_id: str) -> StoredChannel | None:
    found = _channels(conn, channel_id)
    return found[0] if found else None


def _channels(conn: Connection, channel_id: str | None = None) -> list[StoredChannel]:
    query = select(alert_channels).order_by(alert_channels.c.created_ms, alert_channels.c.id)
    if channel_id is not None:
        query = query.where(alert_channels.c.id == channel_id)
    return [StoredChannel(r.id, parse_channel(r.body), r.created_ms) for r in conn.execute(query)]


def _rules(conn: Connection, rule_id: str | None = None) -> list[StoredRule]:
    query = select(alert_rules).order_by(alert_rules.c.created_ms, alert_rules.c.id)
    if rule_id is not None:
        query = query.where(alert_rules.c.id == rule_id)
    return [StoredRule(r.id, parse_rule(r.body), r.created_ms, r.updated_ms) for r in conn.execute(query)]
