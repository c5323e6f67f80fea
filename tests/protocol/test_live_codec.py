"""The live channel's messages, on text: what the server sends and the one message it accepts."""

from __future__ import annotations

import orjson
import pytest

from pulsewire.protocol import live


def test_snapshot_lists_each_device_with_its_latest_values() -> None:
    text = live.snapshot(
        [
            live.DeviceState("a", "Greenhouse", True, 1000, {"temperature": (990, 21.5), "door": (995, True)}),
            live.DeviceState("b", "Shed", False, None, {}),
        ]
    )
    assert orjson.loads(text) == {
        "type": "snapshot",
        "devices": [
            {
                "id": "a",
                "name": "Greenhouse",
                "online": True,
                "last_seen": 1000,
                "latest": {"temperature": {"ts": 990, "value": 21.5}, "door": {"ts": 995, "value": True}},
            },
            {"id": "b", "name": "Shed", "online": False, "last_seen": None, "latest": {}},
        ],
    }


def test_telemetry_status_and_error() -> None:
    data = [{"ts": 5, "values": {"t": 1.5}}]
    assert orjson.loads(live.telemetry("a", data)) == {"type": "telemetry", "device": "a", "data": data}
    assert orjson.loads(live.status("a", False, 7)) == {"type": "status", "device": "a", "online": False, "ts": 7}
    assert orjson.loads(live.error("invalid", "why")) == {"type": "error", "code": "invalid", "detail": "why"}


@pytest.mark.parametrize(
    "text, devices",
    [
        ('{"type":"subscribe","devices":["a","b"]}', ["a", "b"]),
        ('{"type":"subscribe","devices":[]}', []),
        ('{"type":"subscribe"}', None),
    ],
)
def test_subscribe_is_read(text: str, devices: list[str] | None) -> None:
    assert live.decode_subscribe(text) == devices


@pytest.mark.parametrize(
    "text, detail",
    [
        (None, "expected {"),
        ("not json", "expected {"),
        ('["subscribe"]', "expected {"),
        ('{"type":"hello"}', "expected {"),
        ('{"type":"subscribe","devices":"a"}', "devices: expected a list of device ids"),
        ('{"type":"subscribe","devices":[1]}', "devices: expected a list of device ids"),
    ],
)
def test_anything_else_is_refused_with_a_reason(text: str | None, detail: str) -> None:
    with pytest.raises(live.SubscribeError) as info:
        live.decode_subscribe(text)
    assert info.value.detail.startswith(detail)
