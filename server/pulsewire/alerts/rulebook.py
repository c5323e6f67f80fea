"""Which rules a reading concerns: rules indexed by device and metric, with no I/O.

A reading of metric m from device d is checked against the threshold rules on (d, m) and on
("*", m) only, so the cost of a reading grows with the rules that concern it, not with all rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pulsewire.alerts.rules import ANY_DEVICE, Rule


@dataclass(frozen=True, slots=True)
class Entry:
    rule_id: str
    rule: Rule
    created_ms: int  # a no-data rule counts a device never heard from as silent since then


@dataclass(slots=True)
class RuleBook:
    rules: dict[str, Entry] = field(default_factory=dict)
    # metric -> device id (or "*") -> threshold rules
    _thresholds: dict[str, dict[str, list[Entry]]] = field(default_factory=dict)
    # (device id, metric) -> the rules that concern it, both lists joined once
    _cache: dict[tuple[str, str], tuple[Entry, ...]] = field(default_factory=dict)
    # Some no-data rule watches a metric: when each metric last arrived must be kept.
    watches_metrics: bool = False

    @classmethod
    def of(cls, entries: Iterable[Entry]) -> RuleBook:
        book = cls()
        for entry in entries:
            book.rules[entry.rule_id] = entry
            if entry.rule.kind == "no_data" and entry.rule.metric is not None:
                book.watches_metrics = True
            if entry.rule.kind == "threshold":
                assert entry.rule.metric is not None
                by_device = book._thresholds.setdefault(entry.rule.metric, {})
                by_device.setdefault(entry.rule.device, []).append(entry)
        return book

    def thresholds(self, series: tuple[str, str]) -> tuple[Entry, ...]:
        """The threshold rules a value of the series (device id, metric) is checked against."""
        found = self._cache.get(series)
        if found is None:
            device_id, metric = series
            by_device = self._thresholds.get(metric, {})
            found = (*by_device.get(device_id, ()), *by_device.get(ANY_DEVICE, ()))
            self._cache[series] = found
        return found

    def no_data(self) -> list[Entry]:
        return [e for e in self.rules.values() if e.rule.kind == "no_data"]
