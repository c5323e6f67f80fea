"""Structured logs: key=value text lines and JSON lines carry the same fields."""

from __future__ import annotations

import json
import logging

from pulsewire.logs import JsonFormatter, TextFormatter


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
