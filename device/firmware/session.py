"""The device side of the device channel (docs/protocol.md section 1), without I/O.

It writes outgoing messages as JSON text into a caller's buffer and reads the server's messages
from bytes; the caller (link.py on the board, the simulator under CPython) moves the bytes. It
owns the rules: hello first, readings stamped with the server's clock when the board has no
clock of its own, batches of readings still in the ring, at most `window` batches waiting for
their ack, and an `error` dropping its batch like an ack would.
"""

import json
from array import array

try:
    from time import ticks_diff
except ImportError:  # CPython: the caller's ticks are plain monotonic milliseconds

    def ticks_diff(a: int, b: int) -> int:  # type: ignore[no-redef]
        return a - b


try:
    from micropython import const
except ImportError:

    def const(expr: int) -> int:
        return expr


try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from ring import Ring

# What handle() returns: what the server said, for the caller to act on.
NOTHING = const(0)
WELCOME = const(1)
ACKED = const(2)
REJECTED = const(3)
COMMAND = const(4)
UNKNOWN = const(5)

_ACK_PREFIX = b'{"type":"ack","seq":'
_MAX_ID = const(64)
_HINT_MAX_MS = const(900000)  # a hint past 15 minutes is taken as 15 minutes


def retry_hint_ms(text: str) -> int:
    """The wait the server asked for, in ms; 0 if it asked for none.

    `text` is a close reason ("storage unavailable; retry in 15 s") or a Retry-After header value
    ("15"). The device waits at least this long before it connects again (docs/protocol.md).
    """
    i = text.find("retry in ")
    rest = text[i + 9 :] if i >= 0 else text.strip()
    end = 0
    while end < len(rest) and end < 6 and rest[end].isdigit():
        end += 1
    if not end or (i < 0 and end != len(rest)):
        return 0
    ms = int(rest[:end]) * 1000
    return ms if ms < _HINT_MAX_MS else _HINT_MAX_MS


def _put(buf: bytearray, pos: int, data: bytes) -> int:
    end = pos + len(data)
    buf[pos:end] = data
    return end


def _put_int(buf: bytearray, pos: int, n: int) -> int:
    """Decimal digits of a non-negative int, written in place (no string for small ints)."""
    if n >= 0x3FFFFFFF:  # beyond a small int on the board anyway
        return _put(buf, pos, str(n).encode())
    if n < 10:
        buf[pos] = 48 + n
        return pos + 1
    digits = 0
    m = n
    while m:
        digits += 1
        m //= 10
    end = pos + digits
    i = end
    while n:
        i -= 1
        buf[i] = 48 + n % 10
        n //= 10
    return end


def _put_float(buf: bytearray, pos: int, v: float) -> int:
    # Values live as 32-bit floats in the ring: seven significant digits is all they hold, and
    # printing more would show binary noise (45.3 as 45.29999923706055).
    if v == int(v) and -1e9 < v < 1e9:
        n = int(v)
        if n < 0:
            buf[pos] = 45  # '-'
            return _put_int(buf, pos + 1, -n)
        return _put_int(buf, pos, n)
    return _put(buf, pos, ("%.7g" % v).encode())


class Session:
    def __init__(self, ring: "Ring", names: list, window: int = 8, batch: int = 20) -> None:
        if len(names) != ring.width:
            raise ValueError("one name per ring value")
        self.ring = ring
        self.keys = [('"' + n + '":').encode() for n in names]
        # The longest a reading can be in JSON: the frame is never filled past what fits.
        self.reading_max = 24 + 20 + sum(len(k) + 16 for k in self.keys)
        self.window = window
        self.batch = batch
        self.seqs = array("i", bytes(4 * window))  # in-flight batches, oldest first
        self.ends = array("i", bytes(4 * window))  # reading number after each batch's last
        self.done = bytearray(window)  # 1 once acked or refused
        self.inflight = 0
        self.seq = 0
        self.sent = 0  # reading number the next batch starts at
        self.clock_ms = 0  # epoch ms at clock_ticks; 0 while the time is unknown
        self.clock_ticks = 0
        self.own_clock = False  # True: the board keeps time itself (RTC, NTP); welcome's is ignored
        self.last_ts = 0
        self.interval_ms = 0  # from welcome; 0 until one arrives
        self.refused = 0  # batches the server refused with `error`
        self.command_id = ""
        self.command_name = ""
        self.command_args: dict = {}

    # -- connection life ---------------------------------------------------------------------

    def connected(self) -> None:
        """A new connection: seq starts again; whatever was in flight is sent again."""
        self.inflight = 0
        self.seq = 0
        self.sent = self.ring.first

    def hello(self, buf: bytearray, pos: int, fw: str, uptime_ms: int, boot: "dict | None" = None) -> int:
        pos = _put(buf, pos, b'{"type":"hello","fw":')
        pos = _put(buf, pos, json.dumps(fw).encode())
        pos = _put(buf, pos, b',"uptime":')
        pos = _put_int(buf, pos, uptime_ms)
        if boot:  # where the board stands with updates (otaboot.report())
            pos = _put(buf, pos, b',"boot":')
            pos = _put(buf, pos, json.dumps(boot).encode())
        return _put(buf, pos, b"}")

    def result(self, buf: bytearray, pos: int, ok: bool, detail: str) -> int:
        pos = _put(buf, pos, b'{"type":"result","id":')
        pos = _put(buf, pos, json.dumps(self.command_id).encode())
        pos = _put(buf, pos, b',"ok":true' if ok else b',"ok":false')
        if detail:
            pos = _put(buf, pos, b',"detail":')
            pos = _put(buf, pos, json.dumps(detail[:200]).encode())
        return _put(buf, pos, b"}")

    # -- time ----------------------------------------------------------------------------------

    def set_clock(self, epoch_ms: int, ticks: int) -> None:
        """Take the wall-clock time, and give it to every reading taken before it was known.

        A reading is stamped once: later corrections of the clock move new readings only, so a
        batch sent again after a lost ack carries the same timestamps and is stored once.
        """
        self.clock_ms = epoch_ms
        self.clock_ticks = ticks
        ring = self.ring
        for n in range(ring.first, ring.next):
            i = n % ring.capacity
            if not ring.ts[i]:
                ring.ts[i] = self.stamp(ring.ticks[i])

    def knows_time(self) -> bool:
        return self.clock_ms != 0

    def stamp(self, ticks: int) -> int:
        """Epoch ms of the moment `ticks` was read; never at or before an earlier stamp."""
        ts = self.clock_ms + ticks_diff(ticks, self.clock_ticks)
        if ts <= self.last_ts:
            ts = self.last_ts + 1
        self.last_ts = ts
        return ts

    # -- sending -------------------------------------------------------------------------------

    def can_send(self) -> bool:
        if self.sent < self.ring.first:
            self.sent = self.ring.first  # the oldest were dropped while waiting
        return self.inflight < self.window and self.sent < self.ring.next and self.knows_time()

    def next_batch(self, buf: bytearray, pos: int, end: int) -> int:
        """Write the next telemetry message into buf[pos:end]; returns where it ends (pos if none)."""
        if not self.can_send():
            return pos
        ring = self.ring
        start = pos
        self.seq += 1
        pos = _put(buf, pos, b'{"type":"telemetry","seq":')
        pos = _put_int(buf, pos, self.seq)
        pos = _put(buf, pos, b',"data":[')
        n = self.sent
        count = 0
        keys = self.keys
        width = ring.width
        while n < ring.next and count < self.batch and pos + self.reading_max + 2 <= end:
            i = n % ring.capacity
            mask = ring.mask[i]
            if mask:
                if count:
                    buf[pos] = 44  # ','
                    pos += 1
                pos = _put(buf, pos, b'{"ts":')
                pos = _put_int(buf, pos, ring.ts[i])
                pos = _put(buf, pos, b',"values":{')
                first = True
                base = i * width
                for k in range(width):
                    if mask & (1 << k):
                        if not first:
                            buf[pos] = 44
                            pos += 1
                        first = False
                        pos = _put(buf, pos, keys[k])
                        pos = _put_float(buf, pos, ring.values[base + k])
                pos = _put(buf, pos, b"}}")
                count += 1
            n += 1
        if not count:  # only empty readings: nothing to say, but they are done with
            self.seq -= 1
            ring.release(n)
            self.sent = n
            return start
        pos = _put(buf, pos, b"]}")
        slot = self.inflight
        self.seqs[slot] = self.seq
        self.ends[slot] = n
        self.done[slot] = 0
        self.inflight += 1
        self.sent = n
        return pos

    # -- receiving -----------------------------------------------------------------------------

    def handle(self, payload: bytes | memoryview, ticks: int) -> int:
        """Act on one text message from the server; returns what it was (WELCOME, ACKED, ...).

        Raises ValueError for a message that is not JSON or lacks what its type needs; the
        caller logs it and goes on, since one bad message says nothing about the next.
        """
        if bytes(payload[: len(_ACK_PREFIX)]) == _ACK_PREFIX:
            seq = _small_int(payload, len(_ACK_PREFIX))
            if seq > 0:  # the server's own ack shape, read without building a dict
                return ACKED if self._settle(seq) else NOTHING
        msg = json.loads(bytes(payload))
        if not isinstance(msg, dict):
            raise ValueError("message is not a JSON object")
        kind = msg.get("type")
        if kind == "ack":
            return ACKED if self._settle(_positive(msg, "seq")) else NOTHING
        if kind == "error":
            refused = msg.get("seq")
            if isinstance(refused, int) and refused > 0 and self._settle(refused):
                self.refused += 1
                return REJECTED
            return NOTHING  # an error about no batch (a bad hello, say): nothing to drop
        if kind == "welcome":
            server_time = _positive(msg, "time")
            interval = msg.get("interval")
            if isinstance(interval, int) and interval > 0:
                self.interval_ms = interval
            if not self.own_clock:
                self.set_clock(server_time, ticks)
            return WELCOME
        if kind == "command":
            cid = msg.get("id")
            name = msg.get("name")
            args = msg.get("args")
            if not isinstance(cid, str) or not cid or len(cid) > _MAX_ID or not isinstance(name, str):
                raise ValueError("command without an id or a name")
            self.command_id = cid
            self.command_name = name
            self.command_args = args if isinstance(args, dict) else {}
            return COMMAND
        return UNKNOWN

    def _settle(self, seq: int) -> bool:
        """Mark batch `seq` done and free the readings of every done batch at the front."""
        found = False
        for s in range(self.inflight):
            if self.seqs[s] == seq and not self.done[s]:
                self.done[s] = 1
                found = True
                break
        if not found:
            return False
        k = 0
        while k < self.inflight and self.done[k]:
            self.ring.release(self.ends[k])
            k += 1
        if k:
            for s in range(k, self.inflight):
                self.seqs[s - k] = self.seqs[s]
                self.ends[s - k] = self.ends[s]
                self.done[s - k] = self.done[s]
            self.inflight -= k
        return True


def _small_int(payload: bytes | memoryview, pos: int) -> int:
    """Digits at payload[pos:] ending the message with '}', or -1 when it is not that shape."""
    n = 0
    end = len(payload)
    i = pos
    while i < end and 48 <= payload[i] <= 57 and i - pos < 9:
        n = n * 10 + payload[i] - 48
        i += 1
    if i == pos or i != end - 1 or payload[i] != 125:
        return -1
    return n


def _positive(msg: dict, key: str) -> int:
    v = msg.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
        raise ValueError(key + ": expected a positive integer")
    return v
