"""Storage health: whether commits succeed now, why not, and when clients should come back.

The writer reports every commit's outcome here (and so do reads that fail: a database that
cannot be read cannot be written either). Readiness, the 503 answers and the device closes for
storage trouble all read this one record, so they agree. A cause is one of a few fixed words
(`CAUSES`): it goes into HTTP bodies and close reasons, so it never carries a host, a path or an
error text, and it keys the log throttle, so that stays small.
"""

from __future__ import annotations

import errno
import logging
import math
import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import exc as sa_exc

from pulsewire.logs import Throttle
from pulsewire.metrics import Metrics

log = logging.getLogger("pulsewire.storage")

DISK_FULL = "disk full"
UNREACHABLE = "database unreachable"
BUSY = "database busy"
NOT_ANSWERING = "storage not answering"
WRITER_STOPPED = "writer stopped"
FAILED = "storage failed"
CAUSES = (DISK_FULL, UNREACHABLE, BUSY, NOT_ANSWERING, WRITER_STOPPED, FAILED)

# Causes a read cannot rule out: only a commit that succeeds ends them (a probe reads).
_WRITE_ONLY = (DISK_FULL,)

LOG_INTERVAL_S = 60.0


class StorageError(Exception):
    """Storage could not do what was asked; `cause` is one of CAUSES."""

    def __init__(self, message: str, cause: str = FAILED) -> None:
        super().__init__(message)
        self.cause = cause


def is_storage_error(exc: BaseException) -> bool:
    """Is `exc` the database (or the writer) failing, rather than a bug or a refused request?"""
    if isinstance(exc, StorageError):
        return True
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OSError):
        return True
    return _driver_error(exc)


def _driver_error(exc: BaseException) -> bool:
    if isinstance(exc, sqlite3.OperationalError):
        return True
    try:
        import psycopg
    except ImportError:  # PostgreSQL support not installed
        return False
    return isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError))


def cause_of(exc: BaseException) -> str:
    """The cause (one of CAUSES) of a storage error."""
    if isinstance(exc, StorageError):
        return exc.cause
    if isinstance(exc, sa_exc.TimeoutError):  # no pooled connection came free in time
        return BUSY
    orig: BaseException = exc.orig if isinstance(exc, sa_exc.DBAPIError) and exc.orig is not None else exc
    if isinstance(orig, OSError) and orig.errno == errno.ENOSPC:
        return DISK_FULL
    state = getattr(orig, "sqlstate", None) or ""
    text = str(orig).lower()
    if state == "53100" or "disk is full" in text or "no space left" in text:
        return DISK_FULL
    if state.startswith(("53", "55P03")) or "database is locked" in text or "database is busy" in text:
        return BUSY
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return UNREACHABLE
    if state.startswith(("08", "57P")) or isinstance(exc, sa_exc.InterfaceError) or _no_connection(orig):
        return UNREACHABLE
    return FAILED


def _no_connection(orig: BaseException) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    # Connecting failed (refused, unknown host, starting up) or the connection is gone.
    return isinstance(orig, (psycopg.OperationalError, psycopg.InterfaceError)) and not getattr(orig, "sqlstate", None)


@dataclass(frozen=True)
class RetryPolicy:
    """How long clients are told to wait while storage fails.

    The hint starts near `first_s` and grows with the outage's length up to `max_s`; each answer
    gets its own draw between half the step and the step ("equal jitter"), so a fleet closed at
    one moment comes back spread out, not all at once.
    """

    first_s: float = 10.0
    max_s: float = 60.0

    def hint_s(self, outage_s: float, draw: float) -> int:
        """Whole seconds to wait, `outage_s` into an outage, for a `draw` in [0, 1)."""
        step = min(max(outage_s, self.first_s), self.max_s)
        return max(1, min(math.ceil(step / 2 + draw * step / 2), math.ceil(self.max_s)))


class StorageHealth:
    """The record of storage outcomes: the last success, the failures since, and their cause."""

    def __init__(
        self,
        metrics: Metrics,
        retry: RetryPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._metrics = metrics
        self.retry = retry or RetryPolicy()
        self._clock = clock
        self._draw = draw
        self._throttle = Throttle(LOG_INTERVAL_S, clock)
        self.failures = 0  # consecutive failed outcomes since the last success
        self.cause: str | None = None
        self._since: float | None = None  # when the current outage began
        self._last_outcome = clock()
        self.last_success_ms: int | None = None
        self._recorded: BaseException | None = None  # the last error recorded
        metrics.storage_ready.set_function(lambda: float(self.ready))

    @property
    def ready(self) -> bool:
        return self.cause is None

    def quiet_for(self) -> float:
        """Seconds since the last outcome (success or failure)."""
        return self._clock() - self._last_outcome

    def outage_s(self) -> float:
        return 0.0 if self._since is None else self._clock() - self._since

    def succeeded(self, *, read_only: bool = False) -> None:
        """An outcome that worked. A read (`read_only`) cannot end an outage only a write shows."""
        self._last_outcome = self._clock()
        if read_only and self.cause in _WRITE_ONLY:
            return
        if not read_only:
            self.last_success_ms = time.time_ns() // 1_000_000
        if self.cause is not None:
            log.info(
                "storage available again",
                extra={"was": self.cause, "failures": self.failures, "outage_s": round(self.outage_s(), 1)},
            )
        self.failures, self.cause, self._since, self._recorded = 0, None, None, None

    def failed(self, exc: BaseException, where: str) -> str:
        """A storage error at `where` (commit, write, probe, read): recorded, counted, logged once per cause per interval."""
        if exc is self._recorded:  # a write's error, recorded by the writer, reaching its caller
            return self.cause or cause_of(exc)
        self._recorded = exc
        cause = cause_of(exc)
        now = self._clock()
        self._last_outcome = now
        self.failures += 1
        if self._since is None:
            self._since = now
        self.cause = cause
        self._metrics.storage_failures.labels(cause=cause).inc()
        error = f"{type(exc).__name__}: {exc}".splitlines()[0][:200]
        self._throttle.log(
            log,
            logging.ERROR,
            cause,
            "storage unavailable",
            {"where": where, "failures": self.failures, "error": error},
        )
        return cause

    def retry_after_s(self) -> int:
        return self.retry.hint_s(self.outage_s(), self._draw())

    def refused(self, where: str) -> int:
        """A client turned away for storage trouble (`where`: http, handshake, device); the seconds it is told to wait."""
        self._metrics.storage_refusals.labels(where=where).inc()
        return self.retry_after_s()

    def report(self) -> dict[str, object]:
        """The record for /readyz and /healthz: short, and nothing a client should not see."""
        out: dict[str, object] = {"ready": self.ready, "last_commit_ms": self.last_success_ms}
        if not self.ready:
            out.update(cause=self.cause, failures=self.failures, failing_for_s=round(self.outage_s(), 1))
        return out


def close_reason(retry_s: int) -> str:
    """The close reason for storage trouble; devices read the wait from it (docs/protocol.md)."""
    return f"storage unavailable; retry in {retry_s} s"
