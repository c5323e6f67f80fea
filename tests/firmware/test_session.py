"""The firmware's device-channel session and ring (device/firmware/session.py, ring.py), on bytes.

Run under CPython here, with the same module files the board runs; the simulator uses them too.
"""

from __future__ import annotations

import json
from array import array
from typing import Any

import pytest

from pulsewire import firmware
from pulsewire.protocol import device as codec

ring_mod = firmware.load("ring")
session_mod = firmware.load("session")

NAMES = ["temperature", "humidity", "dropped"]
T0 = 1_763_700_000_000


def make(capacity: int = 16, window: int = 2, batch: int = 3) -> Any:
    return session_mod.Session(ring_mod.Ring(capacity, len(NAMES)), NAMES, window, batch)


def push(s: Any, n: int, *, ticks0: int = 1000, stamped: bool = False, mask: int = 0b011) -> None:
    for i in range(n):
        v = array("f", [20.0 + i, 40.5, 0.0])
        ticks = ticks0 + 100 * i
        s.ring.push(ticks, s.stamp(ticks) if stamped else 0, v, mask)


def welcome(s: Any, ticks: int = 2000, time_ms: int = T0, interval: int = 5000) -> int:
    msg = json.dumps({"type": "welcome", "time": time_ms, "interval": interval}).encode()
    return int(s.handle(msg, ticks))


def batch(s: Any, size: int = 4096) -> dict[str, Any] | None:
    buf = bytearray(size)
    end = s.next_batch(buf, 0, len(buf))
    return json.loads(bytes(buf[:end])) if end else None


def test_hello_is_valid_for_the_server_codec() -> None:
    s = make()
    buf = bytearray(256)
    end = s.hello(buf, 0, "0.1.0", 123456)
    msg = codec.DeviceSession().receive(bytes(buf[:end]).decode())
    assert isinstance(msg, codec.Hello) and msg.fw == "0.1.0" and msg.uptime == 123456


def test_nothing_is_sent_before_the_clock_is_known() -> None:
    s = make()
    push(s, 3)
    s.connected()
    assert not s.can_send()
    assert batch(s) is None


def test_welcome_stamps_waiting_readings_from_their_ticks() -> None:
    s = make()
    push(s, 3, ticks0=1000)  # taken 1000, 900 and 800 ms before the welcome at tick 2000
    assert welcome(s, ticks=2000) == session_mod.WELCOME
    assert s.interval_ms == 5000
    got = batch(s)
    assert got is not None
    assert [r["ts"] for r in got["data"]] == [T0 - 1000, T0 - 900, T0 - 800]


def test_batches_pass_the_server_codec_and_carry_only_read_values() -> None:
    s = make(batch=10)
    welcome(s)
    push(s, 2, ticks0=3000, stamped=True, mask=0b001)
    server = codec.DeviceSession()
    server.receive('{"type":"hello"}')
    buf = bytearray(4096)
    end = s.next_batch(buf, 0, len(buf))
    msg = server.receive(bytes(buf[:end]).decode())
    assert isinstance(msg, codec.Telemetry) and msg.seq == 1
    assert msg.data == [
        {"ts": T0 + 1000, "values": {"temperature": 20}},
        {"ts": T0 + 1100, "values": {"temperature": 21}},
    ]


def test_floats_print_as_the_board_holds_them() -> None:
    s = make(batch=1)
    welcome(s)
    s.ring.push(2000, s.stamp(2000), array("f", [45.3, -0.1, 3.0]), 0b111)
    got = batch(s)
    assert got is not None
    assert got["data"][0]["values"] == {"temperature": 45.3, "humidity": -0.1, "dropped": 3}


def test_window_limits_unacked_batches_and_acks_free_the_ring() -> None:
    s = make(window=2, batch=3)
    welcome(s)
    push(s, 8, ticks0=3000, stamped=True)
    first, second = batch(s), batch(s)
    assert first and second and (first["seq"], second["seq"]) == (1, 2)
    assert not s.can_send() and batch(s) is None  # window of 2 is full
    assert s.handle(b'{"type":"ack","seq":1}', 0) == session_mod.ACKED
    assert s.ring.first == 3 and len(s.ring) == 5
    third = batch(s)
    assert third and third["seq"] == 3 and len(third["data"]) == 2  # the last two of eight


def test_out_of_order_error_drops_its_batch_once_earlier_ones_settle() -> None:
    s = make(window=3, batch=2)
    welcome(s)
    push(s, 6, ticks0=3000, stamped=True)
    for _ in range(3):
        assert batch(s)
    err = b'{"type":"error","seq":2,"code":"invalid","detail":"values.x: bad"}'
    assert s.handle(err, 0) == session_mod.REJECTED
    assert s.ring.first == 0  # batch 1 still waits, so nothing is released yet
    assert s.handle(b'{"type":"ack","seq":1}', 0) == session_mod.ACKED
    assert s.ring.first == 4 and s.refused == 1
    assert s.handle(b'{"type":"ack","seq":3}', 0) == session_mod.ACKED
    assert len(s.ring) == 0


def test_reconnect_resends_unacked_readings_with_the_same_timestamps() -> None:
    s = make(window=2, batch=2)
    push(s, 4, ticks0=1000)
    welcome(s, ticks=2000)
    sent = [batch(s), batch(s)]
    s.handle(b'{"type":"ack","seq":1}', 0)
    s.connected()  # the link broke before the ack of seq 2
    welcome(s, ticks=9000, time_ms=T0 + 7005)  # the new welcome's clock is 5 ms off: no matter
    again = batch(s)
    assert again is not None and again["seq"] == 1
    assert again["data"] == sent[1]["data"]  # type: ignore[index]


def test_stamps_never_go_backwards_when_the_clock_is_corrected() -> None:
    s = make()
    welcome(s, ticks=0, time_ms=T0)
    a = s.stamp(1000)
    welcome(s, ticks=1000, time_ms=T0 + 500)  # the server says the board ran 500 ms fast
    b = s.stamp(1001)
    assert a == T0 + 1000 and b == a + 1


def test_full_ring_drops_the_oldest_and_counts_them() -> None:
    s = make(capacity=4, window=4, batch=10)
    welcome(s)
    push(s, 6, ticks0=3000, stamped=True)
    assert s.ring.dropped == 2 and len(s.ring) == 4
    got = batch(s)
    assert got is not None
    assert [r["values"]["temperature"] for r in got["data"]] == [22, 23, 24, 25]


def test_readings_dropped_while_in_flight_do_not_confuse_the_ack() -> None:
    s = make(capacity=4, window=2, batch=2)
    welcome(s)
    push(s, 4, ticks0=3000, stamped=True)
    assert batch(s)
    push(s, 3, ticks0=4000, stamped=True)  # drops three, two of them in flight
    assert s.handle(b'{"type":"ack","seq":1}', 0) == session_mod.ACKED
    got = batch(s)
    assert got is not None and [r["ts"] for r in got["data"]] == [T0 + 1300, T0 + 2000]


def test_command_is_read_and_the_result_is_valid_for_the_server() -> None:
    s = make()
    cmd = codec.command("c-7", "set_interval", {"ms": 1000}).encode()
    assert s.handle(cmd, 0) == session_mod.COMMAND
    assert (s.command_id, s.command_name, s.command_args) == ("c-7", "set_interval", {"ms": 1000})
    buf = bytearray(512)
    end = s.result(buf, 0, False, 'no "such" thing')
    server = codec.DeviceSession()
    server.receive('{"type":"hello"}')
    msg = server.receive(bytes(buf[:end]).decode())
    assert isinstance(msg, codec.Result) and msg.id == "c-7" and not msg.ok and msg.detail == 'no "such" thing'


@pytest.mark.parametrize(
    "payload",
    [b"not json", b"[1,2]", b'{"type":"ack"}', b'{"type":"welcome","time":"soon"}', b'{"type":"command","id":5}', b"{"],
)
def test_bad_messages_raise_value_error_and_change_nothing(payload: bytes) -> None:
    s = make()
    welcome(s)
    push(s, 2, ticks0=3000, stamped=True)
    assert batch(s)
    with pytest.raises(ValueError):
        s.handle(payload, 0)
    assert s.inflight == 1 and len(s.ring) == 2


@pytest.mark.parametrize("payload", [b'{"type":"ack","seq":99}', b'{"type":"error","seq":5}', b'{"type":"error"}'])
def test_acks_and_errors_for_unknown_batches_are_ignored(payload: bytes) -> None:
    s = make()
    welcome(s)
    push(s, 2, ticks0=3000, stamped=True)
    assert batch(s)
    assert s.handle(payload, 0) == session_mod.NOTHING
    assert s.inflight == 1 and len(s.ring) == 2


def test_unknown_message_types_are_reported_not_fatal() -> None:
    s = make()
    assert s.handle(b'{"type":"news","text":"hi"}', 0) == session_mod.UNKNOWN


def test_frame_budget_is_respected() -> None:
    s = make(capacity=64, window=8, batch=1000)
    welcome(s)
    push(s, 64, ticks0=3000, stamped=True, mask=0b111)
    sizes = []
    buf = bytearray(400)
    while s.can_send():
        end = s.next_batch(buf, 0, len(buf))
        assert end <= len(buf)
        sizes.append(end)
        json.loads(bytes(buf[:end]))
        s.handle(codec.ack(s.seq).encode(), 0)
    assert len(sizes) > 1 and len(s.ring) == 0


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("storage unavailable; retry in 15 s", 15_000),  # a close reason (docs/protocol.md)
        ("retry in 1 s", 1000),
        ("7", 7000),  # a Retry-After header
        (" 12 ", 12_000),
        ("retry in 99999 s", 900_000),  # more than 15 minutes is taken as 15 minutes
        ("", 0),
        ("storage unavailable; reconnect and resend", 0),
        ("keepalive ping timeout", 0),
        ("retry in soon", 0),
        ("12 s", 0),  # a Retry-After is digits only
        ("Wed, 21 Oct 2026 07:28:00 GMT", 0),  # an HTTP date: not given by this server
    ],
)
def test_the_wait_the_server_asks_for_is_read_from_a_close_reason_or_retry_after(text: str, ms: int) -> None:
    assert session_mod.retry_hint_ms(text) == ms


def test_the_servers_close_reason_for_storage_trouble_is_understood() -> None:
    from pulsewire.storage.health import close_reason

    assert session_mod.retry_hint_ms(close_reason(23)) == 23_000
