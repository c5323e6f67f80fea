"""Alert rules: the body of the alerts contract checked into a `Rule`, every refusal with its detail."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsewire.alerts.rules import MAX_DURATION_S, Rule, RuleError, matches, parse_rule, rule_to_json

FREEZER = {
    "name": "freezer warm",
    "kind": "threshold",
    "device": "freezer-1",
    "metric": "temperature",
    "op": ">",
    "value": -10,
    "for_s": 300,
    "repeat_s": 3600,
    "severity": "critical",
    "channels": ["ch1"],
}
SILENT = {"name": "offline", "kind": "no_data", "device": "*", "metric": None, "for_s": 300, "severity": "warning"}
BAND = {**{k: v for k, v in FREEZER.items() if k != "value"}, "op": "outside", "low": 2, "high": 8}


DROP = object()  # a field left out


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {k: v for k, v in {**base, **changes}.items() if v is not DROP}


def test_the_documented_example() -> None:
    rule = parse_rule(FREEZER)
    assert rule == Rule(
        name="freezer warm",
        kind="threshold",
        device="freezer-1",
        metric="temperature",
        for_s=300,
        repeat_s=3600,
        severity="critical",
        channels=("ch1",),
        op=">",
        value=-10.0,
    )
    assert rule_to_json(rule) == {**FREEZER, "value": -10.0}


def test_defaults_and_a_no_data_rule() -> None:
    rule = parse_rule(SILENT)
    assert (rule.metric, rule.repeat_s, rule.channels, rule.op) == (None, 0, (), None)
    assert rule_to_json(rule) == {**SILENT, "repeat_s": 0, "channels": []}
    assert parse_rule(with_(SILENT, metric="humidity")).metric == "humidity"


@pytest.mark.parametrize("body", [FREEZER, SILENT, BAND, with_(BAND, op="inside", low=-1.5, high=-1.5)])
def test_round_trip(body: dict[str, Any]) -> None:
    rule = parse_rule(body)
    assert parse_rule(rule_to_json(rule)) == rule


@pytest.mark.parametrize(
    "body, detail",
    [
        ([FREEZER], "body: expected a JSON object"),
        (with_(FREEZER, kind="rate"), "kind: required, one of threshold, no_data"),
        (with_(FREEZER, kind=DROP), "kind: required, one of threshold, no_data"),
        (with_(FREEZER, colour="red"), "colour: unknown field for a threshold rule"),
        (with_(SILENT, op=">"), "op: unknown field for a no_data rule"),
        (with_(FREEZER, op="=="), "op: '==' is unknown; one of >, >=, <, <=, outside, inside"),
        (with_(FREEZER, op=DROP), "op: missing or not text is unknown; one of >, >=, <, <=, outside, inside"),
        (with_(BAND, low=9), "low: 9.0 is above high (8.0)"),
        (with_(FREEZER, low=1), "low: not used with op '>' (a comparison takes value)"),
        (with_(FREEZER, high=1), "high: not used with op '>' (a comparison takes value)"),
        (with_(BAND, value=1), "value: not used with op 'outside' (a band takes low and high)"),
        (with_(BAND, low=DROP), "low: required number"),
        (with_(FREEZER, value=DROP), "value: required number"),
        (with_(FREEZER, value=True), "value: expected a number"),
        (with_(FREEZER, value="-10"), "value: expected a number"),
        (with_(FREEZER, value=float("nan")), "value: not a finite number"),
        (with_(FREEZER, value=float("inf")), "value: not a finite number"),
        (with_(BAND, high=10**400), "high: not a finite number"),
        (with_(FREEZER, for_s=-1), f"for_s: -1 is out of range 0..{MAX_DURATION_S} (30 days)"),
        (
            with_(FREEZER, for_s=MAX_DURATION_S + 1),
            f"for_s: {MAX_DURATION_S + 1} is out of range 0..{MAX_DURATION_S} (30 days)",
        ),
        (with_(FREEZER, repeat_s=10**30), f"repeat_s: {10**30} is out of range 0..{MAX_DURATION_S} (30 days)"),
        (with_(FREEZER, for_s=1.5), f"for_s: expected whole seconds, 0..{MAX_DURATION_S}"),
        (with_(FREEZER, for_s=300.0), f"for_s: expected whole seconds, 0..{MAX_DURATION_S}"),
        (with_(FREEZER, for_s=float("nan")), f"for_s: expected whole seconds, 0..{MAX_DURATION_S}"),
        (with_(FREEZER, repeat_s=True), f"repeat_s: expected whole seconds, 0..{MAX_DURATION_S}"),
        (with_(FREEZER, repeat_s=None), f"repeat_s: expected whole seconds, 0..{MAX_DURATION_S}"),
        (with_(FREEZER, severity="fatal"), "severity: required, one of info, warning, critical"),
        (with_(FREEZER, severity=DROP), "severity: required, one of info, warning, critical"),
        (with_(FREEZER, device=DROP), 'device: required, a device id ([A-Za-z0-9_.-]{1,64}) or "*" for every device'),
        (with_(FREEZER, device=".."), 'device: required, a device id ([A-Za-z0-9_.-]{1,64}) or "*" for every device'),
        (with_(FREEZER, device="a/b"), 'device: required, a device id ([A-Za-z0-9_.-]{1,64}) or "*" for every device'),
        (with_(FREEZER, metric=None), "metric: required, a metric name ([A-Za-z0-9_.-]{1,64})"),
        (with_(FREEZER, metric="temp erature"), "metric: required, a metric name ([A-Za-z0-9_.-]{1,64})"),
        (
            with_(SILENT, metric="x" * 65),
            "metric: required, null (the whole device) or a metric name ([A-Za-z0-9_.-]{1,64})",
        ),
        (
            with_(SILENT, metric=DROP),
            "metric: required, null (the whole device) or a metric name ([A-Za-z0-9_.-]{1,64})",
        ),
        (with_(FREEZER, channels="ch1"), "channels: expected a list of channel ids"),
        (with_(FREEZER, channels=["ok", 7]), "channels[1]: not a channel id ([A-Za-z0-9_-]{1,64})"),
        (with_(FREEZER, channels=["a b"]), "channels[0]: not a channel id ([A-Za-z0-9_-]{1,64})"),
        (with_(FREEZER, channels=["a", "a"]), "channels: a channel is listed twice"),
        (with_(FREEZER, channels=[f"c{i}" for i in range(17)]), "channels: 17 channels, at most 16"),
        (with_(FREEZER, name=DROP), "name: required text of 1 to 100 characters"),
        (with_(FREEZER, name=""), "name: required text of 1 to 100 characters"),
        (with_(FREEZER, name="   "), "name: required text of 1 to 100 characters"),
        (with_(FREEZER, name=42), "name: required text of 1 to 100 characters"),
        (with_(FREEZER, name="x" * 101), "name: 101 characters, at most 100"),
        (
            with_(FREEZER, name="<script>x</script>"),
            "name: markup ('<' followed by a letter, '/', '!' or '?') is not allowed",
        ),
        (
            with_(FREEZER, name="warm\r\nBcc: all@example.org"),
            "name: control characters (line breaks, tabs, ...) are not allowed",
        ),
        (with_(FREEZER, name="a\tb"), "name: control characters (line breaks, tabs, ...) are not allowed"),
        (with_(FREEZER, name="a\u2028b"), "name: control characters (line breaks, tabs, ...) are not allowed"),
        (with_(FREEZER, name="a\x85b"), "name: control characters (line breaks, tabs, ...) are not allowed"),
    ],
)
def test_refusals(body: object, detail: str) -> None:
    with pytest.raises(RuleError) as refused:
        parse_rule(body)
    assert refused.value.detail == detail


def test_names_are_plain_text_kept_as_given() -> None:
    """Comparisons, ampersands and any script are plain text, kept as given; only markup is refused."""
    name = "freezer < -10 & > -30 \u2103, ünïcode " + "x" * 60
    assert parse_rule(with_(FREEZER, name=name)).name == name


@pytest.mark.parametrize(
    "op, bound, yes, no",
    [
        (">", -10, [-9.5, 0], [-10, -11]),
        (">=", -10, [-10, 0], [-10.5]),
        ("<", 5, [4.9, -100], [5, 6]),
        ("<=", 5, [5, 4], [5.1]),
    ],
)
def test_comparisons(op: str, bound: float, yes: list[float], no: list[float]) -> None:
    rule = parse_rule(with_(FREEZER, op=op, value=bound))
    assert [matches(rule, x) for x in yes] == [True] * len(yes)
    assert [matches(rule, x) for x in no] == [False] * len(no)


def test_bands_include_their_edges() -> None:
    outside, inside = parse_rule(BAND), parse_rule(with_(BAND, op="inside"))
    for x, within in [(1.9, False), (2, True), (5, True), (8, True), (8.1, False)]:
        assert matches(inside, x) is within and matches(outside, x) is not within


def test_booleans_count_as_zero_and_one() -> None:
    door_open = parse_rule(with_(FREEZER, metric="door", op=">=", value=1))
    assert matches(door_open, True) and not matches(door_open, False)


values = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5) | st.lists(st.text(max_size=3))


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([FREEZER, BAND, SILENT]),
    st.dictionaries(st.sampled_from(sorted({*FREEZER, *BAND, "extra"})), values, max_size=3),
)
def test_any_body_is_a_rule_or_a_refusal_naming_a_field(base: dict[str, Any], changes: dict[str, Any]) -> None:
    """Valid bodies with a few fields changed to anything: a rule that round-trips, or one refusal naming a field."""
    try:
        rule = parse_rule({**base, **changes})
    except RuleError as refused:
        field = refused.detail.split(":")[0].split("[")[0]
        assert field in {"body", *FREEZER, *BAND, "extra"}
    else:
        assert parse_rule(rule_to_json(rule)) == rule


def test_a_no_data_rule_has_no_value_condition() -> None:
    with pytest.raises(ValueError, match="no_data rule has no condition"):
        matches(parse_rule(SILENT), 1.0)
