"""Alert rules and channels in storage, on each backend: what is stored reads back as it was checked,
a rule names only channels that exist, and a channel named by a rule stays."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
from sqlalchemy import Connection, Engine

from pulsewire.alerts.channels import EmailChannel, WebhookChannel
from pulsewire.alerts.rules import parse_rule
from pulsewire.storage import alerting as store

T = TypeVar("T")

HOOK = WebhookChannel(name="ops", url="https://hooks.example.org/x", secret="s3cret-of-the-ops-hook")
MAIL = EmailChannel(name="me", to=("a@example.org",))
RULE = parse_rule(
    {
        "name": "warm",
        "kind": "threshold",
        "device": "*",
        "metric": "t",
        "op": "inside",
        "low": 1,
        "high": 2,
        "severity": "info",
        "channels": ["c1"],
    }
)


def write(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:  # what the writer's `call` does: one transaction
        return fn(conn)


def test_channels_keep_their_secret_and_can_be_replaced(engine: Engine) -> None:
    write(engine, store.add_channel("c1", HOOK, 10))
    write(engine, store.add_channel("c2", MAIL, 20))
    with engine.connect() as conn:
        assert store.list_channels(conn) == [store.StoredChannel("c1", HOOK, 10), store.StoredChannel("c2", MAIL, 20)]
        assert store.get_channel(conn, "c1") == store.StoredChannel("c1", HOOK, 10)
        assert store.get_channel(conn, "nope") is None
    write(engine, store.replace_channel("c1", MAIL))
    with engine.connect() as conn:
        assert store.get_channel(conn, "c1") == store.StoredChannel("c1", MAIL, 10)
    with pytest.raises(store.ChannelNotFound):
        write(engine, store.replace_channel("nope", MAIL))


def test_rules_name_existing_channels_which_then_stay(engine: Engine) -> None:
    with pytest.raises(store.UnknownChannels) as unknown:
        write(engine, store.add_rule("r1", RULE, 1))
    assert unknown.value.ids == ["c1"]
    write(engine, store.add_channel("c1", HOOK, 1))
    write(engine, store.add_rule("r1", RULE, 5))
    with pytest.raises(store.ChannelInUse) as in_use:
        write(engine, store.delete_channel("c1"))
    assert in_use.value.rule_ids == ["r1"]

    loose = parse_rule({"name": "n", "kind": "no_data", "device": "d", "metric": None, "severity": "critical"})
    write(engine, store.replace_rule("r1", loose, 9))
    with engine.connect() as conn:
        assert store.list_rules(conn) == [store.StoredRule("r1", loose, 5, 9)]
    write(engine, store.delete_channel("c1"))
    write(engine, store.delete_rule("r1"))
    with engine.connect() as conn:
        assert store.get_rule(conn, "r1") is None and store.list_channels(conn) == []
    for gone in (store.delete_rule("r1"), store.replace_rule("r1", loose, 10)):
        with pytest.raises(store.RuleNotFound):
            write(engine, gone)
    with pytest.raises(store.ChannelNotFound):
        write(engine, store.delete_channel("c1"))
