"""The alert engine on plain values: which changes readings, the clock, acknowledgement and rule
edits make, and which of them the channels hear of."""

from __future__ import annotations

from typing import Any

from pulsewire.alerts.engine import Change, Engine, Pair, Silence, written
from pulsewire.alerts.evaluate import FIRING, PENDING
from pulsewire.alerts.rulebook import Entry, RuleBook
from pulsewire.alerts.rules import parse_rule

NOW = 1_800_000_000_000
HOT = {"name": "hot", "kind": "threshold", "device": "d1", "metric": "t", "op": ">", "value": 30, "severity": "warning"}


def entry(rule_id: str = "r1", **changes: Any) -> Entry:
    body = {k: v for k, v in {**HOT, **changes}.items() if v is not None or k == "metric"}
    return Entry(rule_id, parse_rule(body), created_ms=NOW - 3_600_000)


def engine(*entries: Entry, pairs: dict[Any, Pair] | None = None) -> Engine:
    return Engine(RuleBook.of(entries or [entry()]), pairs or {}, started_ms=NOW - 3_600_000, stale_ms=120_000)


def reading(ts: int, **values: float | bool) -> dict[str, Any]:
    return {"ts": ts, "values": values}


def run(e: Engine, device: str, data: list[dict[str, Any]], now: int = NOW) -> list[Change]:
    evaluation = e.evaluate([(device, data)], now)
    changes = evaluation.changes
    e.apply(changes, {i: 100 + i for i, c in enumerate(changes) if c.opens_episode}, evaluation.newest)
    return changes


def events(changes: list[Change]) -> list[tuple[str, bool]]:
    return [(c.event.kind, c.notify) for c in changes if c.event is not None]


def test_a_crossing_fires_once_and_resolves_and_each_is_notified() -> None:
    e = engine()
    assert events(run(e, "d1", [reading(NOW - 2000, t=25)])) == []
    fired = run(e, "d1", [reading(NOW - 1000, t=31), reading(NOW - 500, t=35)])
    assert events(fired) == [("firing", True)]
    assert e.pairs[("r1", "d1")].alert_id is not None and e.pairs[("r1", "d1")].announced
    assert events(run(e, "d1", [reading(NOW, t=20)])) == [("resolved", True)]
    assert ("r1", "d1") not in e.pairs  # plainly ok again: nothing kept


def test_only_rules_on_the_device_and_metric_are_checked() -> None:
    e = engine(entry("r1"), entry("r2", device="*"), entry("r3", metric="h"), entry("r4", device="d2"))
    changes = run(e, "d1", [reading(NOW, t=40, h=1)])
    assert sorted(c.key for c in changes if c.event) == [("r1", "d1"), ("r2", "d1")]


def test_for_s_holds_back_a_short_spike() -> None:
    e = engine(entry(for_s=60))
    spike = run(e, "d1", [reading(NOW - 30_000, t=40), reading(NOW - 20_000, t=20)])
    assert events(spike) == [] and ("r1", "d1") not in e.pairs
    held = run(e, "d1", [reading(NOW - 10_000, t=40), reading(NOW + 50_000, t=41)], now=NOW + 50_000)
    assert events(held) == [("firing", True)]


def test_a_value_that_leaves_an_ok_pair_ok_moves_nothing_and_a_pending_start_is_written() -> None:
    e = engine(entry(for_s=60))
    assert run(e, "d1", [reading(NOW, t=10)]) == [] and e.pairs == {}
    pending = run(e, "d1", [reading(NOW + 1, t=40)])
    assert e.pairs[("r1", "d1")].state.phase == PENDING and [written(c) for c in pending] == [True]
    assert run(e, "d1", [reading(NOW + 2, t=41)]) == []  # still pending from the same start: nothing moves


def test_readings_no_newer_than_a_series_newest_are_skipped_for_every_rule() -> None:
    e = engine(entry("r1"), entry("r2", device="*"))
    run(e, "d1", [reading(NOW, t=40), reading(NOW + 1, t=10)])
    assert e.pairs == {} and e.newest == {("d1", "t"): NOW + 1}
    resent = run(e, "d1", [reading(NOW, t=40), reading(NOW + 1, t=10)])  # a batch sent again
    assert resent == []
    assert events(run(e, "d1", [reading(NOW + 2, t=40)])) == [("firing", True), ("firing", True)]


def test_nothing_of_an_evaluation_counts_until_it_is_applied() -> None:
    e = engine()
    unstored = e.evaluate([("d1", [reading(NOW, t=40)])], NOW)  # its commit failed: never applied
    assert events(unstored.changes) == [("firing", True)] and e.pairs == {} and e.newest == {}
    assert events(run(e, "d1", [reading(NOW, t=40)])) == [("firing", True)]  # sent again, evaluated again


def test_a_replayed_buffer_is_recorded_but_not_notified_and_its_resolve_is_silent_too() -> None:
    e = engine()
    old = NOW - 3_600_000
    changes = run(e, "d1", [reading(old, t=40), reading(old + 1000, t=10)])
    assert events(changes) == [("firing", False), ("resolved", False)]


def test_repeats_stop_once_acknowledged_and_silence_holds_back_everything() -> None:
    e = engine(entry(repeat_s=60))
    run(e, "d1", [reading(NOW, t=40)])
    silence = Silence(lambda _: True, {"d1": NOW}, {})
    assert events(tick(e, NOW + 61_000, silence)) == [("repeat", True)]
    alert_id = e.pairs[("r1", "d1")].alert_id
    assert alert_id is not None
    ack = e.acknowledge(alert_id, NOW + 62_000, until=None)
    assert ack is not None and written(ack)
    e.apply([ack], {})
    assert events(tick(e, NOW + 122_000, silence)) == [("repeat", False)]
    assert e.acknowledge(999, NOW, None) is None
    ack = e.acknowledge(alert_id, NOW + 123_000, until=NOW + 10_000_000)
    assert ack is not None
    e.apply([ack], {})
    assert events(run(e, "d1", [reading(NOW + 124_000, t=0)], now=NOW + 124_000)) == [("resolved", False)]
    again = run(e, "d1", [reading(NOW + 125_000, t=50)], now=NOW + 125_000)
    assert events(again) == [("firing", False)]  # a new episode, still silenced


def tick(e: Engine, now: int, silence: Silence) -> list[Change]:
    changes = e.tick(now, silence)
    e.apply(changes, {i: 500 + i for i, c in enumerate(changes) if c.opens_episode})
    return changes


def test_no_data_on_a_device_fires_when_offline_for_for_s_and_resolves_when_back() -> None:
    e = engine(entry("nd", kind="no_data", device="*", metric=None, for_s=300, op=None, value=None))
    online = {"d1": True}
    s = Silence(lambda d: online.get(d, False), {"d1": NOW - 1000, "d2": None}, {})
    assert events(tick(e, NOW, s)) == [("firing", True)]  # d2 was never heard from since start (1 h ago)
    online["d1"] = False
    s = Silence(lambda d: online.get(d, False), {"d1": NOW, "d2": None}, {})
    assert events(tick(e, NOW + 299_000, s)) == []
    assert events(tick(e, NOW + 301_000, s)) == [("firing", True)]
    assert e.pairs[("nd", "d1")].state.phase == FIRING
    online["d1"] = True
    assert events(tick(e, NOW + 302_000, s)) == [("resolved", True)]


def test_metric_no_data_on_every_device_watches_only_devices_that_sent_the_metric() -> None:
    e = engine(entry("nd", kind="no_data", device="*", metric="t", for_s=60, op=None, value=None))
    s = Silence(lambda _: True, {"d1": NOW, "d2": NOW}, {"d1": {"t": NOW}})
    assert events(tick(e, NOW + 61_000, s)) == [("firing", True)]
    assert list(e.pairs) == [("nd", "d1")]


def test_a_changed_rule_resolves_its_firing_alert_and_forgets_its_pairs() -> None:
    e = engine()
    run(e, "d1", [reading(NOW, t=40)])
    changes = e.rule_changes(RuleBook.of([entry(value=50)]), NOW + 1)
    assert events(changes) == [("resolved", True)] and changes[0].after is None
    e.apply(changes, {})
    assert e.pairs == {}
    unchanged = engine()
    run(unchanged, "d1", [reading(NOW, t=40)])
    assert unchanged.rule_changes(RuleBook.of([entry()]), NOW + 1) == []


def test_a_removed_device_s_alerts_resolve_and_its_pairs_are_dropped() -> None:
    e = engine()
    run(e, "d1", [reading(NOW, t=40)])
    gone = tick(e, NOW + 1000, Silence(lambda _: False, {"d2": NOW}, {}))
    assert events(gone) == [("resolved", True)] and e.pairs == {}


def test_the_book_says_whether_metric_arrivals_must_be_kept() -> None:
    assert not RuleBook.of([entry(), entry("nd", kind="no_data", metric=None, op=None, value=None)]).watches_metrics
    assert RuleBook.of([entry("nd", kind="no_data", metric="t", op=None, value=None)]).watches_metrics


def test_a_firing_alert_with_repeats_carries_the_latest_value_into_its_next_repeat() -> None:
    e = engine(entry(repeat_s=60))
    run(e, "d1", [reading(NOW, t=40)])
    run(e, "d1", [reading(NOW + 1000, t=45)])
    repeat = tick(e, NOW + 61_000, Silence(lambda _: True, {"d1": NOW}, {}))
    assert [(c.event.kind, c.event.value) for c in repeat if c.event] == [("repeat", 45.0)]
    once = engine()
    run(once, "d1", [reading(NOW, t=40)])
    assert run(once, "d1", [reading(NOW + 1000, t=45)]) == []  # no repeats: the value has nowhere to go


def test_the_clock_judges_only_this_instance_s_devices() -> None:
    """In a cluster each instance judges the devices it holds: another's are neither fired on for
    silence, nor repeated, nor taken for removed because this instance does not hold them."""
    e = engine(entry(repeat_s=60), entry("nd", kind="no_data", device="*", metric=None, for_s=300, op=None, value=None))
    run(e, "d1", [reading(NOW, t=40)])
    elsewhere = Silence(lambda _: False, {"d2": None}, {}, mine=lambda d: d == "d2")
    assert events(tick(e, NOW + 400_000, elsewhere)) == [("firing", True)]  # d2's silence; d1 not touched
    assert e.pairs[("r1", "d1")].state.phase == FIRING and e.pairs[("r1", "d1")].repeats == 0
    here = Silence(lambda _: True, {"d1": NOW, "d2": None}, {}, mine=lambda d: d == "d1")
    assert [c.event.kind for c in tick(e, NOW + 400_000, here) if c.event] == ["repeat"]
