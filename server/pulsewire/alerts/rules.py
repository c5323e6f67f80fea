"""Alert rules: the rule body of the alerts contract (docs/protocol.md) checked into a frozen `Rule`, and back.

No I/O. Every refusal is a `RuleError` whose `detail` names the field, for a 400 `{"detail": ...}`.
Device ids and metric names follow the shared rules (`pulsewire.protocol.rules`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from pulsewire.alerts.names import name_problem
from pulsewire.protocol.rules import Refused, is_device_id, is_metric_name

KINDS = ("threshold", "no_data")
COMPARISONS = (">", ">=", "<", "<=")
BANDS = ("outside", "inside")
SEVERITIES = ("info", "warning", "critical")
ANY_DEVICE = "*"

# 30 days: longer than any "for" or reminder interval a person acts on, and short enough that
# `for_s * 1000` added to a timestamp stays far inside the exact range of a JSON number.
MAX_DURATION_S = 30 * 86_400
MAX_CHANNELS = 16  # one rule notifies a handful of teams, not a mailing list
# Channel ids are made by the server; this accepts them and refuses anything that is no id.
CHANNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")

FIELDS = {
    "threshold": {
        "name",
        "kind",
        "device",
        "metric",
        "op",
        "value",
        "low",
        "high",
        "for_s",
        "repeat_s",
        "severity",
        "channels",
    },
    "no_data": {"name", "kind", "device", "metric", "for_s", "repeat_s", "severity", "channels"},
}


class RuleError(Refused):
    """A rule body that is refused, with a `detail` naming the field; nothing is stored."""


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str  # "threshold" | "no_data"
    device: str  # a device id, or "*" for every device
    metric: str | None  # None only for a no_data rule on the whole device
    for_s: int
    repeat_s: int  # 0: notify once
    severity: str
    channels: tuple[str, ...]
    op: str | None = None  # threshold rules only
    value: float | None = None  # with a comparison op
    low: float | None = None  # with a band op
    high: float | None = None


def parse_rule(body: object) -> Rule:
    """Check a rule body (decoded JSON) into a `Rule`. Raises `RuleError`."""
    if not isinstance(body, dict):
        raise RuleError("body: expected a JSON object")
    kind = body.get("kind")
    if kind not in KINDS:
        raise RuleError(f"kind: required, one of {', '.join(KINDS)}")
    unknown = sorted(str(k) for k in body if k not in FIELDS[kind])
    if unknown:
        raise RuleError(f"{unknown[0]}: unknown field for a {kind} rule")
    common = {
        "name": _name(body.get("name")),
        "kind": kind,
        "device": _device(body.get("device")),
        "metric": _metric(body.get("metric", _MISSING), optional=kind == "no_data"),
        "for_s": _duration(body, "for_s"),
        "repeat_s": _duration(body, "repeat_s"),
        "severity": _severity(body.get("severity")),
        "channels": _channels(body.get("channels", _MISSING)),
    }
    if kind == "no_data":
        return Rule(**common)
    return Rule(**common, **_condition(body))


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The rule in the documented body shape (what `parse_rule` takes back unchanged)."""
    out: dict[str, Any] = {
        "name": rule.name,
        "kind": rule.kind,
        "device": rule.device,
        "metric": rule.metric,
        "for_s": rule.for_s,
        "repeat_s": rule.repeat_s,
        "severity": rule.severity,
        "channels": list(rule.channels),
    }
    if rule.kind == "threshold":
        out["op"] = rule.op
        if rule.op in BANDS:
            out["low"], out["high"] = rule.low, rule.high
        else:
            out["value"] = rule.value
    return out


def matches(rule: Rule, value: float | bool) -> bool:
    """Whether a reading's value meets a threshold rule's condition.

    Booleans count as 0 and 1, as the wire contract lets a device send them for on/off sensors:
    "door open for 5 minutes" is `>= 1` with `for_s` 300. Refusing them would leave such sensors
    with no rule at all.
    """
    if rule.kind != "threshold":
        raise ValueError(f"matches: a {rule.kind} rule has no condition on values")
    x = float(value)
    if rule.op in BANDS:
        assert rule.low is not None and rule.high is not None
        inside = rule.low <= x <= rule.high
        return inside if rule.op == "inside" else not inside
    assert rule.value is not None
    if rule.op == ">":
        return x > rule.value
    if rule.op == ">=":
        return x >= rule.value
    if rule.op == "<":
        return x < rule.value
    return x <= rule.value


_MISSING = object()


def _name(name: object) -> str:
    problem = name_problem(name)
    if problem:
        raise RuleError(problem)
    assert isinstance(name, str)
    return name


def _device(device: object) -> str:
    if device == ANY_DEVICE or (isinstance(device, str) and is_device_id(device)):
        return device  # type: ignore[return-value]
    raise RuleError('device: required, a device id ([A-Za-z0-9_.-]{1,64}) or "*" for every device')


def _metric(metric: object, optional: bool) -> str | None:
    if metric is None and optional:
        return None
    if isinstance(metric, str) and is_metric_name(metric):
        return metric
    choice = "null (the whole device) or " if optional else ""
    raise RuleError(f"metric: required, {choice}a metric name ([A-Za-z0-9_.-]{{1,64}})")


def _duration(body: dict[str, Any], field: str) -> int:
    seconds = body.get(field, 0)
    # bool is an int in Python; `true` seconds is a mistake, not 1.
    if type(seconds) is not int:
        raise RuleError(f"{field}: expected whole seconds, 0..{MAX_DURATION_S}")
    if not 0 <= seconds <= MAX_DURATION_S:
        raise RuleError(f"{field}: {seconds} is out of range 0..{MAX_DURATION_S} (30 days)")
    return seconds


def _severity(severity: object) -> str:
    if severity not in SEVERITIES:
        raise RuleError(f"severity: required, one of {', '.join(SEVERITIES)}")
    return severity  # type: ignore[return-value]


def _channels(channels: object) -> tuple[str, ...]:
    if channels is _MISSING:
        return ()  # a rule may only record history and show on the dashboard
    if not isinstance(channels, list):
        raise RuleError("channels: expected a list of channel ids")
    if len(channels) > MAX_CHANNELS:
        raise RuleError(f"channels: {len(channels)} channels, at most {MAX_CHANNELS}")
    for i, channel in enumerate(channels):
        if not isinstance(channel, str) or not CHANNEL_ID.match(channel):
            raise RuleError(f"channels[{i}]: not a channel id ([A-Za-z0-9_-]{{1,64}})")
    if len(set(channels)) != len(channels):
        raise RuleError("channels: a channel is listed twice")
    return tuple(channels)


def _condition(body: dict[str, Any]) -> dict[str, Any]:
    op = body.get("op")
    if op in COMPARISONS:
        for field in ("low", "high"):
            if field in body:
                raise RuleError(f"{field}: not used with op {op!r} (a comparison takes value)")
        return {"op": op, "value": _number(body.get("value", _MISSING), "value")}
    if op in BANDS:
        if "value" in body:
            raise RuleError(f"value: not used with op {op!r} (a band takes low and high)")
        low = _number(body.get("low", _MISSING), "low")
        high = _number(body.get("high", _MISSING), "high")
        if low > high:
            raise RuleError(f"low: {low} is above high ({high})")
        return {"op": op, "low": low, "high": high}
    shown = repr(op)[:40] if isinstance(op, str) else "missing or not text"
    raise RuleError(f"op: {shown} is unknown; one of {', '.join(COMPARISONS + BANDS)}")


def _number(value: object, field: str) -> float:
    if value is _MISSING:
        raise RuleError(f"{field}: required number")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{field}: expected a number")
    try:
        number = float(value)
    except OverflowError:  # an integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        raise RuleError(f"{field}: not a finite number")
    return number
