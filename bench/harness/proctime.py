"""CPU time of groups of processes, read from /proc/<pid>/stat (utime + stime), for parts of a system
made of several processes: a server's supervisor and workers, PostgreSQL's backends, redis-server.

A part is measured by snapshots, {pid: CPU seconds}, before a load, after it, and (`Tracker`) every
50 ms in between. A process not in the first started during the load and counts from zero; one that
ends during it counts up to the last snapshot it was in (`Used.ended` says how many ended, so a
report can say so). Linux only.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_S = os.sysconf("SC_CLK_TCK")
PROC = Path("/proc")


def stat_cpu_ticks(stat: bytes) -> int:
    """utime + stime, in clock ticks, from the text of /proc/<pid>/stat (proc(5): fields 14 and 15).

    The command name (field 2) is in parentheses and may hold spaces or parentheses itself, so the
    fields are counted from the last ')'.
    """
    after_name = stat[stat.rindex(b")") + 1 :].split()
    # after_name[0] is field 3 (state): field 14 is after_name[11], field 15 after_name[12]
    return int(after_name[11]) + int(after_name[12])


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds the process has used (every thread), or None if it is gone."""
    try:
        return stat_cpu_ticks((PROC / str(pid) / "stat").read_bytes()) / TICKS_PER_S
    except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
        return None


def children(pid: int) -> list[int]:
    """The process's children (of every thread of it)."""
    found: list[int] = []
    try:
        for task in (PROC / str(pid) / "task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    except (FileNotFoundError, ProcessLookupError):
        pass
    return found


def with_descendants(pid: int) -> list[int]:
    """The process and every process under it."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo += children(current)
    return out


def snapshot(pids: Iterable[int]) -> dict[int, float]:
    """{pid: CPU seconds} of the processes still there."""
    return {pid: seconds for pid in pids if (seconds := cpu_seconds(pid)) is not None}


@dataclass(frozen=True)
class Used:
    seconds: float
    processes: int  # seen in either snapshot
    ended: int  # in the first snapshot only: their time after it is not counted


def used(before: dict[int, float], after: dict[int, float]) -> Used:
    """CPU seconds used between two snapshots of one part."""
    seconds = sum(value - before.get(pid, 0.0) for pid, value in after.items())
    return Used(seconds, len(before.keys() | after.keys()), len(before.keys() - after.keys()))


class Tracker:
    """Samples each part's processes every `interval_s` while a load runs, so that a process that ends
    during the load counts up to its last sample (a short-lived one may be missed altogether).

    `find()` names the processes of each part now: {part: [pid, ...]}.
    """

    def __init__(self, find: Callable[[], dict[str, list[int]]], interval_s: float = 0.05) -> None:
        self._find = find
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, name="cpu-tracker", daemon=True)
        self.first: dict[str, dict[int, float]] = {}
        self.last: dict[str, dict[int, float]] = {}
        self.final: dict[str, dict[int, float]] = {}

    def __enter__(self) -> Tracker:
        self.first = {part: snapshot(pids) for part, pids in self._find().items()}
        self.last = {part: dict(found) for part, found in self.first.items()}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.final = {part: snapshot(pids) for part, pids in self._find().items()}
        for part, found in self.final.items():
            self.last.setdefault(part, {}).update(found)

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self._interval_s):
            for part, pids in self._find().items():
                self.last.setdefault(part, {}).update(snapshot(pids))

    def used(self, part: str) -> Used:
        """What the part used over the load; `ended` counts its processes gone by the end."""
        first, last = self.first.get(part, {}), self.last.get(part, {})
        seconds = sum(value - first.get(pid, 0.0) for pid, value in last.items())
        return Used(seconds, len(last), len(last.keys() - self.final.get(part, {}).keys()))

    def per_process(self, part: str) -> list[float]:
        first = self.first.get(part, {})
        return sorted((value - first.get(pid, 0.0) for pid, value in self.last.get(part, {}).items()), reverse=True)
