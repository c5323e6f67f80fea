"""The state of one (rule, device) pair and how readings and the clock move it, with no I/O.

States: `ok`, `pending` (the condition holds, not yet for `for_s`), `firing`.

Threshold rules, reading by reading (`on_reading`):
- `for_s` is measured on the readings' own timestamps. The first matching reading starts
  `pending` (its ts is the episode's `since`); a matching reading at least `for_s` after `since`,
  with no reading in between that failed to match, fires. With `for_s` 0 the first one fires.
- A reading that does not match drops `pending` silently, or resolves `firing` (a `resolved` event).
- Readings are taken in timestamp order: one no newer than the last the pair has seen (a
  duplicate, or out of order) is ignored, so a replayed buffer is evaluated as if live.

Notifications say only what is still true now. Every transition is an event (for history and
the live view); its `notify` says whether the channels hear of it:
- A `firing` is notified when its reading is fresh: no more than `stale_ms` older than the
  server clock. A firing found in an old buffer is recorded but not announced; if a fresh
  reading then confirms it still holds, a second `firing` event with the same `since` announces
  it (`late=True`; history keys an episode by `since`, so this adds no new episode).
- A `resolved` is notified only if its episode's `firing` was: receivers must not go on believing
  in a cleared alert, and hear nothing of an episode they never heard of. So a fire-then-resolve
  entirely inside an old buffer notifies nothing.
- `repeat` events (every `repeat_s`, 0 for never) are judged on the server clock, only for an
  announced episode, from `on_reading` and `on_tick`; `next_due` says when to tick next.

No-data rules (`on_silence`) are judged on the server clock alone: given when the device (or
metric) was last heard from, it fires once that is `for_s` ago, resolves when a later call sees
it heard from again, and says when the next check is due. Fired on the clock, it is always fresh.

The state is a small frozen value (`to_json`/`from_json`) kept in the database, so a restart
neither forgets a firing alert nor notifies it twice.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from pulsewire.alerts.rules import Rule, matches

OK, PENDING, FIRING = "ok", "pending", "firing"
# Readings older than this when they arrive are from a buffer, not live: a device sends a live
# batch within seconds, and two minutes leave room for a slow link and a clock a little off.
DEFAULT_STALE_MS = 120_000


@dataclass(frozen=True)
class State:
    phase: str = OK
    since: int | None = None  # ts of the reading that started the episode (pending or firing)
    last_ts: int | None = None  # newest reading ts seen; older ones are ignored
    value: float | None = None  # the value of the last matching reading
    value_ts: int | None = None  # and its ts
    notified_at: int | None = None  # server clock of the last firing/repeat sent; None: unannounced


@dataclass(frozen=True)
class Event:
    kind: str  # "firing" | "repeat" | "resolved"
    since: int  # the episode's start
    ts: int  # the reading's ts (the server clock for no-data events)
    value: float | None
    notify: bool
    late: bool = False  # a firing recorded earlier, announced now


def on_reading(
    rule: Rule, state: State, ts: int, value: float | bool, now: int, stale_ms: int = DEFAULT_STALE_MS
) -> tuple[State, list[Event]]:
    """One reading of the rule's metric from the pair's device; `now` is the server clock (ms)."""
    # Called for every reading and every rule that concerns it: states are built directly, not
    # with dataclasses.replace, which costs several times more.
    if state.last_ts is not None and ts <= state.last_ts:
        return state, []
    phase = state.phase
    if not matches(rule, value):
        if phase != FIRING:
            return State(last_ts=ts), []
        return _clear(replace(state, last_ts=ts), ts, value)
    x = float(value)
    fresh = ts >= now - stale_ms
    since = state.since
    if phase == OK:
        phase, since = PENDING, ts
    assert since is not None
    if phase == PENDING and ts - since >= rule.for_s * 1000:
        state = State(FIRING, since, ts, x, ts, now if fresh else None)
        return state, [Event("firing", since, ts, x, notify=fresh)]
    if phase == FIRING and state.notified_at is None and fresh:
        state = State(FIRING, since, ts, x, ts, now)
        return state, [Event("firing", since, ts, x, notify=True, late=True)]
    return on_tick(rule, State(phase, since, ts, x, ts, state.notified_at), now)


def on_tick(rule: Rule, state: State, now: int) -> tuple[State, list[Event]]:
    """The clock moved: a `repeat` if one is due."""
    due = next_due(rule, state)
    if due is None or now < due:
        return state, []
    assert state.since is not None
    ts = state.value_ts if state.value_ts is not None else now
    return replace(state, notified_at=now), [Event("repeat", state.since, ts, state.value, notify=True)]


def next_due(rule: Rule, state: State) -> int | None:
    """When the next `repeat` is due on the server clock, or None if none will be."""
    if state.phase != FIRING or state.notified_at is None or rule.repeat_s == 0:
        return None
    return state.notified_at + rule.repeat_s * 1000


def on_silence(rule: Rule, state: State, last_seen: int, now: int) -> tuple[State, list[Event], int | None]:
    """A no-data rule: `last_seen` is when the device (or metric) was last heard from, on the
    server clock (arrival, so a replayed buffer counts as heard from now; for one never heard
    from, when the rule was made or the server started). Returns the new state, its events and
    when to check again (None: only when something is heard)."""
    silent_at = last_seen + rule.for_s * 1000
    events: list[Event] = []
    if state.phase == FIRING and state.since != last_seen:
        # Heard from since this episode began (even if silent again now): that episode is over.
        state, events = _clear(state, now, None)
    if now < silent_at:
        return State(last_ts=last_seen), events, silent_at
    if state.phase != FIRING:
        state = State(phase=FIRING, since=last_seen, last_ts=last_seen, notified_at=now)
        return state, [*events, Event("firing", last_seen, now, None, notify=True)], next_due(rule, state)
    state, repeats = on_tick(rule, state, now)
    return state, repeats, next_due(rule, state)


def _clear(state: State, ts: int, value: float | bool | None) -> tuple[State, list[Event]]:
    """The condition no longer holds: back to ok, saying so if it was firing."""
    cleared = State(last_ts=state.last_ts)
    if state.phase != FIRING:
        return cleared, []
    assert state.since is not None
    x = None if value is None else float(value)
    return cleared, [Event("resolved", state.since, ts, x, notify=state.notified_at is not None)]


def to_json(state: State) -> dict[str, Any]:
    return {
        "phase": state.phase,
        "since": state.since,
        "last_ts": state.last_ts,
        "value": state.value,
        "value_ts": state.value_ts,
        "notified_at": state.notified_at,
    }


def from_json(obj: dict[str, Any]) -> State:
    """The state as `to_json` stored it (the database's own column, not user input)."""
    if obj.get("phase") not in (OK, PENDING, FIRING):
        raise ValueError(f"phase: {obj.get('phase')!r} is no state")
    return State(
        phase=obj["phase"],
        since=obj.get("since"),
        last_ts=obj.get("last_ts"),
        value=obj.get("value"),
        value_ts=obj.get("value_ts"),
        notified_at=obj.get("notified_at"),
    )
