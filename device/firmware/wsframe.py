"""RFC 6455 framing without I/O: frames are built in and parsed from caller-owned buffers.

The WebSocket client (wsclient.py) is a thin shell that moves bytes between these buffers and a
stream; everything here runs the same under CPython, where it is tested on bytes.
"""

try:
    from micropython import const
except ImportError:  # CPython, for tests and the simulator

    def const(expr: int) -> int:
        return expr


# RFC 6455 section 5.2: opcodes
OP_CONT = const(0x0)
OP_TEXT = const(0x1)
OP_BINARY = const(0x2)
OP_CLOSE = const(0x8)
OP_PING = const(0x9)
OP_PONG = const(0xA)

# RFC 6455 section 7.4.1: close codes this client sends or acts on
CLOSE_NORMAL = const(1000)
CLOSE_GOING_AWAY = const(1001)
CLOSE_PROTOCOL_ERROR = const(1002)
CLOSE_TOO_BIG = const(1009)
CLOSE_NO_STATUS = const(1005)

# Room left in front of a payload for the largest client header: 2 + 8 (length) + 4 (mask key).
HEADER_ROOM = const(14)
_MAX_CONTROL = const(125)  # section 5.5: control payloads are at most 125 bytes


class ProtocolError(Exception):
    """The peer broke RFC 6455; `code` is the close code to answer with."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def header_length(length: int) -> int:
    """Length of a masked client frame header for a payload of `length` bytes (section 5.2)."""
    if length < 126:
        return 6
    if length < 65536:
        return 8
    return 14


def seal(buf: bytearray, opcode: int, length: int, key: bytes | bytearray) -> int:
    """Turn the payload at buf[HEADER_ROOM:HEADER_ROOM + length] into one masked, final frame.

    The header is written just in front of the payload and the payload is masked in place
    (section 5.3), so no frame is ever copied. Returns where the frame starts in `buf`; the frame
    ends at HEADER_ROOM + length.
    """
    start = HEADER_ROOM - header_length(length)
    i = start
    buf[i] = 0x80 | opcode  # FIN: this client never fragments what it sends
    if length < 126:
        buf[i + 1] = 0x80 | length
        i += 2
    elif length < 65536:
        buf[i + 1] = 0x80 | 126
        buf[i + 2] = length >> 8
        buf[i + 3] = length & 0xFF
        i += 4
    else:
        buf[i + 1] = 0x80 | 127
        for k in range(8):
            buf[i + 2 + k] = (length >> (56 - 8 * k)) & 0xFF
        i += 10
    k0, k1, k2, k3 = key[0], key[1], key[2], key[3]
    buf[i] = k0
    buf[i + 1] = k1
    buf[i + 2] = k2
    buf[i + 3] = k3
    mask(buf, HEADER_ROOM, HEADER_ROOM + length, key)
    return start


def mask(buf: bytearray, start: int, end: int, key: bytes | bytearray) -> None:
    """XOR buf[start:end] with the 4-byte key, in place (section 5.3); its own inverse."""
    k0, k1, k2, k3 = key[0], key[1], key[2], key[3]
    i = start
    stop4 = start + ((end - start) & ~3)
    while i < stop4:  # four bytes a turn: a quarter of the loop overhead of a byte-wise mask
        buf[i] ^= k0
        buf[i + 1] ^= k1
        buf[i + 2] ^= k2
        buf[i + 3] ^= k3
        i += 4
    j = 0
    while i < end:
        buf[i] ^= key[j]
        i += 1
        j += 1


def parse_header(buf: bytearray | bytes | memoryview, start: int, end: int) -> tuple[int, int, int]:
    """Parse the server frame header at buf[start:end].

    Returns (flags_opcode, header_length, payload_length) where flags_opcode keeps FIN in bit 7
    and the opcode in the low four bits; header_length is 0 when more bytes are needed.
    Raises ProtocolError for what section 5 forbids a server to send.
    """
    if end - start < 2:
        return 0, 0, 0
    b0 = buf[start]
    b1 = buf[start + 1]
    if b0 & 0x70:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "reserved bits set without an extension")
    if b1 & 0x80:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "server frames must not be masked")
    opcode = b0 & 0x0F
    length = b1 & 0x7F
    if opcode >= OP_CLOSE:
        if opcode > OP_PONG:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown control opcode")
        if not b0 & 0x80 or length > _MAX_CONTROL:
            raise ProtocolError(CLOSE_PROTOCOL_ERROR, "control frames must be final and at most 125 bytes")
    elif opcode > OP_BINARY:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "unknown data opcode")
    if length < 126:
        return b0 & 0x8F, 2, length
    if length == 126:
        if end - start < 4:
            return 0, 0, 0
        return b0 & 0x8F, 4, (buf[start + 2] << 8) | buf[start + 3]
    if end - start < 10:
        return 0, 0, 0
    n = 0
    for k in range(2, 10):
        n = (n << 8) | buf[start + k]
    if n >> 63:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "payload length has its top bit set")
    return b0 & 0x8F, 10, n


class Reader:
    """Turns received bytes into whole messages and control frames, within fixed buffers.

    The caller reads from the network into `space()`, reports the count with `filled(n)`, then
    calls `next()` until it returns None. Text and binary messages arrive reassembled from their
    fragments (section 5.4); control frames arrive as they come, even between fragments. Payload
    bytes move to the message buffer as they arrive, so a frame larger than the receive buffer is
    fine as long as the message fits; a larger message is refused with 1009 instead of growing.
    """

    def __init__(self, size: int, max_message: int) -> None:
        if size < 2 + _MAX_CONTROL + 8:
            raise ValueError("receive buffer must hold a whole control frame")
        self.buf = bytearray(size)
        self.view = memoryview(self.buf)
        self.msg = bytearray(max_message)
        self.msg_view = memoryview(self.msg)
        self.start = 0
        self.end = 0
        self.msg_len = 0
        self.msg_op = 0  # opcode of the message being assembled, 0 when none
        self.remaining = 0  # payload bytes of the current data frame still to come
        self.fin = 0

    def reset(self) -> None:
        self.start = self.end = self.msg_len = self.msg_op = self.remaining = self.fin = 0

    def space(self) -> memoryview:
        """Free room at the end of the receive buffer, compacting first when that helps."""
        if self.start:
            n = self.end - self.start
            self.buf[:n] = self.view[self.start : self.end]
            self.start = 0
            self.end = n
        return self.view[self.end :]

    def filled(self, n: int) -> None:
        self.end += n

    def next(self) -> tuple[int, memoryview] | None:
        """The next complete message or control frame as (opcode, payload), or None for "read more".

        The payload view is valid until the next call. Text is not decoded here; the caller does.
        """
        while True:
            if self.remaining:
                avail = self.end - self.start
                if not avail:
                    return None
                take = avail if avail < self.remaining else self.remaining
                self.msg[self.msg_len : self.msg_len + take] = self.view[self.start : self.start + take]
                self.msg_len += take
                self.start += take
                self.remaining -= take
                if self.remaining:
                    return None
                if self.fin:
                    return self._finish()
                continue
            flags, hlen, length = parse_header(self.buf, self.start, self.end)
            if not hlen:
                return None
            opcode = flags & 0x0F
            if opcode >= OP_CLOSE:
                if self.end - self.start < hlen + length:
                    return None  # a control frame is at most 127 bytes: it always fits the buffer
                p = self.start + hlen
                self.start = p + length
                return opcode, self.view[p : p + length]
            if opcode == OP_CONT:
                if not self.msg_op:
                    raise ProtocolError(CLOSE_PROTOCOL_ERROR, "continuation frame without a message to continue")
            elif self.msg_op:
                raise ProtocolError(CLOSE_PROTOCOL_ERROR, "new message before the previous one was finished")
            else:
                self.msg_op = opcode
            if self.msg_len + length > len(self.msg):
                raise ProtocolError(CLOSE_TOO_BIG, "message larger than " + str(len(self.msg)) + " bytes")
            self.start += hlen
            self.remaining = length
            self.fin = flags & 0x80
            if not length and self.fin:
                return self._finish()

    def _finish(self) -> tuple[int, memoryview]:
        op = self.msg_op
        n = self.msg_len
        self.msg_op = self.msg_len = self.fin = 0
        return op, self.msg_view[:n]


def close_payload(buf: bytearray, code: int, reason: str) -> int:
    """Write a close frame payload (section 5.5.1) at buf[HEADER_ROOM:]; returns its length."""
    buf[HEADER_ROOM] = code >> 8
    buf[HEADER_ROOM + 1] = code & 0xFF
    raw = reason.encode()[: _MAX_CONTROL - 2]
    n = len(raw)
    buf[HEADER_ROOM + 2 : HEADER_ROOM + 2 + n] = raw
    return n + 2


def parse_close(payload: memoryview | bytes) -> tuple[int, str]:
    """(code, reason) of a received close frame; 1005 when it carries no code."""
    if len(payload) < 2:
        return CLOSE_NO_STATUS, ""
    code = (payload[0] << 8) | payload[1]
    try:
        reason = str(bytes(payload[2:]), "utf-8")
    except UnicodeError:
        reason = ""
    return code, reason
