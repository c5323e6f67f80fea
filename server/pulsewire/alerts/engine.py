"""Every (rule, device) pair's alert state, moved by readings and the clock, with no I/O.

`evaluate` (a group of readings about to be committed) and `tick` (the clock: no-data rules and
repeats) work on a draft and return `Change`s; the runtime writes them in the transaction that
stores the readings, and calls `apply` once that transaction committed. A commit that fails
drops its changes with its readings, which the devices send again. The runtime calls these in the
writer's order, one at a time, so a draft always starts from every earlier committed change.

On top of the pure transitions (alerts/evaluate.py) a pair knows its alert (the episode's row),
whether the episode was announced, acknowledged, or is silenced, and decides which events the
channels hear of (`Change.notify`):
- a `repeat` is not sent once the alert is acknowledged;
- nothing is sent while the pair is silenced (`silenced_until`);
- a `resolved` is sent only for an episode whose `firing` was sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from pulsewire.alerts import evaluate
from pulsewire.alerts.evaluate import FIRING, OK, PENDING, Event, State
from pulsewire.alerts.rulebook import Entry, RuleBook
from pulsewire.alerts.rules import ANY_DEVICE, Rule, matches

Key = tuple[str, str]  # (rule id, device id)


@dataclass(frozen=True, slots=True)
class Pair:
    state: State = State()
    alert_id: int | None = None  # the current episode's alert, once it fired
    announced: bool = False  # its firing was sent to the channels
    acked: bool = False
    repeats: int = 0  # repeats sent in this episode: the next one's key counter
    silenced_until: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    key: Key
    entry: Entry
    before: Pair
    after: Pair | None  # None: the pair is gone (its rule changed or was removed)
    event: Event | None  # None: only the state moved (pending starts, ok again)
    notify: bool = False

    @property
    def opens_episode(self) -> bool:
        return self.event is not None and self.event.kind == "firing" and not self.event.late

    @property
    def counter(self) -> int:
        """The idempotency key's counter: 0 for firing and resolved, 1, 2, ... for repeats."""
        return self.after.repeats if self.after is not None and self.event and self.event.kind == "repeat" else 0


@dataclass(frozen=True, slots=True)
class Silence:
    """What the clock tick needs to know of the devices: who is online, and when each was last heard."""

    online: Callable[[str], bool]
    devices: Mapping[str, int | None]  # every registered device -> last seen (server ms), None: never
    metrics: Mapping[str, Mapping[str, int]]  # device -> metric -> last arrival (server ms)
    # The devices this instance judges: in a cluster, those it holds (or held last); alone, all.
    mine: Callable[[str], bool] = lambda _: True


@dataclass(frozen=True, slots=True)
class Evaluation:
    """What a group of readings does: its changes, and the newest ts it took of each series."""

    changes: list[Change]
    newest: dict[tuple[str, str], int]  # (device id, metric) -> ts


class Engine:
    def __init__(
        self,
        book: RuleBook,
        pairs: dict[Key, Pair],
        started_ms: int,
        stale_ms: int,
        newest: dict[tuple[str, str], int] | None = None,
    ) -> None:
        self.book = book
        self.pairs = pairs  # only pairs that are not plainly ok: pending, firing, or silenced
        self._started_ms = started_ms
        self._stale_ms = stale_ms
        # (device id, metric) -> the newest reading ts evaluated (and committed). Readings no newer
        # are a batch sent again or out of order: skipped for every rule at once.
        self.newest = newest if newest is not None else {}

    # -- readings

    def evaluate(self, batches: Iterable[tuple[str, list[dict[str, Any]]]], now: int) -> Evaluation:
        """What a group of validated readings does, in order; nothing is applied yet.

        The common case costs no allocation: a value that leaves an ok pair ok moves nothing.
        """
        draft: dict[Key, Pair] = {}
        newest: dict[tuple[str, str], int] = {}
        changes: list[Change] = []
        thresholds = self.book.thresholds
        pairs = self.pairs
        for device_id, data in batches:
            for reading in data:
                ts = reading["ts"]
                for metric, value in reading["values"].items():
                    series = (device_id, metric)
                    entries = thresholds(series)
                    if not entries:
                        continue
                    last = newest.get(series) or self.newest.get(series)
                    if last is not None and ts <= last:
                        continue
                    newest[series] = ts
                    for entry in entries:
                        key = (entry.rule_id, device_id)
                        pair = draft.get(key) or pairs.get(key)
                        if pair is None or pair.state.phase == OK:
                            if not matches(entry.rule, value):
                                continue
                        elif _unmoved(entry.rule, pair.state, ts, value):
                            continue
                        self._reading(entry, key, pair or _NEW, ts, value, now, draft, changes)
        return Evaluation(changes, newest)

    def _reading(
        self,
        entry: Entry,
        key: Key,
        pair: Pair,
        ts: int,
        value: float | bool,
        now: int,
        draft: dict[Key, Pair],
        changes: list[Change],
    ) -> None:
        state, events = evaluate.on_reading(entry.rule, pair.state, ts, value, now, self._stale_ms)
        if state is not pair.state:
            draft[key] = self._step(key, entry, pair, state, events, now, changes)

    # -- the clock

    def tick(self, now: int, silence: Silence) -> list[Change]:
        """No-data rules against the devices' silence, and repeats that fell due."""
        changes: list[Change] = []
        for entry in self.book.no_data():
            for device_id, heard in self._silences(entry, now, silence):
                key = (entry.rule_id, device_id)
                pair = self.pairs.get(key, _NEW)
                state, events, _ = evaluate.on_silence(entry.rule, pair.state, heard, now)
                if state.phase != OK or pair.state.phase != OK:  # ok to ok moves nothing kept
                    self._step(key, entry, pair, state, events, now, changes)
        for key, pair in self.pairs.items():
            rule_entry = self.book.rules.get(key[0])
            if rule_entry is None or not silence.mine(key[1]):
                continue
            if key[1] not in silence.devices:  # the device was removed: its alerts end with it
                changes.append(self._ended(key, rule_entry, pair, now))
                continue
            if rule_entry.rule.kind != "threshold" or pair.state.phase != FIRING:
                continue
            state, events = evaluate.on_tick(rule_entry.rule, pair.state, now)
            if events:
                self._step(key, rule_entry, pair, state, events, now, changes)
        return changes

    def _silences(self, entry: Entry, now: int, s: Silence) -> Iterable[tuple[str, int]]:
        """(device, when last heard) for each device a no-data rule watches."""
        rule = entry.rule
        floor = max(entry.created_ms, self._started_ms)  # never heard of before: silent since then
        ids = s.devices if rule.device == ANY_DEVICE else [rule.device] if rule.device in s.devices else []
        for device_id in filter(s.mine, ids):
            if rule.metric is None:
                seen = s.devices[device_id]
                yield device_id, now if s.online(device_id) else max(seen or floor, floor)
            else:
                arrived = s.metrics.get(device_id, {}).get(rule.metric)
                if arrived is None and rule.device == ANY_DEVICE:
                    continue  # every device: only those that ever sent the metric
                yield device_id, max(arrived or floor, floor)

    def _step(
        self, key: Key, entry: Entry, pair: Pair, state: State, events: list[Event], now: int, changes: list[Change]
    ) -> Pair:
        """The pair moved to `state` through `events`: one change per event (or one without)."""
        if not events:  # every reading of every rule concerned comes here: built directly, not replace()d
            after = Pair(state, pair.alert_id, pair.announced, pair.acked, pair.repeats, pair.silenced_until)
            changes.append(Change(key, entry, pair, after, None))
            return after
        for event in events:
            pair = self._record(key, entry, pair, replace(pair, state=state), event, now, changes)
        return pair

    # -- rules, acknowledgement

    def rule_changes(self, book: RuleBook, now: int) -> list[Change]:
        """What taking a new set of rules does: a rule that changed or is gone starts afresh, its
        firing alert resolving (and saying so, if announced) and its pairs dropped. The caller
        sets `book` once the changes are committed."""
        changes: list[Change] = []
        for key, pair in self.pairs.items():
            old = self.book.rules.get(key[0])
            new = book.rules.get(key[0])
            if old is None or (new is not None and new.rule == old.rule):
                continue
            changes.append(self._ended(key, old, pair, now))
        return changes

    @staticmethod
    def _ended(key: Key, entry: Entry, pair: Pair, now: int) -> Change:
        """The pair is dropped (its rule changed, or its device is gone); a firing alert resolves."""
        event = None
        if pair.state.phase == FIRING and pair.alert_id is not None:
            assert pair.state.since is not None
            event = Event("resolved", pair.state.since, now, None, notify=True)
        notify = event is not None and pair.announced and not _silenced(pair, now)
        return Change(key, entry, pair, None, event, notify)

    def acknowledge(self, alert_id: int, now: int, until: int | None) -> Change | None:
        """Acknowledge an alert (its repeats stop), and silence its pair until `until` if given.
        None when the alert is not firing now."""
        for key, pair in self.pairs.items():
            if pair.alert_id == alert_id and pair.state.phase == FIRING:
                entry = self.book.rules[key[0]]
                after = replace(pair, acked=True, silenced_until=until if until is not None else pair.silenced_until)
                return Change(key, entry, pair, after, None)
        return None

    def apply(
        self,
        changes: Iterable[Change],
        alert_ids: Mapping[int, int],
        newest: Mapping[tuple[str, str], int] | None = None,
    ) -> None:
        """Make committed changes current; `alert_ids`: change index -> the alert a new episode got;
        `newest`: the series' newest ts the changes were evaluated up to."""
        opened: dict[Key, int] = {}  # later changes of a group were drafted before the id existed
        for i, change in enumerate(changes):
            after = change.after
            if after is None or (after.state.phase == OK and after.silenced_until is None):
                self.pairs.pop(change.key, None)  # gone, or plainly ok: nothing to keep
                continue
            if i in alert_ids:
                opened[change.key] = alert_ids[i]
            if after.alert_id is None and after.state.phase == FIRING and change.key in opened:
                after = replace(after, alert_id=opened[change.key])
            self.pairs[change.key] = after
        if newest:
            self.newest.update(newest)

    def _record(
        self, key: Key, entry: Entry, pair: Pair, after: Pair, event: Event, now: int, changes: list[Change]
    ) -> Pair:
        """One event on a pair: what the channels hear, and the pair after it."""
        if event.kind == "firing" and not event.late:  # a new episode; its alert id comes with the write
            after = replace(after, alert_id=None, announced=False, acked=False, repeats=0)
        notify = event.notify and not _silenced(after, now)
        if event.kind == "repeat":
            notify = notify and not after.acked
            after = replace(after, repeats=after.repeats + 1)
        elif event.kind == "resolved":  # the episode is over; the pair keeps its silence
            notify = notify and after.announced
            after = replace(after, alert_id=None, announced=False, acked=False, repeats=0)
        if event.kind == "firing" and notify:
            after = replace(after, announced=True)
        changes.append(Change(key, entry, pair, after, event, notify))
        return after


_NEW = Pair()


def _unmoved(rule: Rule, state: State, ts: int, value: float | bool) -> bool:
    """A value that still meets the condition and changes nothing that counts: the pair is pending
    and `for_s` has not passed, or it is firing, announced, with no repeats to carry the value."""
    if not matches(rule, value):
        return False
    if state.phase == PENDING:
        assert state.since is not None
        return ts - state.since < rule.for_s * 1000
    return state.notified_at is not None and rule.repeat_s == 0


def _kept(state: State) -> tuple[str, int | None]:
    """What of a state is written: the phase and the episode's start. last_ts alone is not."""
    return state.phase, state.since


def _silenced(pair: Pair, now: int) -> bool:
    return pair.silenced_until is not None and now < pair.silenced_until


def written(change: Change) -> bool:
    """Whether a change touches the database (a state or an event), not only memory."""
    if change.event is not None or change.after is None:
        return True
    return (
        _kept(change.before.state) != _kept(change.after.state)
        or change.before.silenced_until != (change.after.silenced_until)
        or change.before.acked != change.after.acked
    )
