"""A WebSocket client (RFC 6455) on asyncio streams: the I/O shell around wsframe.

Buffers are allocated once per connection: `tx` holds outgoing data frames, `ctl` control
frames and small replies, and a wsframe.Reader holds what arrives. Frames are built in place and
masked in place, so sending a batch copies nothing.
"""

import asyncio
import binascii
import random
import time

import hardware
import wsframe

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    Stream = Any  # MicroPython's asyncio.Stream (readinto, write, drain), which the stubs lack

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
_CTL_BYTES = 14 + 256


class HandshakeError(Exception):
    """The server did not upgrade the connection; `status` is its HTTP status (0: not HTTP).

    `retry_after` is its Retry-After header ("" if none): when to try again.
    """

    def __init__(self, status: int, detail: str, retry_after: str = "") -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.retry_after = retry_after


class Closed(Exception):
    """The connection is over; `code` is the close code received (1006: none, the link broke)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _random_bytes(buf: bytearray) -> bytearray:
    # MicroPython's random is seeded from the chip's hardware RNG at boot.
    for i in range(len(buf)):
        buf[i] = random.getrandbits(8)
    return buf


class Conn:
    def __init__(self, reader: "Stream", writer: "Stream", rx: wsframe.Reader, tx: bytearray) -> None:
        self.reader = reader
        self.writer = writer
        self.rx = rx
        self.tx = tx
        self.txv = memoryview(tx)
        self.ctl = bytearray(_CTL_BYTES)
        self.ctlv = memoryview(self.ctl)
        self.key = bytearray(4)
        self.lock = asyncio.Lock()  # one writer at a time: a stream takes one drain at a time
        self.last_rx = time.ticks_ms()
        self.close_sent = False
        self.open = True
        self.close_reason = ""  # the reason of the server's close, once it closed

    async def _send(self, buf: bytearray, view: memoryview, opcode: int, length: int) -> None:
        if not self.open:
            raise Closed(1006, "connection closed")
        async with self.lock:
            start = wsframe.seal(buf, opcode, length, _random_bytes(self.key))
            self.writer.write(view[start : wsframe.HEADER_ROOM + length])
            await self.writer.drain()

    async def send_text(self, length: int) -> None:
        """Send the text payload already written at tx[HEADER_ROOM:HEADER_ROOM + length]."""
        await self._send(self.tx, self.txv, wsframe.OP_TEXT, length)

    async def send_ctl_text(self, length: int) -> None:
        """Send a short text message written at ctl[HEADER_ROOM:], apart from the batch buffer."""
        await self._send(self.ctl, self.ctlv, wsframe.OP_TEXT, length)

    async def recv(self) -> "tuple[int, memoryview]":
        """The next text or binary message as (opcode, payload view); answers pings on the way.

        Raises Closed when the server closes (after answering its close) or the link breaks,
        and wsframe.ProtocolError when the server breaks RFC 6455.
        """
        rx = self.rx
        while True:
            event = rx.next()
            if event is None:
                n = await self.reader.readinto(rx.space())
                if not n:
                    self.open = False
                    raise Closed(1006, "connection lost")
                rx.filled(n)
                self.last_rx = time.ticks_ms()
                continue
            opcode, payload = event
            if opcode == wsframe.OP_PING:
                n = len(payload)
                self.ctl[wsframe.HEADER_ROOM : wsframe.HEADER_ROOM + n] = payload
                await self._send(self.ctl, self.ctlv, wsframe.OP_PONG, n)
            elif opcode == wsframe.OP_CLOSE:
                code, reason = wsframe.parse_close(payload)
                self.close_reason = reason
                if not self.close_sent:  # section 5.5.1: answer with a close of our own
                    await self._close_frame(wsframe.CLOSE_NORMAL if code == wsframe.CLOSE_NO_STATUS else code, "")
                self.open = False
                raise Closed(code, reason)
            elif opcode != wsframe.OP_PONG:
                return opcode, payload

    async def _close_frame(self, code: int, reason: str) -> None:
        self.close_sent = True
        n = wsframe.close_payload(self.ctl, code, reason)
        try:
            await self._send(self.ctl, self.ctlv, wsframe.OP_CLOSE, n)
        except (OSError, Closed):
            pass

    async def close(self, code: int = wsframe.CLOSE_NORMAL, reason: str = "") -> None:
        """Close handshake (section 7.1.2): say close, wait briefly for the server's, then hang up."""
        if self.open and not self.close_sent:
            await self._close_frame(code, reason)
            try:
                await asyncio.wait_for_ms(self._until_closed(), 2000)
            except Exception:  # the server did not answer in time or the link broke: hang up anyway
                pass
        await self.hang_up()

    async def _until_closed(self) -> None:
        while True:
            await self.recv()

    async def hang_up(self) -> None:
        """Drop the TCP connection without a close handshake (the peer is gone or broken)."""
        self.open = False
        await _hang_up(self.writer)


async def _hang_up(writer: "Stream") -> None:
    try:
        writer.close()
        await writer.wait_closed()  # on MicroPython this is what closes the socket
    except OSError:
        pass


async def connect(
    host: str,
    port: int,
    path: str,
    secure: bool,
    authorization: str,
    subprotocol: str,
    rx: wsframe.Reader,
    tx: bytearray,
    ca: str = "",
) -> Conn:
    """Open the connection and do the opening handshake (RFC 6455 section 4.1)."""
    ctx = hardware.tls_context(ca) if secure else None
    if ctx is None:
        reader, writer = await asyncio.open_connection(host, port)
    else:
        reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=host)
    try:
        key = binascii.b2a_base64(bytes(_random_bytes(bytearray(16))))[:-1]
        default_port = 443 if secure else 80
        hostname = host if port == default_port else "%s:%d" % (host, port)
        request = (
            "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n"
            "Authorization: %s\r\nUser-Agent: pulsewire-firmware\r\n\r\n"
        ) % (path, hostname, key.decode(), subprotocol, authorization)
        writer.write(request.encode())
        await writer.drain()
        rx.reset()
        headers = await _read_response(reader, rx)
        _check_response(headers, key, subprotocol, rx)
    except BaseException:
        await _hang_up(writer)
        raise
    return Conn(reader, writer, rx, tx)


async def _read_response(reader: "Stream", rx: wsframe.Reader) -> bytes:
    """Read the response head into the receive buffer; bytes after it stay there as frames."""
    while True:
        head_end = bytes(rx.view[: rx.end]).find(b"\r\n\r\n")
        if head_end >= 0:
            rx.start = head_end + 4
            return bytes(rx.view[:head_end])
        space = rx.space()
        if not len(space):
            raise HandshakeError(0, "response headers larger than the receive buffer")
        n = await reader.readinto(space)
        if not n:
            raise HandshakeError(0, "server closed the connection during the handshake")
        rx.filled(n)


def _check_response(head: bytes, key: bytes, subprotocol: str, rx: wsframe.Reader) -> None:
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise HandshakeError(0, "not an HTTP response: %r" % lines[0][:60])
    try:
        status = int(parts[1])
    except ValueError:
        raise HandshakeError(0, "bad HTTP status line: %r" % lines[0][:60])
    fields = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    if status != 101:
        body = bytes(rx.view[rx.start : rx.end])[:200]
        raise HandshakeError(status, ("HTTP %d " % status) + _text(body), _text(fields.get(b"retry-after", b"")))
    if fields.get(b"upgrade", b"").lower() != b"websocket":
        raise HandshakeError(status, "response does not upgrade to websocket")
    expected = binascii.b2a_base64(hardware.sha1(key + _GUID).digest())[:-1]
    if fields.get(b"sec-websocket-accept") != expected:
        raise HandshakeError(status, "Sec-WebSocket-Accept does not match the key (section 4.2.2)")
    if fields.get(b"sec-websocket-protocol", b"").decode() != subprotocol:
        raise HandshakeError(status, "server did not agree to subprotocol " + subprotocol)


def _text(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeError:
        return repr(raw)
