"""Envelopes: the messages Pulsewire instances send each other over the cluster bus, with no I/O.

Each is compact JSON carrying `v` (the envelope version, 1), `from` (the sending instance's id) and
`kind`, then the kind's own fields:

- `live`    {device (str|null), data (str)}: a message already encoded for /ws/live, to fan out;
- `status`  {device, online (bool), ts (int ms)}: a device came online or went offline;
- `claim`   {device, conn}: an instance took the device's connection; the older holder closes its own;
- `command` {device, id, name, args (object), reply (instance id)}: run on the instance holding the device;
- `result`  {id, ok (bool), detail (str|null), error (null|"offline"|"timeout"|"ended")}: its answer;
- `gone`    {instance}: an instance left (clean shutdown) or was found dead;
- `close`   {device, code (int), reason (str)}: end the device's connection wherever it is (token revoked);
- `alerts`  {}: rules changed or an alert was acknowledged: read the rules and alert states again;
- `rollout` {id}: a rollout changed: read it again.

`command` also carries `wait` (seconds, 0 to 60): how long the holder waits for the device's
result; with 0 it answers as soon as the command is sent.

In Python `from` is the attribute `sender` (a keyword cannot be a field), always the first argument.
An envelope is checked when it is built, so one that exists is valid: `decode` builds it from what
came off the wire (raising `EnvelopeError` with what is wrong), and `encode` refuses only what will
not fit in `MAX_ENVELOPE_BYTES` or is not JSON. Fields a version-1 envelope does not know are
ignored, so an instance can add an optional field without stopping older ones from reading it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import orjson

from pulsewire.protocol.rules import MAX_TS, NAME_CHARS

VERSION = 1
MAX_ENVELOPE_BYTES = 1 << 20  # 1 MiB: far above any live message, far below what hurts Redis
MAX_ID = 128  # a connection nonce, a command id, a command name
MAX_WAIT_S = 60  # a command's wait, as POST /api/devices/{id}/commands bounds it
MAX_CLOSE_REASON = 123  # bytes: what a WebSocket close frame can carry

# Instance ids follow the rule of device ids: no ':' (a presence value is "<instance>:<conn>") and
# no glob character (they end up in Redis key names that are SCANned with a pattern).
_NAME = re.compile(NAME_CHARS)

ERR_OFFLINE = "offline"  # no instance holds the device
ERR_TIMEOUT = "timeout"  # the device did not answer in time
ERR_ENDED = "ended"  # the device's connection ended before it answered
RESULT_ERRORS = (ERR_OFFLINE, ERR_TIMEOUT, ERR_ENDED)


class EnvelopeError(ValueError):
    """Bytes that are not a valid envelope, or an envelope that cannot be built or sent."""


def is_instance_id(value: object) -> bool:
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _expect(ok: bool, where: str, expected: str, value: object) -> None:
    if not ok:
        raise EnvelopeError(f"{where}: expected {expected}, got {_show(value)}")


def _device(kind: str, value: object, nullable: bool = False) -> None:
    ok = (nullable and value is None) or (isinstance(value, str) and _NAME.fullmatch(value) is not None)
    _expect(ok, f"{kind}.device", "a device id" + (" or null" if nullable else ""), value)


def _text(where: str, value: object) -> None:
    _expect(isinstance(value, str) and 0 < len(value) <= MAX_ID, where, f"a string of 1 to {MAX_ID} characters", value)


def _instance(where: str, value: object) -> None:
    _expect(is_instance_id(value), where, "an instance id (1 to 64 of A-Z a-z 0-9 _ . -)", value)


def _flag(where: str, value: object) -> None:
    _expect(isinstance(value, bool), where, "true or false", value)


@dataclass(frozen=True, slots=True)
class _Envelope:
    sender: str  # `from` on the wire

    kind: ClassVar[str] = ""

    def __post_init__(self) -> None:
        _instance("from", self.sender)
        self._check()

    def _check(self) -> None:
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Live(_Envelope):
    device: str | None  # None: a message about no one device (an alert, a rollout)
    data: str

    kind: ClassVar[str] = "live"

    def _check(self) -> None:
        _device("live", self.device, nullable=True)
        _expect(isinstance(self.data, str), "live.data", "a string", self.data)


@dataclass(frozen=True, slots=True)
class Status(_Envelope):
    device: str
    online: bool
    ts: int  # ms since the epoch

    kind: ClassVar[str] = "status"

    def _check(self) -> None:
        _device("status", self.device)
        _flag("status.online", self.online)
        ok = type(self.ts) is int and 0 <= self.ts <= MAX_TS
        _expect(ok, "status.ts", "a time in ms (an integer from 0)", self.ts)


@dataclass(frozen=True, slots=True)
class Claim(_Envelope):
    device: str
    conn: str  # the new connection's nonce

    kind: ClassVar[str] = "claim"

    def _check(self) -> None:
        _device("claim", self.device)
        _text("claim.conn", self.conn)


@dataclass(frozen=True, slots=True)
class Command(_Envelope):
    device: str
    id: str
    name: str
    args: dict[str, Any]
    reply: str  # the instance that waits for the result
    wait: float  # seconds the holder waits for the device's result; 0: answer once sent

    kind: ClassVar[str] = "command"

    def _check(self) -> None:
        _device("command", self.device)
        _text("command.id", self.id)
        _text("command.name", self.name)
        _expect(isinstance(self.args, dict), "command.args", "an object", self.args)
        _instance("command.reply", self.reply)
        ok = type(self.wait) in (int, float) and 0 <= self.wait <= MAX_WAIT_S
        _expect(ok, "command.wait", f"seconds from 0 to {MAX_WAIT_S}", self.wait)


@dataclass(frozen=True, slots=True)
class Result(_Envelope):
    id: str
    ok: bool
    detail: str | None
    error: str | None  # one of RESULT_ERRORS when the command never reached an answer from the device

    kind: ClassVar[str] = "result"

    def _check(self) -> None:
        _text("result.id", self.id)
        _flag("result.ok", self.ok)
        _expect(self.detail is None or isinstance(self.detail, str), "result.detail", "a string or null", self.detail)
        _expect(
            self.error is None or self.error in RESULT_ERRORS,
            "result.error",
            f"null or one of {RESULT_ERRORS}",
            self.error,
        )
        _expect(not (self.ok and self.error is not None), "result.error", "null when ok is true", self.error)


@dataclass(frozen=True, slots=True)
class Gone(_Envelope):
    instance: str

    kind: ClassVar[str] = "gone"

    def _check(self) -> None:
        _instance("gone.instance", self.instance)


@dataclass(frozen=True, slots=True)
class Close(_Envelope):
    device: str
    code: int  # a WebSocket close code of the application's range
    reason: str

    kind: ClassVar[str] = "close"

    def _check(self) -> None:
        _device("close", self.device)
        _expect(type(self.code) is int and 4000 <= self.code <= 4999, "close.code", "an integer 4000..4999", self.code)
        ok = isinstance(self.reason, str) and len(self.reason.encode()) <= MAX_CLOSE_REASON
        _expect(ok, "close.reason", f"a string of at most {MAX_CLOSE_REASON} bytes", self.reason)


@dataclass(frozen=True, slots=True)
class AlertsChanged(_Envelope):
    kind: ClassVar[str] = "alerts"

    def _check(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RolloutChanged(_Envelope):
    id: str

    kind: ClassVar[str] = "rollout"

    def _check(self) -> None:
        _text("rollout.id", self.id)


Envelope = Live | Status | Claim | Command | Result | Gone | Close | AlertsChanged | RolloutChanged

KINDS: dict[str, type[Envelope]] = {
    cls.kind: cls for cls in (Live, Status, Claim, Command, Result, Gone, Close, AlertsChanged, RolloutChanged)
}
# The wire fields of each kind after `v`, `from` and `kind`, in the order they are written.
_FIELDS: dict[str, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(cls) if f.name != "sender") for kind, cls in KINDS.items()
}


def encode(env: Envelope) -> bytes:
    body: dict[str, Any] = {"v": VERSION, "from": env.sender, "kind": env.kind}
    for name in _FIELDS[env.kind]:
        body[name] = getattr(env, name)
    try:
        data = orjson.dumps(body)
    except orjson.JSONEncodeError as exc:  # a command's args holding something JSON has no word for
        raise EnvelopeError(f"{env.kind}: cannot be written as JSON: {exc}") from None
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"{env.kind}: {len(data)} bytes, over the limit of {MAX_ENVELOPE_BYTES}")
    return data


def decode(data: bytes) -> Envelope:
    """The envelope in `data`; raises `EnvelopeError` saying what is wrong."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise EnvelopeError(f"{len(data)} bytes, over the limit of {MAX_ENVELOPE_BYTES}")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError(f"expected a JSON object, got {type(body).__name__}")
    version = body.get("v")
    if type(version) is not int or version != VERSION:
        raise EnvelopeError(f"unknown envelope version {_show(version)}: this instance reads version {VERSION}")
    kind = body.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise EnvelopeError(f"unknown kind {_show(kind)}: expected one of {', '.join(KINDS)}")
    if "from" not in body:
        raise EnvelopeError(f"{kind}: missing field 'from'")
    names = _FIELDS[cls.kind]
    missing = [name for name in names if name not in body]
    if missing:
        raise EnvelopeError(f"{kind}: missing field{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    return cls(body["from"], **{name: body[name] for name in names})
