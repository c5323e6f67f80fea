"""Device-channel codec: the message shapes and limits of docs/protocol.md section 1, with no I/O.

`decode_frame` turns one WebSocket frame into a message or raises:
- `FrameError` when the frame itself is unusable (binary, not UTF-8, not JSON, too big): the
  connection is closed with the error's close code;
- `MessageError` when the frame is usable but the message is not acceptable: the server answers
  `{"type":"error",...}` and the connection stays up.

`DeviceSession` adds the per-connection ordering rules (hello first, increasing seq).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from pulsewire.protocol.rules import MAX_AHEAD_MS, MAX_TS, METRIC_NAME, NAME_CHARS

SUBPROTOCOL = "pulsewire.v1"

MAX_FRAME_BYTES = 64 * 1024
MAX_READINGS_PER_BATCH = 1000
MAX_VALUES_PER_READING = 64
MAX_EXACT_INT = 2**53 - 1  # values are stored as IEEE doubles, exact up to here
MAX_TEXT = 64  # firmware version strings and command ids
MAX_REASON = 256  # a result's detail and a rollback's reason

# `boot.state` in hello: the running version is on trial (not yet confirmed), or confirmed.
BOOT_TRIAL = "trial"
BOOT_CONFIRMED = "confirmed"
BOOT_STATES = (BOOT_TRIAL, BOOT_CONFIRMED)

# RFC 6455 section 7.4.1 close codes used by the device channel.
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# Application range (4000-4999), documented in docs/protocol.md.
CLOSE_REPLACED = 4001
CLOSE_TOKEN_REVOKED = 4003

# `code` values of an error message.
ERR_INVALID = "invalid"  # a value, name or timestamp is wrong
ERR_LIMIT = "limit"  # too many readings or values
ERR_PROTOCOL = "protocol"  # out of order: telemetry before hello, seq missing or not increasing
ERR_UNKNOWN_TYPE = "unknown_type"


class FrameError(Exception):
    """The frame cannot be read at all; close the connection with `close_code`."""

    def __init__(self, close_code: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


class MessageError(Exception):
    """The message is refused whole; answer with an error message and keep the connection."""

    def __init__(self, code: str, detail: str, seq: int | None = None) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.seq = seq


@dataclass(frozen=True, slots=True)
class Boot:
    """Where an update left the board (hello's optional `boot`, docs/protocol.md): running `fw` on
    trial or confirmed; `previous` the version it came from; or, after going back by itself,
    `rolled_back_from` the version it left and `reason` why. `rollout`: the id of the rollout whose
    `update` staged the version it runs or went back from, as the command gave it."""

    state: str  # BOOT_TRIAL or BOOT_CONFIRMED
    previous: str | None = None
    rolled_back_from: str | None = None
    reason: str | None = None
    rollout: str | None = None


@dataclass(frozen=True, slots=True)
class Hello:
    fw: str | None
    uptime: int | None
    boot: Boot | None = None  # firmware without updates does not send it


@dataclass(frozen=True, slots=True)
class Telemetry:
    seq: int
    # Validated readings, only their ts and values: [{"ts": int, "values": {name: number|bool}}, ...]
    data: list[dict[str, Any]]

    @property
    def value_count(self) -> int:
        return sum(len(r["values"]) for r in self.data)


@dataclass(frozen=True, slots=True)
class Result:
    id: str
    ok: bool
    detail: str | None


Message = Hello | Telemetry | Result


# orjson reads an integer beyond the 64-bit range as a float (2^64 as 1.8446744073709552e19), and
# one beyond the range of a double not at all. Such a float where a number counts (a `ts`, a value)
# makes the frame be read again exactly; below this magnitude orjson's numbers are what was sent.
_MAYBE_ROUNDED = float(2**63)
_MAYBE_ROUNDED_NEGATIVE = -_MAYBE_ROUNDED
# The exact reading converts at most this many digits: every 64-bit integer, and far beyond every
# limit of the protocol. A longer one (up to the frame's 64 KiB) costs nothing and stands for "huge".
_EXACT_DIGITS = 20
_HUGE = 10**_EXACT_DIGITS


class _MaybeRounded(Exception):
    """orjson may have rounded an integer of the frame: read it again exactly."""


def _exact_int(text: str) -> int:
    """`parse_int` of the exact reading: the integer, or ±_HUGE for one of more than _EXACT_DIGITS
    digits (never converted, so no digit limit applies and no time is spent)."""
    if len(text) - text.startswith("-") <= _EXACT_DIGITS:
        return int(text)
    return -_HUGE if text.startswith("-") else _HUGE


def _exact_loads(text: str | bytes) -> Any:
    """The frame read by the standard library: every integer exact (or ±_HUGE), and NaN and
    Infinity read (MicroPython's and CPython's json.dumps both write them for non-finite floats),
    so that the message gets a precise error instead of the connection being closed."""
    try:
        return json.loads(text, parse_int=_exact_int)
    except (ValueError, RecursionError) as exc:
        raise FrameError(CLOSE_INVALID_PAYLOAD, f"not JSON: {str(exc)[:80]}") from None


def decode_frame(frame: str | bytes) -> Message:
    """Decode one frame received on the device channel.

    A text frame arrives as `str` (the WebSocket layer has checked its UTF-8); a binary frame as
    `bytes`, which this protocol does not use.
    """
    if isinstance(frame, (bytes, bytearray, memoryview)):
        raise FrameError(CLOSE_UNSUPPORTED_DATA, "binary frames are not accepted: send JSON as text")
    try:
        raw = frame.encode("utf-8")
    except UnicodeEncodeError:
        raise FrameError(CLOSE_INVALID_PAYLOAD, "frame is not valid UTF-8") from None
    if len(raw) > MAX_FRAME_BYTES:
        raise FrameError(CLOSE_TOO_BIG, f"frame is larger than {MAX_FRAME_BYTES} bytes")
    try:
        return decode_message(orjson.loads(raw))
    except (orjson.JSONDecodeError, _MaybeRounded):
        pass  # not JSON to orjson (NaN, Infinity, a huge integer, or not JSON at all), or rounded
    return decode_message(_exact_loads(raw), exact=True)


def decode_message(obj: Any, exact: bool = False) -> Message:
    """The message `obj`, or MessageError. `exact`: its integers are exact (not read by orjson)."""
    if not isinstance(obj, dict):
        raise MessageError(ERR_INVALID, "message: expected a JSON object")
    kind = obj.get("type")
    if kind == "telemetry":
        return _telemetry(obj, exact)
    if kind == "hello":
        return _hello(obj)
    if kind == "result":
        return _result(obj)
    if not isinstance(kind, str):
        raise MessageError(ERR_INVALID, "type: required string")
    raise MessageError(ERR_UNKNOWN_TYPE, f"type: unknown message type {kind[:MAX_TEXT]!r}")


def _is_int(v: Any) -> TypeGuard[int]:
    return type(v) is int


def _seq(obj: dict[str, Any]) -> int:
    seq = obj.get("seq")
    if not _is_int(seq) or not 1 <= seq <= MAX_TS:
        raise MessageError(ERR_PROTOCOL, f"seq: required positive integer up to {MAX_TS}")
    return seq


def _telemetry(obj: dict[str, Any], exact: bool) -> Telemetry:
    seq = _seq(obj)
    data = obj.get("data")
    if not isinstance(data, list) or not data:
        raise MessageError(ERR_INVALID, "data: required non-empty list of readings", seq)
    if len(data) > MAX_READINGS_PER_BATCH:
        raise MessageError(ERR_LIMIT, f"data: {len(data)} readings, at most {MAX_READINGS_PER_BATCH} per batch", seq)
    readings = []
    names: set[str] = set()  # metric names of this batch already checked: most repeat in every reading
    for i, reading in enumerate(data):
        problem = _reading_problem(reading, names, exact)
        if problem:
            raise MessageError(problem[0], f"data[{i}].{problem[1]}", seq)
        # Only ts and values go on (to storage and to dashboards); unknown fields stop here.
        readings.append({"ts": reading["ts"], "values": reading["values"]})
    return Telemetry(seq=seq, data=readings)


def _reading_problem(reading: Any, names: set[str], exact: bool) -> tuple[str, str] | None:
    """What is wrong with one reading, as (error code, detail), or None when it is fine. `names`:
    metric names found good so far (this adds to it). Raises _MaybeRounded when a number may have
    been rounded by orjson (not `exact`)."""
    if not isinstance(reading, dict):
        return ERR_INVALID, "reading: expected an object with ts and values"
    ts = reading.get("ts")
    if not _is_int(ts):
        if not exact and type(ts) is float and abs(ts) >= _MAYBE_ROUNDED:
            raise _MaybeRounded
        return ERR_INVALID, "ts: required integer (ms since the Unix epoch)"
    if not 0 <= ts <= MAX_TS:
        shown = ts if abs(ts) < _HUGE else f"an integer of more than {_EXACT_DIGITS} digits"
        return ERR_INVALID, f"ts: {shown} is out of range 0..{MAX_TS}"
    values = reading.get("values")
    if not isinstance(values, dict) or not values:
        return ERR_INVALID, "values: required non-empty object of named values"
    if len(values) > MAX_VALUES_PER_READING:
        return ERR_LIMIT, f"values: {len(values)} values, at most {MAX_VALUES_PER_READING} per reading"
    for name, value in values.items():
        if name not in names:
            if not METRIC_NAME.match(name):
                return ERR_INVALID, f"values: bad metric name {name[:80]!r} (want {NAME_CHARS})"
            names.add(name)
        kind = type(value)
        if kind is bool:
            continue
        if kind is int:
            if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
                continue
            return ERR_INVALID, f"values.{name}: integer beyond ±{MAX_EXACT_INT} cannot be stored exactly"
        if kind is float:
            if _MAYBE_ROUNDED_NEGATIVE < value < _MAYBE_ROUNDED:
                continue
            if math.isfinite(value):
                if not exact:
                    raise _MaybeRounded
                continue
        return ERR_INVALID, f"values.{name}: not a finite number or boolean"
    return None


@dataclass(frozen=True, slots=True)
class TsWindow:
    """The stamps storage takes at one moment: from `oldest` (None: no bound; raw readings are kept
    `kept_days`) to MAX_AHEAD_MS after `now`."""

    oldest: int | None
    now: int
    kept_days: float | None


def ts_out_of_window(data: list[dict[str, Any]], window: TsWindow) -> str | None:
    """Why a batch's readings cannot be stored, or None."""
    for i, reading in enumerate(data):
        ts = reading["ts"]
        if window.oldest is not None and ts < window.oldest:
            return (
                f"data[{i}].ts: {ts} is older than the {window.kept_days:g} days raw readings are kept "
                f"(oldest taken now: {window.oldest}); not stored: is the board's clock set?"
            )
        if ts > window.now + MAX_AHEAD_MS:
            return f"data[{i}].ts: {ts} is more than a day ahead of the server's clock ({window.now}); not stored"
    return None


def _is_text(value: Any, longest: int) -> bool:
    """A string that fits and is valid Unicode (JSON escapes can spell lone surrogates)."""
    if not isinstance(value, str) or len(value) > longest:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _hello(obj: dict[str, Any]) -> Hello:
    fw = obj.get("fw")
    uptime = obj.get("uptime")
    if fw is not None and not _is_text(fw, MAX_TEXT):
        raise MessageError(ERR_INVALID, f"fw: expected a string of at most {MAX_TEXT} characters")
    if uptime is not None and (not _is_int(uptime) or not 0 <= uptime <= MAX_TS):
        raise MessageError(ERR_INVALID, "uptime: expected a non-negative integer (ms since boot)")
    boot = obj.get("boot")
    return Hello(fw=fw, uptime=uptime, boot=None if boot is None else _boot(boot))


def _boot(obj: Any) -> Boot:
    """hello's `boot`: {"state":"trial"|"confirmed","previous":...} or, after a rollback,
    {"state":"confirmed","rolled_back_from":...,"reason":...}. Unknown fields are ignored."""
    if not isinstance(obj, dict):
        raise MessageError(ERR_INVALID, "boot: expected an object with state")
    state = obj.get("state")
    if state not in BOOT_STATES:
        raise MessageError(ERR_INVALID, f"boot.state: required, {' or '.join(BOOT_STATES)}")
    versions = {}
    for name, what in (("previous", "a version"), ("rolled_back_from", "a version"), ("rollout", "an id")):
        value = obj.get(name)
        if value is not None and (not _is_text(value, MAX_TEXT) or not value):
            raise MessageError(ERR_INVALID, f"boot.{name}: expected {what} string of 1 to {MAX_TEXT} characters")
        versions[name] = value
    reason = obj.get("reason")
    if reason is not None and not _is_text(reason, MAX_REASON):
        raise MessageError(ERR_INVALID, f"boot.reason: expected a string of at most {MAX_REASON} characters")
    if versions["rolled_back_from"] is not None and state != BOOT_CONFIRMED:
        raise MessageError(ERR_INVALID, "boot.rolled_back_from: only with state confirmed (the version gone back to)")
    return Boot(state, versions["previous"], versions["rolled_back_from"], reason or None, versions["rollout"])


def _result(obj: dict[str, Any]) -> Result:
    cid = obj.get("id")
    ok = obj.get("ok")
    detail = obj.get("detail")
    if not _is_text(cid, MAX_TEXT) or not cid:
        raise MessageError(ERR_INVALID, "id: required command id string")
    if type(ok) is not bool:
        raise MessageError(ERR_INVALID, "ok: required boolean")
    if detail is not None and not _is_text(detail, MAX_REASON):
        raise MessageError(ERR_INVALID, f"detail: expected a string of at most {MAX_REASON} characters")
    return Result(id=cid, ok=ok, detail=detail or None)


class DeviceSession:
    """Per-connection ordering rules: the device says hello first, and seq increases."""

    __slots__ = ("hello", "last_seq")

    def __init__(self) -> None:
        self.hello: Hello | None = None
        self.last_seq = 0

    def receive(self, frame: str | bytes, window: TsWindow | None = None) -> Message:
        """The message, or MessageError; with `window`, a batch stamped outside it is refused whole."""
        msg = decode_frame(frame)
        if window is not None and isinstance(msg, Telemetry):
            problem = ts_out_of_window(msg.data, window)
            if problem is not None:
                raise MessageError(ERR_INVALID, problem, msg.seq)
        if isinstance(msg, Hello):
            if self.hello is not None:
                raise MessageError(ERR_PROTOCOL, "hello: already received on this connection")
            self.hello = msg
        elif self.hello is None:
            seq = msg.seq if isinstance(msg, Telemetry) else None
            raise MessageError(ERR_PROTOCOL, "send hello first", seq)
        elif isinstance(msg, Telemetry):
            if msg.seq <= self.last_seq:
                raise MessageError(
                    ERR_PROTOCOL, f"seq: {msg.seq} does not increase (last was {self.last_seq})", msg.seq
                )
            self.last_seq = msg.seq
        return msg


def encode(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def welcome(server_time_ms: int, interval_ms: int) -> str:
    return encode({"type": "welcome", "time": server_time_ms, "interval": interval_ms})


def ack(seq: int) -> str:
    return f'{{"type":"ack","seq":{seq}}}'


def error(err: MessageError) -> str:
    return encode({"type": "error", "seq": err.seq, "code": err.code, "detail": err.detail})


def command(command_id: str, name: str, args: dict[str, Any]) -> str:
    return encode({"type": "command", "id": command_id, "name": name, "args": args})
