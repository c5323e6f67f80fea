"""The cluster's envelopes, on bytes: every kind written and read back, and every way bytes can be wrong."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pulsewire.cluster.envelope import (
    MAX_ENVELOPE_BYTES,
    AlertsChanged,
    Claim,
    Close,
    Command,
    Envelope,
    EnvelopeError,
    Gone,
    Live,
    Result,
    Status,
    decode,
    encode,
)

EVERY_KIND: list[tuple[Envelope, dict[str, Any]]] = [
    (
        Live("web-1", device="greenhouse-1", data='{"type":"telemetry"}'),
        {"device": "greenhouse-1", "data": '{"type":"telemetry"}'},
    ),
    (Live("web-1", device=None, data='{"type":"alert"}'), {"device": None, "data": '{"type":"alert"}'}),
    (Status("web-1", device="d", online=True, ts=1763700000123), {"device": "d", "online": True, "ts": 1763700000123}),
    (Status("web-1", device="d", online=False, ts=0), {"device": "d", "online": False, "ts": 0}),
    (Claim("web-1", device="d", conn="k3J9x"), {"device": "d", "conn": "k3J9x"}),
    (
        Command(
            "web-1",
            device="d",
            id="c-1",
            name="set_interval",
            args={"ms": 5000, "deep": [1, {"x": None}]},
            reply="web-2",
            wait=10,
        ),
        {
            "device": "d",
            "id": "c-1",
            "name": "set_interval",
            "args": {"ms": 5000, "deep": [1, {"x": None}]},
            "reply": "web-2",
            "wait": 10,
        },
    ),
    (
        Result("web-2", id="c-1", ok=True, detail="done", error=None),
        {"id": "c-1", "ok": True, "detail": "done", "error": None},
    ),
    (
        Result("web-2", id="c-1", ok=False, detail=None, error="offline"),
        {"id": "c-1", "ok": False, "detail": None, "error": "offline"},
    ),
    (
        Result("web-2", id="c-1", ok=False, detail="low battery", error=None),
        {"id": "c-1", "ok": False, "detail": "low battery", "error": None},
    ),
    (Gone("web-1", instance="web-3"), {"instance": "web-3"}),
    (
        Close("web-1", device="d", code=4003, reason="token rotated"),
        {"device": "d", "code": 4003, "reason": "token rotated"},
    ),
    (AlertsChanged("web-1"), {}),
]


@pytest.mark.parametrize("env, fields", EVERY_KIND, ids=lambda x: getattr(x, "kind", ""))
def test_every_kind_is_written_as_compact_json_and_read_back(env: Envelope, fields: dict[str, Any]) -> None:
    data = encode(env)
    assert orjson.loads(data) == {"v": 1, "from": env.sender, "kind": env.kind, **fields}
    assert data == orjson.dumps(orjson.loads(data))  # compact: no space between tokens
    assert data.startswith(b'{"v":1,"from":')
    assert decode(data) == env
    assert type(decode(data)) is type(env)


@pytest.mark.parametrize("error", ["timeout", "ended"])
def test_each_result_error_is_read(error: str) -> None:
    env = Result("a", id="x", ok=False, detail=None, error=error)
    assert decode(encode(env)) == env


def test_unknown_fields_are_ignored_so_a_newer_instance_can_add_one() -> None:
    data = b'{"v":1,"from":"a","kind":"gone","instance":"b","reason":"upgrade"}'
    assert decode(data) == Gone("a", instance="b")


def test_the_largest_envelope_passes_and_one_byte_more_does_not() -> None:
    overhead = len(encode(Live("a", device=None, data="")))
    biggest = Live("a", device=None, data="x" * (MAX_ENVELOPE_BYTES - overhead))
    data = encode(biggest)
    assert len(data) == MAX_ENVELOPE_BYTES
    assert decode(data) == biggest
    with pytest.raises(EnvelopeError, match="over the limit"):
        encode(Live("a", device=None, data="x" * (MAX_ENVELOPE_BYTES - overhead + 1)))
    with pytest.raises(EnvelopeError, match="over the limit"):
        decode(data[:-2] + b'x"}')


def _gone(**change: Any) -> bytes:
    body: dict[str, Any] = {"v": 1, "from": "a", "kind": "gone", "instance": "b"}
    body.update(change)
    return orjson.dumps({k: v for k, v in body.items() if v is not _DROP})


_DROP = object()


def _with(kind: str, **change: Any) -> bytes:
    """A valid envelope of `kind` with some fields changed (or dropped with `_DROP`)."""
    env = next(env for env, _ in EVERY_KIND if env.kind == kind)
    body = orjson.loads(encode(env))
    body.update(change)
    return orjson.dumps({k: v for k, v in body.items() if v is not _DROP})


BAD: list[tuple[str, bytes, str]] = [
    ("not JSON", b'{"v":1,', "not JSON"),
    ("not UTF-8", b'{"v":1,"from":"\xff"}', "not JSON"),
    ("empty", b"", "not JSON"),
    ("array", b"[1,2]", "expected a JSON object, got list"),
    ("string", b'"gone"', "expected a JSON object, got str"),
    ("no version", _gone(v=_DROP), "unknown envelope version None"),
    ("version 2", _gone(v=2), "unknown envelope version 2"),
    ("version as text", _gone(v="1"), "unknown envelope version '1'"),
    ("version true", _gone(v=True), "unknown envelope version True"),
    ("version 1.0", _gone(v=1.0), "unknown envelope version 1.0"),
    ("no kind", _gone(kind=_DROP), "unknown kind None"),
    ("unknown kind", _gone(kind="hello"), "unknown kind 'hello'"),
    ("kind not text", _gone(kind=["gone"]), "unknown kind \\['gone'\\]"),
    ("no from", _gone(**{"from": _DROP}), "gone: missing field 'from'"),
    ("from null", _gone(**{"from": None}), "from: expected an instance id"),
    ("from empty", _gone(**{"from": ""}), "from: expected an instance id"),
    ("from with colon", _gone(**{"from": "a:b"}), "from: expected an instance id"),
    ("from with glob", _gone(**{"from": "a*"}), "from: expected an instance id"),
    ("from too long", _gone(**{"from": "a" * 65}), "from: expected an instance id"),
    ("missing field", _with("status", ts=_DROP), "status: missing field 'ts'"),
    ("missing fields", _with("command", args=_DROP, reply=_DROP), "command: missing fields 'args', 'reply'"),
    ("live device number", _with("live", device=7), "live.device: expected a device id or null"),
    ("live data object", _with("live", data={"type": "telemetry"}), "live.data: expected a string"),
    ("live data null", _with("live", data=None), "live.data: expected a string"),
    ("status device null", _with("status", device=None), "status.device: expected a device id"),
    ("status bad device", _with("status", device="a b"), "status.device: expected a device id"),
    ("status online 1", _with("status", online=1), "status.online: expected true or false"),
    ("status ts text", _with("status", ts="5"), "status.ts: expected a time in ms"),
    ("status ts float", _with("status", ts=5.0), "status.ts: expected a time in ms"),
    ("status ts bool", _with("status", ts=True), "status.ts: expected a time in ms"),
    ("status ts negative", _with("status", ts=-1), "status.ts: expected a time in ms"),
    ("status ts too big", _with("status", ts=2**53), "status.ts: expected a time in ms"),
    ("claim conn empty", _with("claim", conn=""), "claim.conn: expected a string of 1 to 128"),
    ("claim conn too long", _with("claim", conn="x" * 129), "claim.conn: expected a string of 1 to 128"),
    ("claim conn number", _with("claim", conn=5), "claim.conn: expected a string"),
    ("command id null", _with("command", id=None), "command.id: expected a string"),
    ("command name number", _with("command", name=1), "command.name: expected a string"),
    ("command args list", _with("command", args=[1]), "command.args: expected an object"),
    ("command args null", _with("command", args=None), "command.args: expected an object"),
    ("command reply bad", _with("command", reply="x/y"), "command.reply: expected an instance id"),
    ("command wait negative", _with("command", wait=-1), "command.wait: expected seconds from 0 to 60"),
    ("command wait too long", _with("command", wait=61), "command.wait: expected seconds from 0 to 60"),
    ("command wait text", _with("command", wait="5"), "command.wait: expected seconds"),
    ("command wait bool", _with("command", wait=True), "command.wait: expected seconds"),
    ("close code 1000", _with("close", code=1000), "close.code: expected an integer 4000..4999"),
    ("close code text", _with("close", code="4003"), "close.code: expected an integer"),
    ("close reason too long", _with("close", reason="r" * 124), "close.reason: expected a string of at most 123"),
    ("close reason null", _with("close", reason=None), "close.reason: expected a string"),
    ("result ok text", _with("result", ok="true"), "result.ok: expected true or false"),
    ("result detail number", _with("result", detail=3), "result.detail: expected a string or null"),
    ("result unknown error", _with("result", ok=False, error="lost"), "result.error: expected null or one of"),
    ("result ok with error", _with("result", ok=True, error="timeout"), "result.error: expected null when ok is true"),
    ("gone instance null", _gone(instance=None), "gone.instance: expected an instance id"),
    ("gone instance colon", _gone(instance="a:1"), "gone.instance: expected an instance id"),
    ("over 1 MiB", b" " * MAX_ENVELOPE_BYTES + _gone(), "over the limit of 1048576"),
]


@pytest.mark.parametrize("data, message", [(d, m) for _, d, m in BAD], ids=[name for name, _, _ in BAD])
def test_malformed_bytes_are_refused_with_a_clear_message(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        decode(data)


def test_an_envelope_cannot_be_built_wrong_either() -> None:
    with pytest.raises(EnvelopeError, match="status.online: expected true or false, got 'yes'"):
        Status("a", device="d", online="yes", ts=1)  # type: ignore[arg-type]
    with pytest.raises(EnvelopeError, match="from: expected an instance id"):
        Gone("pulsewire:bus", instance="b")


def test_args_that_are_not_json_are_refused_when_written() -> None:
    env = Command("a", device="d", id="c", name="n", args={"when": object()}, reply="b", wait=0)
    with pytest.raises(EnvelopeError, match="command: cannot be written as JSON"):
        encode(env)
