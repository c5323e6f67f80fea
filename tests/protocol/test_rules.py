"""The shared rules: device ids and metric names, interval bounds, commands."""

from __future__ import annotations

import re

import pytest

from pulsewire.protocol.rules import (
    DEVICE_ID_PATTERN,
    MAX_INTERVAL_MS,
    MIN_INTERVAL_MS,
    CommandError,
    command_args,
    is_device_id,
    is_metric_name,
)
from pulsewire.settings import Settings


@pytest.mark.parametrize("name", ["a", "greenhouse-1", "bme.humidity", "A_b-c.9", "x" * 64])
def test_good_names(name: str) -> None:
    assert is_device_id(name) and is_metric_name(name)


@pytest.mark.parametrize("name", ["", "x" * 65, "tempé", "a b", "a/b", "a\n", "a:b"])
def test_bad_names(name: str) -> None:
    assert not is_device_id(name) and not is_metric_name(name)


@pytest.mark.parametrize("name", [".", "..", ".\n", "..\n"])
def test_dot_segments_are_no_device_ids_but_metric_names_may_be_dots(name: str) -> None:
    """A URL path segment "." or ".." means "here" or "up"; a metric name is never a path segment."""
    assert not is_device_id(name)
    assert not re.search(DEVICE_ID_PATTERN, name)  # the JSON Schema pattern agrees
    assert is_metric_name(name.strip())


@pytest.mark.parametrize("name", ["...", ".a", "a.", "..a", "a..", "x" * 64, "-"])
def test_ids_with_dots_are_fine_when_not_dot_segments(name: str) -> None:
    assert is_device_id(name) and re.search(DEVICE_ID_PATTERN, name)


@pytest.mark.parametrize(
    "name, args, expected",
    [
        ("reboot", None, {}),
        ("reboot", {}, {}),
        ("set_interval", {"ms": 100}, {"ms": 100}),
        ("set_interval", {"ms": 86_400_000}, {"ms": 86_400_000}),
    ],
)
def test_command_args_accepted(name: str, args: object, expected: dict[str, int]) -> None:
    assert command_args(name, args) == expected


@pytest.mark.parametrize(
    "name, args, detail",
    [
        ("launch", None, "name: unknown command 'launch'; known: reboot, set_interval"),
        ("reboot", {"force": True}, "args: reboot takes no arguments (got force)"),
        ("reboot", [1], "args: expected an object"),
        ("set_interval", None, "args.ms: required integer, the sampling interval in ms (100..86400000)"),
        ("set_interval", {"ms": "5000"}, "args.ms: required integer"),
        ("set_interval", {"ms": 5000.0}, "args.ms: required integer"),
        ("set_interval", {"ms": True}, "args.ms: required integer"),
        ("set_interval", {"ms": 99}, "args.ms: 99 is out of range 100..86400000"),
        ("set_interval", {"ms": 86_400_001}, "args.ms: 86400001 is out of range 100..86400000"),
        ("set_interval", {"ms": 1000, "jitter": 5}, "args: unknown argument(s) jitter; set_interval takes ms"),
    ],
)
def test_command_args_refused(name: str, args: object, detail: str) -> None:
    with pytest.raises(CommandError) as info:
        command_args(name, args)
    assert info.value.detail.startswith(detail)


def test_interval_bounds_are_the_settings_bounds() -> None:
    Settings(sample_interval_ms=MIN_INTERVAL_MS)
    Settings(sample_interval_ms=MAX_INTERVAL_MS)
    for bad in (MIN_INTERVAL_MS - 1, MAX_INTERVAL_MS + 1):
        with pytest.raises(ValueError, match="sample_interval_ms"):
            Settings(sample_interval_ms=bad)
