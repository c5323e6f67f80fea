"""Structured logs: key=value text lines and JSON lines carry the same fields."""

from __future__ import annotations

import json
import logging

from pulsewire.logs import JsonFormatter, TextFormatter, Throttle


def record(**fields: object) -> logging.LogRecord:
    rec = logging.LogRecord("pulsewire.device", logging.INFO, __file__, 1, "device connected", None, None)
    rec.__dict__.update(fields)
    return rec


def test_text_lines_are_key_value_with_quoting() -> None:
    line = TextFormatter().format(record(device="greenhouse-1", reason="closed by device", code=1000))
    assert line.endswith(
        'info    pulsewire.device "device connected" device=greenhouse-1 reason="closed by device" code=1000'
    )
    assert line[:4].isdigit() and "T" in line.split()[0] and line.split()[0].endswith("Z")


def test_json_lines_hold_the_event_and_fields() -> None:
    out = json.loads(JsonFormatter().format(record(device="greenhouse-1", seq=7)))
    assert out["event"] == "device connected" and out["level"] == "info" and out["logger"] == "pulsewire.device"
    assert out["device"] == "greenhouse-1" and out["seq"] == 7 and isinstance(out["ts"], int)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_logs_a_cause_once_per_interval_and_counts_what_it_held_back(caplog) -> None:  # type: ignore[no-untyped-def]
    clock, log = Clock(), logging.getLogger("pulsewire.test")
    throttle = Throttle(60.0, clock)
    with caplog.at_level(logging.INFO, logger="pulsewire.test"):
        assert throttle.log(log, logging.WARNING, "handshake_timeout", "connection closed", {"client": "10.0.0.1"})
        for _ in range(5):
            assert not throttle.log(log, logging.WARNING, "handshake_timeout", "connection closed")
        assert throttle.log(log, logging.WARNING, "bad_token", "handshake refused")  # another cause: its own line
        clock.now += 60.0
        assert throttle.log(log, logging.WARNING, "handshake_timeout", "connection closed")
    lines = [(r.getMessage(), r.__dict__.get("cause"), r.__dict__.get("held_back")) for r in caplog.records]
    assert lines == [
        ("connection closed", "handshake_timeout", None),
        ("handshake refused", "bad_token", None),
        ("connection closed", "handshake_timeout", 5),
    ]
    assert caplog.records[0].__dict__["client"] == "10.0.0.1" and caplog.records[0].levelno == logging.WARNING
