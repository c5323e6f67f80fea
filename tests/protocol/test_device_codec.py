"""The device-channel codec on raw frames: every shape, limit and refusal, with no I/O."""

from __future__ import annotations

import json
import math
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsewire.protocol import device as codec
from pulsewire.protocol.device import DeviceSession, FrameError, Hello, MessageError, Result, Telemetry, decode_frame
from pulsewire.protocol.rules import is_metric_name
from pulsewire.storage.writer import value_rows


def batch(seq=1, data=None):  # type: ignore[no-untyped-def]
    body = {"type": "telemetry", "seq": seq, "data": data or [{"ts": 1, "values": {"t": 1.5}}]}
    return json.dumps(body, ensure_ascii=False)


def refused(frame: str | bytes) -> MessageError:
    with pytest.raises(MessageError) as info:
        decode_frame(frame)
    return info.value


def closed(frame: str | bytes) -> FrameError:
    with pytest.raises(FrameError) as info:
        decode_frame(frame)
    return info.value


def test_hello_telemetry_result_decode() -> None:
    assert decode_frame('{"type":"hello","fw":"0.3.1","uptime":123456}') == Hello("0.3.1", 123456)
    msg = decode_frame(
        '{"type":"telemetry","seq":7,"data":[{"ts":1763700000123,"values":{"temperature":21.5,"humidity":40.2,"door":true}}]}'
    )
    assert isinstance(msg, Telemetry) and msg.seq == 7 and msg.value_count == 3
    assert value_rows(msg.data) == [
        ("temperature", 1763700000123, 21.5, False),
        ("humidity", 1763700000123, 40.2, False),
        ("door", 1763700000123, 1.0, True),
    ]
    assert decode_frame('{"type":"result","id":"c-91","ok":true}') == Result("c-91", True, None)


def test_unknown_fields_are_ignored_and_not_passed_on() -> None:
    msg = decode_frame('{"type":"telemetry","seq":1,"extra":1,"data":[{"ts":5,"values":{"a":1},"note":"x"}]}')
    assert isinstance(msg, Telemetry) and msg.data == [{"ts": 5, "values": {"a": 1}}]


@pytest.mark.parametrize(
    "frame, fragment",
    [
        ('{"type":"hello","fw":"\\ud800"}', "fw:"),
        ('{"type":"result","id":"\\udfff","ok":true}', "id:"),
        ('{"type":"telemetry","seq":99999999999999999999,"data":[{"ts":1,"values":{"t":NaN}}]}', "seq:"),
        ('{"type":"telemetry","seq":9007199254740992,"data":[{"ts":1,"values":{"t":1}}]}', "seq:"),
    ],
)
def test_strings_and_numbers_that_cannot_be_sent_back_are_refused(frame: str, fragment: str) -> None:
    err = refused(frame)
    assert fragment in err.detail
    codec.error(err)  # the refusal itself can always be encoded


def test_accepted_batches_always_encode_again() -> None:
    """Whatever passes the codec can be pushed to dashboards (orjson is stricter than json)."""
    frame = '{"type":"telemetry","seq":1,"data":[{"ts":1,"values":{"a":1e308,"b":-0.0,"c":false},"x":"\\ud800"}]}'
    msg = decode_frame(frame)
    assert isinstance(msg, Telemetry)
    assert codec.encode({"type": "telemetry", "device": "d", "data": msg.data})


@pytest.mark.parametrize(
    "frame, close_code",
    [
        (b'{"type":"hello"}', codec.CLOSE_UNSUPPORTED_DATA),
        ("not json", codec.CLOSE_INVALID_PAYLOAD),
        ('{"type": "telemetry", "seq": 1', codec.CLOSE_INVALID_PAYLOAD),
        ("\ud800", codec.CLOSE_INVALID_PAYLOAD),  # a lone surrogate cannot be UTF-8
        (batch(data=[{"ts": 1, "values": {"t": 1.0}, "pad": "x" * 70_000}]), codec.CLOSE_TOO_BIG),
    ],
)
def test_unusable_frames_close_the_connection(frame: str | bytes, close_code: int) -> None:
    err = closed(frame)
    assert err.close_code == close_code and err.reason


def test_frame_limit_counts_utf8_bytes_not_characters() -> None:
    assert isinstance(decode_frame(batch(data=[{"ts": 1, "values": {"t": 1}, "pad": "é" * 30_000}])), Telemetry)
    assert closed(batch(data=[{"ts": 1, "values": {"t": 1}, "pad": "é" * 33_000}])).close_code == codec.CLOSE_TOO_BIG


@pytest.mark.parametrize(
    "values, fragment",
    [
        ('{"t": NaN}', "values.t: not a finite number"),
        ('{"t": Infinity}', "values.t: not a finite number"),
        ('{"t": -Infinity}', "values.t: not a finite number"),
        ('{"t": "21.5"}', "values.t: not a finite number"),
        ('{"t": {"nested": 1}}', "values.t: not a finite number"),
        ('{"t": [1, 2]}', "values.t: not a finite number"),
        ('{"t": null}', "values.t: not a finite number"),
        ('{"t": 1e999}', "values.t: not a finite number"),
        ('{"t": 9007199254740993}', "values.t: integer beyond ±9007199254740991 cannot be stored exactly"),
        # NaN sends the frame through the stdlib parser, which keeps huge integers as integers.
        ('{"t": 99999999999999999999, "u": NaN}', "values.t: integer beyond"),
        ('{"bad name": 1}', "bad metric name 'bad name'"),
        ('{"": 1}', "bad metric name ''"),
        ('{"' + "m" * 65 + '": 1}', "bad metric name"),
        ('{"temp/C": 1}', "bad metric name"),
        ("{}", "values: required non-empty object"),
        ("[1]", "values: required non-empty object"),
    ],
)
def test_bad_values_refuse_the_batch(values: str, fragment: str) -> None:
    err = refused('{"type":"telemetry","seq":3,"data":[{"ts":1,"values":' + values + "}]}")
    assert err.code == codec.ERR_INVALID and err.seq == 3
    assert err.detail.startswith("data[0].") and fragment in err.detail


@pytest.mark.parametrize("ts", ["1.5", '"1763700000123"', "null", "true", "-1", str(2**53), "1e3"])
def test_timestamps_must_be_integers_in_range(ts: str) -> None:
    err = refused('{"type":"telemetry","seq":2,"data":[{"ts":' + ts + ',"values":{"t":1}}]}')
    assert err.code == codec.ERR_INVALID and "ts:" in err.detail and err.seq == 2


HUGE = "7" * 5000  # beyond the 4,300 digits Python's int() converts from text


def telemetry_with(ts: str = "1", value: str = "1", seq: str = "4") -> str:
    return '{"type":"telemetry","seq":' + seq + ',"data":[{"ts":' + ts + ',"values":{"v":' + value + "}}]}"


@pytest.mark.parametrize(
    "value",
    [str(2**64), str(2**64 + 1), str(2**70), str(-(2**63) - 1), str(-(2**64)), "1" + "0" * 400, HUGE, "-" + HUGE],
)
def test_integers_beyond_the_64_bit_range_are_refused_not_rounded(value: str) -> None:
    """orjson reads them as floats (or not at all): they get the same refusal as 2^53 + 1."""
    err = refused(telemetry_with(value=value))
    assert (err.code, err.seq) == (codec.ERR_INVALID, 4)
    assert err.detail == "data[0].values.v: integer beyond ±9007199254740991 cannot be stored exactly"


@pytest.mark.parametrize(
    "ts, shown",
    [
        (str(2**64), str(2**64)),
        (str(-(2**64)), str(-(2**64))),
        ("9" * 20, "9" * 20),
        ("1" + "0" * 20, "an integer of more than 20 digits"),
        (HUGE, "an integer of more than 20 digits"),
        ("-" + HUGE, "an integer of more than 20 digits"),
    ],
)
def test_huge_timestamps_are_out_of_range_not_floats(ts: str, shown: str) -> None:
    err = refused(telemetry_with(ts=ts))
    assert (err.code, err.seq) == (codec.ERR_INVALID, 4)
    assert err.detail == f"data[0].ts: {shown} is out of range 0..9007199254740991"


@pytest.mark.parametrize(
    "frame, code, detail",
    [
        (telemetry_with(seq=str(2**64)), codec.ERR_PROTOCOL, "seq: required positive integer up to 9007199254740991"),
        (telemetry_with(seq=HUGE), codec.ERR_PROTOCOL, "seq: required positive integer up to 9007199254740991"),
        ('{"type":"hello","uptime":' + str(2**64) + "}", codec.ERR_INVALID, "uptime: expected a non-negative"),
        ('{"type":"hello","uptime":-' + HUGE + "}", codec.ERR_INVALID, "uptime: expected a non-negative"),
        ('{"type":"result","id":' + HUGE + ',"ok":true}', codec.ERR_INVALID, "id: required command id string"),
        ('{"type":"result","id":"c-1","ok":' + str(2**64) + "}", codec.ERR_INVALID, "ok: required boolean"),
        ('{"type":"result","id":"c-1","ok":true,"detail":' + HUGE + "}", codec.ERR_INVALID, "detail: expected"),
        ('{"type":' + HUGE + "}", codec.ERR_INVALID, "type: required string"),
    ],
)
def test_huge_integers_elsewhere_get_the_documented_answer(frame: str, code: str, detail: str) -> None:
    err = refused(frame)
    assert err.code == code and err.detail.startswith(detail)


def test_huge_integers_in_unknown_fields_are_ignored_like_any_unknown_field() -> None:
    assert decode_frame('{"type":"hello","note":' + HUGE + ',"big":' + str(2**64) + "}") == Hello(None, None)
    msg = decode_frame('{"type":"telemetry","seq":1,"data":[{"ts":1,"values":{"v":2},"n":-' + HUGE + "}]}")
    assert isinstance(msg, Telemetry) and msg.data == [{"ts": 1, "values": {"v": 2}}]


@pytest.mark.parametrize("value, stored", [("1e19", 1e19), ("18446744073709551616.0", 2.0**64), ("-1E300", -1e300)])
def test_large_floats_written_as_floats_are_still_accepted(value: str, stored: float) -> None:
    msg = decode_frame(telemetry_with(value=value))
    assert isinstance(msg, Telemetry) and msg.data[0]["values"]["v"] == stored
    assert type(msg.data[0]["values"]["v"]) is float


def test_a_huge_integer_costs_no_time() -> None:
    """A frame full of 5,000-digit integers is refused as fast as any (never converted)."""
    frame = telemetry_with(value="[" + ",".join([HUGE] * 12) + "]")
    started = time.perf_counter()
    for _ in range(20):
        assert refused(frame).code == codec.ERR_INVALID
    assert time.perf_counter() - started < 0.5


def test_missing_ts_and_bad_reading_shapes() -> None:
    assert "ts: required integer" in refused('{"type":"telemetry","seq":1,"data":[{"values":{"t":1}}]}').detail
    assert "data[0].reading: expected an object" in refused('{"type":"telemetry","seq":1,"data":[5]}').detail
    assert "data: required non-empty list" in refused('{"type":"telemetry","seq":1,"data":[]}').detail
    assert "data: required non-empty list" in refused('{"type":"telemetry","seq":1,"data":{"ts":1}}').detail
    assert "data: required non-empty list" in refused('{"type":"telemetry","seq":1}').detail


@pytest.mark.parametrize("seq", ["", ',"seq":null', ',"seq":"7"', ',"seq":1.5', ',"seq":0', ',"seq":-3', ',"seq":true'])
def test_seq_must_be_a_positive_integer(seq: str) -> None:
    err = refused('{"type":"telemetry"' + seq + ',"data":[{"ts":1,"values":{"t":1}}]}')
    assert err.code == codec.ERR_PROTOCOL and "seq: required positive integer" in err.detail and err.seq is None


def test_limits_on_values_and_readings() -> None:
    ok_values = {f"m{i}": i for i in range(codec.MAX_VALUES_PER_READING)}
    assert isinstance(decode_frame(batch(data=[{"ts": 1, "values": ok_values}])), Telemetry)
    err = refused(batch(data=[{"ts": 1, "values": {**ok_values, "one_more": 1}}]))
    assert err.code == codec.ERR_LIMIT and "65 values, at most 64" in err.detail
    ok_readings = [{"ts": i, "values": {"t": 1}} for i in range(codec.MAX_READINGS_PER_BATCH)]
    assert isinstance(decode_frame(batch(data=ok_readings)), Telemetry)
    err = refused(batch(data=[*ok_readings, {"ts": 0, "values": {"t": 1}}]))
    assert err.code == codec.ERR_LIMIT and "1001 readings, at most 1000" in err.detail


@pytest.mark.parametrize(
    "frame, code",
    [
        ('{"type":"bogus"}', codec.ERR_UNKNOWN_TYPE),
        ('{"type":"ack","seq":1}', codec.ERR_UNKNOWN_TYPE),
        ('{"seq":1}', codec.ERR_INVALID),
        ('{"type":5}', codec.ERR_INVALID),
        ("[1,2]", codec.ERR_INVALID),
        ('"hello"', codec.ERR_INVALID),
        ('{"type":"hello","fw":5}', codec.ERR_INVALID),
        ('{"type":"hello","uptime":-1}', codec.ERR_INVALID),
        ('{"type":"result","id":"","ok":true}', codec.ERR_INVALID),
        ('{"type":"result","id":"c1","ok":"yes"}', codec.ERR_INVALID),
    ],
)
def test_unknown_and_malformed_messages(frame: str, code: str) -> None:
    assert refused(frame).code == code


def test_session_wants_hello_first_and_increasing_seq() -> None:
    s = DeviceSession()
    with pytest.raises(MessageError) as info:
        s.receive(batch(seq=1))
    assert info.value.code == codec.ERR_PROTOCOL and info.value.seq == 1 and "hello" in info.value.detail
    assert isinstance(s.receive('{"type":"hello"}'), Hello)
    assert s.receive(batch(seq=1)).seq == 1  # type: ignore[union-attr]
    assert s.receive(batch(seq=5)).seq == 5  # type: ignore[union-attr]
    for stale in (5, 4):
        with pytest.raises(MessageError) as info:
            s.receive(batch(seq=stale))
        assert info.value.code == codec.ERR_PROTOCOL and "does not increase (last was 5)" in info.value.detail
    with pytest.raises(MessageError, match="already received"):
        s.receive('{"type":"hello"}')
    assert s.receive(batch(seq=6)).seq == 6  # type: ignore[union-attr]


def test_encoders_produce_the_contract_shapes() -> None:
    assert json.loads(codec.ack(7)) == {"type": "ack", "seq": 7}
    assert json.loads(codec.welcome(1763700000123, 5000)) == {
        "type": "welcome",
        "time": 1763700000123,
        "interval": 5000,
    }
    err = MessageError(codec.ERR_INVALID, "values.temperature: not a finite number", 7)
    assert json.loads(codec.error(err)) == {
        "type": "error",
        "seq": 7,
        "code": "invalid",
        "detail": "values.temperature: not a finite number",
    }
    assert json.loads(codec.command("c-91", "set_interval", {"ms": 10000})) == {
        "type": "command",
        "id": "c-91",
        "name": "set_interval",
        "args": {"ms": 10000},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(seq=json_values, ts=json_values, values=st.dictionaries(st.text(max_size=70), json_values, max_size=4))
def test_any_message_is_decoded_cleanly_or_refused_cleanly(seq: object, ts: object, values: object) -> None:
    frame = json.dumps({"type": "telemetry", "seq": seq, "data": [{"ts": ts, "values": values}]})
    try:
        msg = decode_frame(frame)
    except MessageError as err:
        codec.error(err)
        return
    except FrameError as err:
        assert err.close_code in (codec.CLOSE_INVALID_PAYLOAD, codec.CLOSE_TOO_BIG)
        return
    assert isinstance(msg, Telemetry)
    codec.encode({"type": "telemetry", "device": "d", "data": msg.data})
    for metric, _ts, value, _is_bool in value_rows(msg.data):
        assert is_metric_name(metric) and math.isfinite(value)


def test_a_bad_metric_name_after_good_ones_in_the_same_batch_is_still_refused() -> None:
    """Names are checked once per batch: a good name seen before does not let a bad one through."""
    data = [{"ts": i, "values": {"temp": 1, "hum": 2}} for i in range(3)]
    data.append({"ts": 3, "values": {"temp": 1, "hum dity": 2}})
    with pytest.raises(MessageError, match=r"data\[3\]\.values: bad metric name 'hum dity'"):
        decode_frame(json.dumps({"type": "telemetry", "seq": 1, "data": data}))
    good = decode_frame(json.dumps({"type": "telemetry", "seq": 1, "data": data[:3]}))
    assert isinstance(good, Telemetry) and len(good.data) == 3


# --- hello's boot (an update's outcome, docs/protocol.md) -------------------------------------------


def test_hello_boot_decodes_trial_confirmed_and_rollback() -> None:
    trial = decode_frame('{"type":"hello","fw":"0.4.0","uptime":812,"boot":{"state":"trial","previous":"0.3.1"}}')
    assert trial == Hello("0.4.0", 812, codec.Boot("trial", previous="0.3.1"))
    back = decode_frame(
        '{"type":"hello","fw":"0.3.1","boot":{"state":"confirmed","rolled_back_from":"0.4.0",'
        '"reason":"ImportError: no module named session","extra":1}}'
    )
    assert back == Hello("0.3.1", None, codec.Boot("confirmed", None, "0.4.0", "ImportError: no module named session"))
    staged = decode_frame('{"type":"hello","fw":"0.4.0","boot":{"state":"trial","rollout":"ro_1f"}}')
    assert staged == Hello("0.4.0", None, codec.Boot("trial", rollout="ro_1f"))
    assert decode_frame('{"type":"hello","fw":"0.3.1"}') == Hello("0.3.1", None, None)  # old firmware: no boot
    assert decode_frame('{"type":"hello","boot":null}') == Hello(None, None, None)


@pytest.mark.parametrize(
    "boot, fragment",
    [
        ('"trial"', "boot: expected an object"),
        ("{}", "boot.state: required, trial or confirmed"),
        ('{"state":"staged"}', "boot.state"),
        ('{"state":"trial","previous":""}', "boot.previous"),
        ('{"state":"trial","previous":' + json.dumps("v" * 65) + "}", "boot.previous"),
        ('{"state":"confirmed","rolled_back_from":7}', "boot.rolled_back_from"),
        ('{"state":"trial","rolled_back_from":"0.4.0"}', "only with state confirmed"),
        ('{"state":"trial","rollout":""}', "boot.rollout: expected an id string"),
        ('{"state":"trial","rollout":["ro_1"]}', "boot.rollout"),
        ('{"state":"confirmed","reason":' + json.dumps("r" * 257) + "}", "boot.reason"),
        ('{"state":"confirmed","reason":"\\ud800"}', "boot.reason"),
    ],
)
def test_a_bad_boot_refuses_the_hello(boot: str, fragment: str) -> None:
    err = refused('{"type":"hello","fw":"0.4.0","boot":' + boot + "}")
    assert err.code == codec.ERR_INVALID and fragment in err.detail
