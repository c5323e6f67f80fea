"""The firmware's copy of the shared rules (device/firmware/rules.py) is the server's, under CPython.

The board cannot import server/pulsewire/protocol/rules.py, so it keeps its own: the interval
bounds, the metric-name rule and the command names must stay what the server enforces, or the
board would refuse a command the server lets an admin send, or take a configuration whose
readings the server will never store. The simulator answers commands with the same file.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pulsewire import firmware
from pulsewire.protocol import rules as server
from pulsewire.simulator.devices import VirtualDevice

fw = firmware.load("rules")
config = firmware.load("config")

CONFIG = {"server": "http://10.0.0.5:8000", "token": "pwd_x"}


def test_the_interval_bounds_are_the_server_s() -> None:
    assert (fw.MIN_INTERVAL_MS, fw.MAX_INTERVAL_MS) == (server.MIN_INTERVAL_MS, server.MAX_INTERVAL_MS)


@pytest.mark.parametrize(
    "ms",
    [
        server.MIN_INTERVAL_MS - 1,
        server.MIN_INTERVAL_MS,
        5000,
        server.MAX_INTERVAL_MS,
        server.MAX_INTERVAL_MS + 1,
        0,
        -100,
        True,
        1000.0,
        "1000",
        None,
    ],
)
def test_set_interval_and_the_configuration_take_exactly_what_the_server_sends(ms: Any) -> None:
    try:
        server.command_args(server.CMD_SET_INTERVAL, {"ms": ms})
        sendable = True
    except server.CommandError:
        sendable = False
    ok, detail, interval_ms = fw.answer(fw.SET_INTERVAL, {"ms": ms})
    assert ok is sendable
    assert interval_ms == (ms if sendable else 0)
    assert detail == (
        "" if sendable else f"ms: expected an integer in {server.MIN_INTERVAL_MS}..{server.MAX_INTERVAL_MS}"
    )
    try:
        config.check({**CONFIG, "interval_ms": ms})
        configurable = True
    except config.ConfigError:
        configurable = False
    assert configurable is sendable


def test_the_command_names_are_the_server_s() -> None:
    assert sorted(fw.COMMANDS) == sorted(server.COMMANDS)
    assert (fw.REBOOT, fw.SET_INTERVAL) == (server.CMD_REBOOT, server.CMD_SET_INTERVAL)
    samples = {server.CMD_REBOOT: None, server.CMD_SET_INTERVAL: {"ms": 2000}}
    for name in server.COMMANDS:  # every command the server sends is one the board knows
        ok, detail, _ = fw.answer(name, server.command_args(name, samples[name]))
        assert (ok, detail) == (True, ""), name


def test_an_unknown_command_is_refused_by_name() -> None:
    assert fw.answer("self_destruct", {}) == (False, "unknown command 'self_destruct'", 0)
    ok, detail, _ = fw.answer("x" * 100, {})
    assert not ok and detail == f"unknown command {'x' * 40!r}"  # the name is cut, as the result's detail is bounded


def test_the_metric_name_rule_is_the_server_s() -> None:
    assert fw.NAME_CHARS == server.NAME_CHARS
    # Every character of the Basic Multilingual Plane, alone: letters and digits of other
    # scripts ("é", "٣") are refused by both.
    differ = [hex(c) for c in range(0x10000) if fw.is_metric_name(chr(c)) != server.is_metric_name(chr(c))]
    assert not differ
    for name in ("", "a" * 64, "a" * 65, "temp.in-1_x", "temp erature", "temp\n"):
        assert fw.is_metric_name(name) == server.is_metric_name(name), repr(name)


def test_the_configuration_checks_value_names_with_the_rule() -> None:
    config.check_names(["a" * 64, "bme.humidity", "adc-34"])
    for bad in ("a" * 65, "", "température"):
        with pytest.raises(config.ConfigError, match=r"not a valid metric name \(\[A-Za-z0-9_\.-\]\{1,64\}\)"):
            config.check_names([bad])


def test_the_simulator_answers_commands_as_the_board_does() -> None:
    async def run() -> tuple[Any, ...]:
        device = VirtualDevice("sim-1", seed=1)
        answers = (
            device.obey(fw.SET_INTERVAL, {"ms": 50}),
            device.interval_ms,
            device.obey(fw.SET_INTERVAL, {"ms": 750}),
            device.interval_ms,
            device.retime.is_set(),  # the sampler is told at once
            device.obey(fw.REBOOT, {}),
            device.obey("self_destruct", {}),
        )
        return answers

    refused_interval = fw.answer(fw.SET_INTERVAL, {"ms": 50})[:2]
    assert asyncio.run(run()) == (
        refused_interval,
        5000,
        (True, ""),
        750,
        True,
        (True, ""),
        fw.answer("self_destruct", {})[:2],
    )
