"""The device channel under fuzzing: hypothesis makes sessions of frames and messages, sends them over
a real WebSocket to the real server with a real device token, and holds every answer to the test's
own reading of docs/protocol.md (`expected_answer` below; it does not ask the server's codec).

Every valid batch is acked, every refused message gets `error` with the documented code and `seq`
and the connection stays up, every unusable frame closes the connection with the documented code,
and nothing is left unanswered: each session ends with a probe whose answer must come next.
"""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.server import Server, start_server

# docs/protocol.md, "Limits at a glance" and section 1, written down again here on purpose.
SUBPROTOCOL = "pulsewire.v1"
MAX_FRAME = 65536
MAX_INT = 2**53 - 1
MAX_READINGS = 1000
MAX_VALUES = 64
MAX_TEXT = 64
MAX_DETAIL = 256
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
DAY = 86_400_000
KEPT_DAYS = 30  # retention_raw_days, the default
CLOSE_BINARY, CLOSE_NOT_JSON, CLOSE_TOO_BIG = 1003, 1007, 1009

ANSWER_TIMEOUT_S = 10
EXAMPLES = 400
DEVICES = 8


@dataclass(frozen=True)
class RawInt:
    """A JSON integer literal of 20 digits or more: beyond every integer limit of the protocol, and
    written as text (Python will not print an int of more than 4300 digits)."""

    text: str


@dataclass(frozen=True)
class Seq:
    """A telemetry `seq` relative to the last accepted one (`step` after it; 0 or less: not after)."""

    step: int


@dataclass(frozen=True)
class Stamp:
    """A reading `ts` as an offset from the server's clock when the frame is sent."""

    offset: int


@dataclass(frozen=True)
class Unusable:
    """A frame the server cannot read as a message: the connection is closed with `close_code`."""

    data: bytes
    text: bool
    close_code: int


@dataclass
class Peer:
    """What the documented rules say the server remembers about one connection."""

    hello: bool = False
    last_seq: int = 0
    sent: list[str] = field(default_factory=list)  # for the failure report


# The answers the documents promise.


@dataclass(frozen=True)
class Ack:
    seq: int


@dataclass(frozen=True)
class Welcome:
    pass


@dataclass(frozen=True)
class Silence:
    """A `result` for a command this connection never got: logged and ignored, no answer."""


@dataclass(frozen=True)
class Refusal:
    """`error` with one of `problems` (code, start of detail) and this `seq`."""

    problems: frozenset[tuple[str, str]]
    seq: int | None


Answer = Ack | Welcome | Silence | Refusal


def is_int(v: Any) -> bool:
    return isinstance(v, RawInt) or (type(v) is int)


def int_within(v: Any, low: int, high: int) -> TypeGuard[int]:
    return type(v) is int and low <= v <= high


def is_text(v: Any, longest: int) -> bool:
    if not isinstance(v, str) or len(v) > longest:
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate, sent as a \\u escape
        return False
    return True


def value_ok(v: Any) -> bool:
    if type(v) is bool:
        return True
    if is_int(v):
        return int_within(v, -MAX_INT, MAX_INT)
    return type(v) is float and v == v and v not in (float("inf"), float("-inf"))


def reading_problems(i: int, reading: Any, now: int) -> set[tuple[str, str]]:
    where = f"data[{i}]."
    if not isinstance(reading, dict):
        return {("invalid", where + "reading:")}
    found = set()
    ts = reading.get("ts")
    if not int_within(ts, 0, MAX_INT):
        found.add(("invalid", where + "ts:"))
    elif not now - KEPT_DAYS * DAY <= ts <= now + DAY:
        found.add(("invalid", where + "ts:"))  # kept no more, or more than a day ahead
    values = reading.get("values")
    if not isinstance(values, dict) or not values:
        return found | {("invalid", where + "values:")}
    if len(values) > MAX_VALUES:
        found.add(("limit", where + "values:"))
    for name, value in values.items():
        if not NAME.match(name):
            found.add(("invalid", where + "values:"))
        elif not value_ok(value):
            found.add(("invalid", f"{where}values.{name}:"))
    return found


def telemetry_problems(msg: dict[str, Any], now: int) -> set[tuple[str, str]]:
    found = set()
    if not int_within(msg.get("seq"), 1, MAX_INT):
        found.add(("protocol", "seq:"))
    data = msg.get("data")
    if not isinstance(data, list) or not data:
        return found | {("invalid", "data:")}
    if len(data) > MAX_READINGS:
        found.add(("limit", "data:"))
    for i, reading in enumerate(data):
        found |= reading_problems(i, reading, now)
    return found


def hello_problems(msg: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    if msg.get("fw") is not None and not is_text(msg["fw"], MAX_TEXT):
        found.add(("invalid", "fw:"))
    if msg.get("uptime") is not None and not int_within(msg["uptime"], 0, MAX_INT):
        found.add(("invalid", "uptime:"))
    return found


def result_problems(msg: dict[str, Any]) -> set[tuple[str, str]]:
    found = set()
    if not is_text(msg.get("id"), MAX_TEXT) or not msg.get("id"):
        found.add(("invalid", "id:"))
    if type(msg.get("ok")) is not bool:
        found.add(("invalid", "ok:"))
    if msg.get("detail") is not None and not is_text(msg["detail"], MAX_DETAIL):
        found.add(("invalid", "detail:"))
    return found


def expected_answer(msg: Any, peer: Peer, now: int) -> Answer:
    """docs/protocol.md section 1: content first ("Rules the server applies"), then order."""
    if not isinstance(msg, dict):
        return Refusal(frozenset({("invalid", "message:")}), None)
    kind = msg.get("type")
    if kind not in ("telemetry", "hello", "result"):
        return Refusal(frozenset({("unknown_type" if isinstance(kind, str) else "invalid", "type:")}), None)
    seq = msg.get("seq") if kind == "telemetry" and int_within(msg.get("seq"), 1, MAX_INT) else None
    checks: dict[str, Callable[[dict[str, Any]], set[tuple[str, str]]]] = {
        "telemetry": lambda m: telemetry_problems(m, now),
        "hello": hello_problems,
        "result": result_problems,
    }
    problems = checks[kind](msg)
    if problems:
        return Refusal(frozenset(problems), seq)
    if kind == "hello":
        if peer.hello:
            return Refusal(frozenset({("protocol", "hello:")}), None)
        peer.hello = True
        return Welcome()
    if not peer.hello:
        return Refusal(frozenset({("protocol", "send hello first")}), seq)
    if kind == "result":
        return Silence()
    assert seq is not None
    if seq <= peer.last_seq:
        return Refusal(frozenset({("protocol", "seq:")}), seq)
    peer.last_seq = seq
    return Ack(seq)


# Building frames from what hypothesis drew.


def resolve(obj: Any, peer: Peer, now: int) -> Any:
    """The message as sent: stamps and relative seqs made absolute."""
    if isinstance(obj, Seq):
        return peer.last_seq + obj.step
    if isinstance(obj, Stamp):
        return now + obj.offset
    if isinstance(obj, dict):
        return {k: resolve(v, peer, now) for k, v in obj.items()}
    if isinstance(obj, list):
        return [resolve(v, peer, now) for v in obj]
    return obj


def to_json(msg: Any, ascii_only: bool) -> str:
    raw: list[str] = []

    def marked(obj: Any) -> Any:
        if isinstance(obj, RawInt):
            raw.append(obj.text)
            return f"\x00raw{len(raw) - 1}\x00"
        if isinstance(obj, dict):
            return {k: marked(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [marked(v) for v in obj]
        return obj

    text = json.dumps(marked(msg), ensure_ascii=ascii_only, allow_nan=True)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates travel as \\u escapes
        text = json.dumps(marked(msg), ensure_ascii=True, allow_nan=True)
    for i, digits in enumerate(raw):
        text = text.replace(json.dumps(f"\x00raw{i}\x00"), digits)
    return text


# Strategies: mostly valid, with every kind of documented mistake mixed in.

huge_ints = st.builds(
    lambda sign, digits, n: RawInt(sign + "9" + digits * (n - 1)),
    st.sampled_from(["", "-"]),
    st.sampled_from("0123456789"),
    st.sampled_from([20, 21, 25, 309, 400, 4301, 5000]),
)
out_of_range_ints = st.one_of(
    st.sampled_from([MAX_INT + 1, -MAX_INT - 1, 2**63, 2**64, 2**64 + 1, -(2**63) - 1, -(2**64), 2**70]), huge_ints
)
metric_names = st.one_of(
    st.from_regex(NAME, fullmatch=True).filter(lambda n: len(n) <= MAX_TEXT),
    st.sampled_from(["temperature", "humidity", "bme.t", "door", "a", ".", "..", "x" * 64]),
)
bad_names = st.sampled_from(["", "bad name", "temp/C", "tempé", "x" * 65, "a\n"])
good_values = st.one_of(
    st.booleans(),
    st.integers(-MAX_INT, MAX_INT),
    st.sampled_from([MAX_INT, -MAX_INT, 0]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e19, -1e19, 2.0**64, 1.8446744073709552e19, 1e300, -0.0, 5e-324]),
)
bad_values = st.one_of(
    out_of_range_ints,
    st.sampled_from([float("nan"), float("inf"), float("-inf"), "21.5", None, [1], {"v": 1}]),
)
good_stamps = st.builds(Stamp, st.integers(-(KEPT_DAYS - 1) * DAY, DAY - 3_600_000))
bad_stamps = st.one_of(
    st.builds(Stamp, st.integers(-10 * 365 * DAY, -(KEPT_DAYS + 1) * DAY)),  # no longer kept
    st.builds(Stamp, st.integers(2 * DAY, 365 * DAY)),  # too far ahead
    st.sampled_from([-1, MAX_INT + 1, 2**64, 1.5, 1e3, "1763700000123", None, True]),
    out_of_range_ints,
)


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each drawn in proportion to its weight (st.one_of weighs all alike
    and merges repeated ones)."""
    slots = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(slots) - 1).flatmap(lambda i: slots[i])


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return weighted((4, good), (1, bad))


notes = st.one_of(st.text(max_size=10), huge_ints, st.integers(), st.floats())
good_readings = st.fixed_dictionaries(
    {"ts": good_stamps, "values": st.dictionaries(metric_names, good_values, min_size=1, max_size=5)},
    optional={"note": notes},
)
readings = st.one_of(
    st.fixed_dictionaries(
        {
            "ts": mostly(good_stamps, bad_stamps),
            "values": st.dictionaries(metric_names, mostly(good_values, bad_values), min_size=1, max_size=5),
        },
        optional={"note": notes},
    ),
    st.fixed_dictionaries(
        {"ts": good_stamps, "values": st.dictionaries(bad_names, good_values, min_size=1, max_size=2)}
    ),
    st.sampled_from([5, None, [], "r", {"values": {"t": 1}}, {"ts": Stamp(0)}, {"ts": Stamp(0), "values": {}}]),
)
too_many_values = st.builds(
    lambda ts: {"ts": ts, "values": {f"m{i}": float(i) for i in range(MAX_VALUES + 1)}}, good_stamps
)
seqs = weighted(
    (3, st.builds(Seq, st.integers(1, 3))),
    (1, st.builds(Seq, st.integers(-2, 0))),
    (1, st.sampled_from([0, -3, MAX_INT + 1, 2**64, "7", 1.5, None, True])),
    (1, huge_ints),
)
batch_data = weighted(
    (5, st.lists(readings, min_size=1, max_size=6)),
    (
        1,
        st.builds(
            lambda r: [r] * (MAX_READINGS + 1), st.fixed_dictionaries({"ts": good_stamps, "values": st.just({"t": 1})})
        ),
    ),
    (
        1,
        st.builds(
            lambda r: [r] * MAX_READINGS, st.fixed_dictionaries({"ts": good_stamps, "values": st.just({"t": 1.5})})
        ),
    ),
    (1, st.builds(lambda r: [r], too_many_values)),
    (1, st.sampled_from([[], {}, None, "data"])),
)
texts = st.one_of(st.text(max_size=MAX_TEXT), st.text(alphabet="ab", min_size=MAX_TEXT + 1, max_size=MAX_TEXT + 3))
surrogate = st.just("\ud800")


def message(kind: str, fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({"type": st.just(kind)}, optional=fields)


telemetry = st.fixed_dictionaries(
    {"type": st.just("telemetry"), "seq": seqs, "data": batch_data}, optional={"extra": notes}
)
good_telemetry = st.fixed_dictionaries(
    {
        "type": st.just("telemetry"),
        "seq": st.builds(Seq, st.integers(1, 3)),
        "data": st.lists(good_readings, min_size=1, max_size=6),
    },
    optional={"extra": notes},
)
hello = st.one_of(
    st.fixed_dictionaries({"type": st.just("hello"), "fw": st.text(max_size=20), "uptime": st.integers(0, MAX_INT)}),
    message(
        "hello",
        {
            "fw": st.one_of(texts, surrogate, st.integers()),
            "uptime": mostly(st.integers(0, MAX_INT), st.one_of(out_of_range_ints, st.just(-1), st.just(1.5))),
            "x": huge_ints,
        },
    ),
)
result = message(
    "result",
    {
        "id": st.one_of(st.text(min_size=1, max_size=MAX_TEXT), st.just(""), surrogate, huge_ints, texts),
        "ok": st.one_of(st.booleans(), st.booleans(), st.sampled_from([1, "true", None]), huge_ints),
        "detail": st.one_of(st.none(), st.text(max_size=40), st.just("d" * (MAX_DETAIL + 1)), surrogate),
    },
)
odd_messages = st.one_of(
    st.sampled_from([[], [1], 7, "hello", None, True, {}, {"type": None}, {"type": 5}, {"type": "launch"}]),
    st.builds(lambda t: {"type": t}, st.text(max_size=10)),
    st.builds(lambda n: {"type": n}, huge_ints),
)
messages = weighted((5, good_telemetry), (3, telemetry), (1, hello), (1, result), (1, odd_messages))

unusable = st.one_of(
    st.builds(lambda m: Unusable(to_json(m, True).encode(), False, CLOSE_BINARY), hello),
    st.sampled_from(
        [
            Unusable(b'{"type":"hello","fw":"\xff"}', True, CLOSE_NOT_JSON),  # not UTF-8
            Unusable(b"\xc3\x28", True, CLOSE_NOT_JSON),
            Unusable(b"not json", True, CLOSE_NOT_JSON),
            Unusable(b'{"type": "telemetry", "seq": 1', True, CLOSE_NOT_JSON),
            Unusable(b"", True, CLOSE_NOT_JSON),
            Unusable(b"{'type': 'hello'}", True, CLOSE_NOT_JSON),
            Unusable(b'{"type":"hello"} trailing', True, CLOSE_NOT_JSON),
        ]
    ),
    st.builds(
        lambda n: Unusable(('{"type":"hello","pad":"' + "x" * n + '"}').encode(), True, CLOSE_TOO_BIG),
        st.integers(MAX_FRAME - 20, MAX_FRAME + 5000),
    ).filter(lambda u: len(u.data) > MAX_FRAME),
)


@dataclass(frozen=True)
class Session:
    hello_first: bool
    messages: list[Any]
    ascii_only: bool
    last: Unusable | None


sessions = st.builds(
    Session,
    st.sampled_from([True, True, True, False]),
    st.lists(messages, min_size=1, max_size=8),
    st.booleans(),
    weighted((3, st.none()), (1, unusable)),
)


def batch_of(values: dict[str, Any], ts: Any = Stamp(0)) -> dict[str, Any]:
    return {"type": "telemetry", "seq": Seq(1), "data": [{"ts": ts, "values": values}]}


# Talking to the server.


def open_device(server: Server, token: str) -> ClientConnection:
    return connect(
        server.ws_base + "/ws/device",
        subprotocols=[SUBPROTOCOL],  # type: ignore[list-item]
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=10,
        ping_interval=None,
        max_size=None,
    )


def answer_of(ws: ClientConnection, peer: Peer) -> dict[str, Any]:
    try:
        return json.loads(ws.recv(timeout=ANSWER_TIMEOUT_S))  # type: ignore[no-any-return]
    except TimeoutError:
        raise AssertionError(f"no answer within {ANSWER_TIMEOUT_S} s; sent: {peer.sent[-3:]}") from None
    except ConnectionClosed as exc:
        raise AssertionError(f"closed ({exc.rcvd}) instead of answering; sent: {peer.sent[-3:]}") from None


def check(answer: dict[str, Any], expected: Answer, frame: str) -> None:
    shown = frame if len(frame) < 300 else frame[:300] + "..."
    event(f"answer: {answer.get('type')} {answer.get('code', '')}".strip())
    if isinstance(expected, Ack):
        assert answer == {"type": "ack", "seq": expected.seq}, f"{shown} -> {answer}"
    elif isinstance(expected, Welcome):
        assert answer["type"] == "welcome" and type(answer["time"]) is int, f"{shown} -> {answer}"
        assert type(answer["interval"]) is int, f"{shown} -> {answer}"
    else:
        assert isinstance(expected, Refusal)
        assert answer.get("type") == "error", f"{shown} -> {answer}, want one of {sorted(expected.problems)}"
        assert answer["seq"] == expected.seq, f"{shown} -> {answer}, want seq {expected.seq}"
        detail = answer["detail"]
        assert any(answer["code"] == code and detail.startswith(place) for code, place in expected.problems), (
            f"{shown} -> {answer}, want one of {sorted(expected.problems)}"
        )


def run_session(server: Server, token: str, session: Session) -> None:
    peer = Peer()
    with open_device(server, token) as ws:
        first = [{"type": "hello", "fw": "fuzz", "uptime": 1}] if session.hello_first else []
        for drawn in [*first, *session.messages]:
            now = int(time.time() * 1000)
            msg = resolve(drawn, peer, now)
            frame = to_json(msg, session.ascii_only)
            peer.sent.append(frame[:200])
            if len(frame.encode("utf-8")) > MAX_FRAME:
                expect_close(ws, frame.encode("utf-8"), True, CLOSE_TOO_BIG, peer)
                return
            expected = expected_answer(msg, peer, now)
            ws.send(frame)
            if not isinstance(expected, Silence):
                check(answer_of(ws, peer), expected, frame)
        if session.last is not None:
            expect_close(ws, session.last.data, session.last.text, session.last.close_code, peer)
            return
        # Nothing left unanswered: the answer to this probe is the next thing the server says.
        probe = '{"type":"fuzz-probe"}'
        peer.sent.append(probe)
        ws.send(probe)
        check(answer_of(ws, peer), Refusal(frozenset({("unknown_type", "type:")}), None), probe)


def expect_close(ws: ClientConnection, data: bytes, text: bool, code: int, peer: Peer) -> None:
    ws.send(data, text=text)
    try:
        extra = ws.recv(timeout=ANSWER_TIMEOUT_S)
    except ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == code, f"{data[:80]!r}: closed with {exc.rcvd}, want {code}"
        event(f"closed {code}")
        return
    except TimeoutError:
        raise AssertionError(f"{data[:80]!r}: neither closed nor answered; want close {code}") from None
    raise AssertionError(f"{data[:80]!r}: answered {extra!r} instead of closing with {code}; sent: {peer.sent[-3:]}")


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[tuple[Server, Iterator[str]]]:
    """The server and its devices' tokens, taken in turn: sessions are spread over several devices,
    each sending at the pace of a busy real one."""
    server = start_server(Path(tmp_path_factory.mktemp("fuzz")), "sqlite", request)
    tokens = server.register_many([f"fuzzed-{i}" for i in range(DEVICES)])
    yield server, itertools.cycle(tokens)
    assert "close_code=1011" not in server.log_text(), server.log_tail()


@settings(
    max_examples=EXAMPLES,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(session=sessions)
@example(
    session=Session(True, [batch_of({"v": 2**64}), batch_of({"v": -(2**63) - 1}), batch_of({"v": 1.0})], True, None)
)
@example(session=Session(True, [batch_of({"v": RawInt("9" * 5000)}), batch_of({"v": 2}, ts=2**64)], True, None))
def test_every_frame_gets_its_documented_answer(fuzzed: tuple[Server, Iterator[str]], session: Session) -> None:
    server, tokens = fuzzed
    run_session(server, next(tokens), session)
