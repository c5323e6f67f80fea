"""The (rule, device) state machine on sequences of readings and clock times."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsewire.alerts.evaluate import (
    DEFAULT_STALE_MS,
    FIRING,
    OK,
    PENDING,
    Event,
    State,
    from_json,
    next_due,
    on_reading,
    on_silence,
    on_tick,
    to_json,
)
from pulsewire.alerts.rules import Rule, parse_rule

T0 = 1_763_700_000_000
S = 1000  # ms


def rule(for_s: int = 300, repeat_s: int = 0) -> Rule:
    return parse_rule(
        {"name": "warm", "kind": "threshold", "device": "f", "metric": "t", "op": ">", "value": -10,
         "for_s": for_s, "repeat_s": repeat_s, "severity": "critical"}
    )  # fmt: skip


def silence_rule(for_s: int = 300, repeat_s: int = 0) -> Rule:
    body = {"name": "gone", "kind": "no_data", "device": "*", "metric": None, "for_s": for_s, "repeat_s": repeat_s}
    return parse_rule({**body, "severity": "warning"})


def feed(
    r: Rule, readings: list[tuple[int, float]], now: int | None = None, state: State | None = None
) -> tuple[State, list[Event]]:
    """Readings as they arrive live (the clock at each reading's ts) unless `now` is given."""
    state = state or State()
    events: list[Event] = []
    for ts, value in readings:
        state, new = on_reading(r, state, ts, value, ts if now is None else now)
        events += new
    return state, events


def kinds(events: list[Event]) -> list[tuple[str, bool]]:
    return [(e.kind, e.notify) for e in events]


def test_a_spike_shorter_than_for_s_is_held_back() -> None:
    state, events = feed(rule(), [(T0, -5), (T0 + 100 * S, -4), (T0 + 299 * S, -3), (T0 + 300 * S, -20)])
    assert events == [] and state.phase == OK


def test_exactly_for_s_fires() -> None:
    state, events = feed(rule(), [(T0, -5), (T0 + 299 * S, -4)])
    assert state.phase == PENDING and state.since == T0 and events == []
    state, events = feed(rule(), [(T0 + 300 * S, -3)], state=state)
    assert state.phase == FIRING
    assert events == [Event("firing", since=T0, ts=T0 + 300 * S, value=-3.0, notify=True)]


def test_for_s_zero_fires_at_once_and_a_clear_resolves() -> None:
    state, events = feed(rule(for_s=0), [(T0, -20), (T0 + S, -5), (T0 + 2 * S, -4), (T0 + 3 * S, -11)])
    assert state == State(last_ts=T0 + 3 * S)
    assert events == [
        Event("firing", since=T0 + S, ts=T0 + S, value=-5.0, notify=True),
        Event("resolved", since=T0 + S, ts=T0 + 3 * S, value=-11.0, notify=True),
    ]


def test_a_clear_in_between_restarts_the_wait() -> None:
    _, events = feed(rule(), [(T0, -5), (T0 + 200 * S, -15), (T0 + 250 * S, -5), (T0 + 400 * S, -5)])
    assert events == []


def test_repeat_cadence_on_the_server_clock() -> None:
    r = rule(for_s=0, repeat_s=60)
    state, _ = feed(r, [(T0, 0)])
    assert next_due(r, state) == T0 + 60 * S
    assert on_tick(r, state, T0 + 59 * S) == (state, [])
    ticks = []
    for now in range(T0 + 60 * S, T0 + 200 * S, 10 * S):
        state, events = on_tick(r, state, now)
        ticks += [(now, e.kind) for e in events]
    assert ticks == [(T0 + 60 * S, "repeat"), (T0 + 120 * S, "repeat"), (T0 + 180 * S, "repeat")]
    # A matching reading counts as a tick too; a resolved alert repeats no more.
    state, events = feed(r, [(T0 + 240 * S, 1)], state=state)
    assert kinds(events) == [("repeat", True)]
    state, _ = feed(r, [(T0 + 250 * S, -20)], state=state)
    assert next_due(r, state) is None and on_tick(r, state, T0 + 10_000 * S) == (state, [])


def test_repeat_zero_notifies_once() -> None:
    r = rule(for_s=0)
    state, events = feed(r, [(T0 + i * S, 0) for i in range(100)])
    assert kinds(events) == [("firing", True)]
    assert next_due(r, state) is None and on_tick(r, state, T0 + 10**9) == (state, [])


def test_out_of_order_and_duplicate_readings_are_ignored() -> None:
    r = rule(for_s=10)
    state, _ = feed(r, [(T0, 0), (T0 + 5 * S, 0)])
    # An older reading that does not match would otherwise drop the pending state.
    assert feed(r, [(T0 + 2 * S, -20), (T0 + 5 * S, -20)], state=state) == (state, [])
    _, events = feed(r, [(T0 + 10 * S, 0)], state=state)
    assert kinds(events) == [("firing", True)]


def test_replay_of_an_old_buffer_notifies_nothing_stale() -> None:
    """An hour offline: the buffer fires and resolves twice in the past; all recorded, none sent."""
    r = rule(for_s=60)
    now = T0 + 3600 * S
    old = [(T0 + i * 10 * S, -5 if (i // 20) % 2 == 0 else -20) for i in range(80)]
    state, events = feed(r, old, now=now)
    assert kinds(events) == [("firing", False), ("resolved", False), ("firing", False), ("resolved", False)]
    assert state.phase == OK


def test_a_replayed_firing_still_true_now_is_announced_once_when_a_fresh_reading_confirms_it() -> None:
    r = rule(for_s=60, repeat_s=600)
    now = T0 + 3600 * S
    state, events = feed(r, [(T0 + i * 10 * S, -5) for i in range(30)], now=now)
    assert kinds(events) == [("firing", False)] and next_due(r, state) is None  # no reminders of the unheard
    state, events = feed(r, [(now - 1 * S, -4), (now, -4)], now=now, state=state)
    assert kinds(events) == [("firing", True)]  # once, not for each fresh reading
    assert events[0].late and events[0].since == T0 and events[0].ts == now - 1 * S
    assert next_due(r, state) == now + 600 * S


def test_an_announced_alert_resolved_inside_the_buffer_says_so() -> None:
    """Receivers heard it fire before the device went offline: they must hear that it cleared."""
    r = rule(for_s=0)
    state, events = feed(r, [(T0, 0)])
    assert kinds(events) == [("firing", True)]
    later = T0 + 3600 * S
    state, events = feed(r, [(T0 + 60 * S, -20), (T0 + 120 * S, 0), (T0 + 180 * S, -20)], now=later, state=state)
    assert kinds(events) == [("resolved", True), ("firing", False), ("resolved", False)]


def test_the_stale_bound() -> None:
    r = rule(for_s=0)
    now = T0 + DEFAULT_STALE_MS
    assert kinds(on_reading(r, State(), T0, 0, now)[1]) == [("firing", True)]
    assert kinds(on_reading(r, State(), T0 - 1, 0, now)[1]) == [("firing", False)]


def test_state_round_trips_through_json() -> None:
    r = rule(for_s=0, repeat_s=60)
    for state in [State(), feed(r, [(T0, 0)])[0], feed(rule(), [(T0, 0)])[0], feed(r, [(T0, 0)], now=T0 + 10**8)[0]]:
        assert from_json(json.loads(json.dumps(to_json(state)))) == state


def test_a_stored_state_with_no_known_phase_is_refused() -> None:
    with pytest.raises(ValueError, match="phase: 'fired' is no state"):
        from_json({**to_json(State()), "phase": "fired"})


def test_no_data_fires_after_for_s_and_resolves_when_heard_from() -> None:
    r = silence_rule(for_s=300, repeat_s=600)
    state, events, due = on_silence(r, State(), last_seen=T0, now=T0 + 299 * S)
    assert events == [] and due == T0 + 300 * S
    state, events, due = on_silence(r, state, last_seen=T0, now=T0 + 300 * S)
    assert events == [Event("firing", since=T0, ts=T0 + 300 * S, value=None, notify=True)]
    assert due == T0 + 900 * S  # the first reminder
    state, events, due = on_silence(r, state, last_seen=T0, now=T0 + 900 * S)
    assert kinds(events) == [("repeat", True)] and due == T0 + 1500 * S
    back = T0 + 1000 * S
    state, events, due = on_silence(r, state, last_seen=back, now=back)
    assert kinds(events) == [("resolved", True)] and due == back + 300 * S and state.phase == OK


def test_no_data_heard_from_and_silent_again_between_checks_is_two_episodes() -> None:
    r = silence_rule(for_s=60)
    state, _, _ = on_silence(r, State(), last_seen=T0, now=T0 + 60 * S)
    _, events, due = on_silence(r, state, last_seen=T0 + 100 * S, now=T0 + 500 * S)
    assert kinds(events) == [("resolved", True), ("firing", True)] and events[1].since == T0 + 100 * S
    assert due is None


readings = st.lists(st.tuples(st.integers(0, 600), st.sampled_from([-20.0, -5.0]), st.booleans()), max_size=60)


@settings(max_examples=300, deadline=None)
@given(readings, st.integers(0, 120), st.integers(0, 120))
def test_transitions_alternate_and_notifications_tell_a_consistent_story(
    steps: list[tuple[int, float, bool]], for_s: int, repeat_s: int
) -> None:
    """Whatever the order, gaps and staleness: recorded transitions go firing, resolved, firing...;
    receivers hear a `resolved` or a `repeat` only of an episode they heard fire, and each
    episode's firing at most once."""
    r = rule(for_s=for_s, repeat_s=repeat_s)
    state, log = State(), []
    for gap_s, value, late in steps:
        ts = (state.last_ts or T0) + gap_s * S - 30 * S  # sometimes going back in time
        now = ts + (DEFAULT_STALE_MS * 2 if late else 0)
        state, events = on_reading(r, state, ts, value, now)
        log += events
        assert from_json(to_json(state)) == state
    transitions = [e.kind for e in log if e.kind != "repeat" and not e.late]
    assert all(a != b for a, b in zip(transitions, transitions[1:], strict=False)) and transitions[:1] in (
        [],
        ["firing"],
    )
    heard: set[int] = set()
    for e in (e for e in log if e.notify):
        if e.kind == "firing":
            assert e.since not in heard
            heard.add(e.since)
        else:
            assert e.since in heard
