"""Structured logs: an event name plus key=value fields (text) or one JSON object per line (json).

Fields are passed with `extra={...}`; the formatter prints whatever a record carries beyond the
standard attributes, so call sites stay plain `log.info("device connected", extra={"device": d})`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

import orjson

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


def _quote(value: object) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=\n'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        parts = [stamp, f"{record.levelname.lower():<7}", record.name, _quote(record.getMessage())]
        parts += [f"{k}={_quote(v)}" for k, v in _fields(record).items()]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "ts": int(record.created * 1000),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        out.update(_fields(record))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def configure(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's access and connection lines repeat what Pulsewire logs itself; its warnings and
    # errors (a port in use, a crashed app) still come through.
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    for name in ("alembic", "httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(root.level, logging.WARNING))
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True


class Throttle:
    """Log a recurring cause at most once per `interval_s`, then say how many were held back.

    A client's mistakes and a storage outage repeat as fast as clients reconnect: one line per
    cause per interval keeps the log readable and cheap, while the metrics count every one.
    `cause` names a kind of event (a fixed, small set), never a client, so this stays bounded.
    """

    def __init__(self, interval_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(
        self, logger: logging.Logger, level: int, cause: str, event: str, extra: dict[str, object] | None = None
    ) -> bool:
        """Log `event` unless `cause` was logged less than `interval_s` ago; True if logged."""
        now = self._clock()
        last = self._last.get(cause)
        if last is not None and now - last < self.interval_s:
            self._held[cause] = self._held.get(cause, 0) + 1
            return False
        self._last[cause] = now
        fields = {"cause": cause, **(extra or {})}
        held = self._held.pop(cause, 0)
        if held:
            fields["held_back"] = held  # the same cause, not logged since the last line
        logger.log(level, event, extra=fields)
        return True
