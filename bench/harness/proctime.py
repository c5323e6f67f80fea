"""CPU time of groups of processes, read from /proc/<pid>/stat (utime + stime), for parts of a system
made of several processes: a server's supervisor and workers, PostgreSQL's backends, redis-server.

A part is measured by two snapshots, {pid: CPU seconds}, one before and one after a load. A process
only in the second started during the load and counts from zero; one only in the first ended during
it, and what it used after the first snapshot is lost (`used` says how many were lost, so a report
can say so). Linux only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
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
