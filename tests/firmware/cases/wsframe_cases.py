"""Byte-level cases for the firmware's RFC 6455 framing (device/firmware/wsframe.py).

Plain functions with plain asserts and no pytest, so the same file runs under CPython and under
MicroPython (run_cases.py prints PASS/FAIL per case there); tests/firmware/test_framing_mpy.py
runs it on both and compares. `sealed_frames()` gives the frames the client builds, which the
CPython side parses with the websockets library.
"""

import struct

import wsframe

ROOM = wsframe.HEADER_ROOM
KEY = b"\x37\xfa\x21\x3d"  # RFC 6455 section 5.7's example key


# --- helpers -------------------------------------------------------------------------------------


def server_frame(opcode, payload, fin=True, rsv=0, mask_key=None, length_form=None):
    """A frame as a server sends it (unmasked unless mask_key); length_form forces 7, 16 or 64."""
    n = len(payload)
    form = length_form or (7 if n < 126 else 16 if n < 65536 else 64)
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if mask_key else 0
    if form == 7:
        head += bytes([mask_bit | n])
    elif form == 16:
        head += bytes([mask_bit | 126]) + struct.pack(">H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack(">Q", n)
    if mask_key:
        masked = bytearray(payload)
        for i in range(n):
            masked[i] ^= mask_key[i % 4]
        return head + mask_key + bytes(masked)
    return head + bytes(payload)


def feed(reader, data, step=None):
    """Push `data` into the reader, at most `step` bytes at a time; every event, payloads copied."""
    events = []
    i = 0
    while True:
        event = reader.next()
        if event is not None:
            events.append((event[0], bytes(event[1])))
            continue
        if i == len(data):
            return events
        space = reader.space()
        n = min(len(data) - i, len(space), step or len(data))
        assert n, "the reader has no room and returns nothing"
        space[:n] = data[i : i + n]
        reader.filled(n)
        i += n


def protocol_error(data, size=256, max_message=1024, step=None):
    """The close code of the ProtocolError the reader raises on `data` (0: none)."""
    try:
        feed(wsframe.Reader(size, max_message), data, step)
    except wsframe.ProtocolError as exc:
        return exc.code
    return 0


def sealed(payload, opcode=wsframe.OP_TEXT, key=KEY):
    buf = bytearray(ROOM + len(payload))
    buf[ROOM:] = payload
    start = wsframe.seal(buf, opcode, len(payload), key)
    return bytes(buf[start:])


def unmask(frame):
    """(first byte, payload) of a masked client frame, checking its header on the way."""
    assert frame[1] & 0x80, "client frames are masked"
    n = frame[1] & 0x7F
    pos = 2
    if n == 126:
        n = struct.unpack(">H", frame[2:4])[0]
        pos = 4
    elif n == 127:
        n = struct.unpack(">Q", frame[2:10])[0]
        pos = 10
    key = frame[pos : pos + 4]
    body = bytearray(frame[pos + 4 :])
    assert len(body) == n
    for i in range(n):
        body[i] ^= key[i % 4]
    return frame[0], bytes(body)


def sealed_frames():
    """(name, frame) for each frame shape the client builds, for an independent parser."""
    out = []
    for n in (0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000):
        payload = bytes(48 + i % 75 for i in range(n))
        out.append(("text-" + str(n), sealed(payload, wsframe.OP_TEXT, bytes([n & 0xFF, 0x5A, 0xA5, 0x01]))))
    out.append(("ping", sealed(b"", wsframe.OP_PING)))
    out.append(("pong", sealed(b"abc", wsframe.OP_PONG)))
    close = bytearray(ROOM + 32)
    n = wsframe.close_payload(close, wsframe.CLOSE_GOING_AWAY, "rebooting")
    start = wsframe.seal(close, wsframe.OP_CLOSE, n, KEY)
    out.append(("close", bytes(close[start : ROOM + n])))
    return out


# --- the client's frames -------------------------------------------------------------------------


def test_seal_matches_the_rfc_example():
    # RFC 6455 section 5.7: a single-frame masked text message containing "Hello"
    assert sealed(b"Hello") == bytes.fromhex("818537fa213d7f9f4d5158")


def test_header_lengths_at_the_7_16_and_64_bit_boundaries():
    assert [wsframe.header_length(n) for n in (0, 125, 126, 65535, 65536)] == [6, 6, 8, 8, 14]
    for n, form in ((125, 125), (126, 126), (65535, 126), (65536, 127)):
        frame = sealed(bytes(n))
        assert frame[0] == 0x81 and frame[1] == 0x80 | form
        assert len(frame) == wsframe.header_length(n) + n
        _, body = unmask(frame)
        assert body == bytes(n)


def test_seal_writes_the_header_just_before_the_payload_in_place():
    buf = bytearray(ROOM + 5)
    buf[ROOM:] = b"Hello"
    start = wsframe.seal(buf, wsframe.OP_TEXT, 5, KEY)
    assert start == ROOM - 6 and bytes(buf[start:]) == bytes.fromhex("818537fa213d7f9f4d5158")
    assert bytes(buf[:start]) == bytes(start)  # nothing written before the frame


def test_mask_is_its_own_inverse_at_every_length_and_alignment():
    for n in range(0, 12):
        for start in (0, 1, 3):
            data = bytearray(range(start + n + 2))
            before = bytes(data)
            wsframe.mask(data, start, start + n, KEY)
            assert n == 0 or data != before
            assert data[:start] == before[:start] and data[start + n :] == before[start + n :]
            wsframe.mask(data, start, start + n, KEY)
            assert data == before


def test_close_payload_carries_code_and_reason():
    buf = bytearray(ROOM + 200)
    n = wsframe.close_payload(buf, 1001, "rebooting")
    assert bytes(buf[ROOM : ROOM + n]) == b"\x03\xe9rebooting"
    n = wsframe.close_payload(buf, 1000, "x" * 300)
    assert n == 125  # a control payload is at most 125 bytes


# --- the server's frames -------------------------------------------------------------------------


def test_reader_text_message_in_one_frame():
    assert feed(wsframe.Reader(256, 1024), server_frame(1, b'{"type":"ack","seq":7}')) == [
        (1, b'{"type":"ack","seq":7}')
    ]


def test_reader_16_and_64_bit_lengths():
    payload = bytes(48 + i % 10 for i in range(300))
    assert feed(wsframe.Reader(256, 1024), server_frame(2, payload)) == [(2, payload)]
    # The 64-bit form for a short payload is legal (if wasteful): the length is what counts.
    assert feed(wsframe.Reader(256, 1024), server_frame(1, b"hi", length_form=64)) == [(1, b"hi")]
    assert feed(wsframe.Reader(256, 1024), server_frame(1, b"hi", length_form=16)) == [(1, b"hi")]
    big = bytes(70000)
    assert feed(wsframe.Reader(256, 70000), server_frame(2, big)) == [(2, big)]


def test_reader_reassembles_fragments_with_a_ping_between():
    data = (
        server_frame(1, b"Hel", fin=False)
        + server_frame(9, b"are you there")
        + server_frame(0, b"lo, ", fin=False)
        + server_frame(0, b"", fin=False)
        + server_frame(0, b"world")
    )
    assert feed(wsframe.Reader(256, 1024), data) == [(9, b"are you there"), (1, b"Hello, world")]


def test_reader_takes_frames_split_byte_by_byte():
    data = (
        server_frame(1, b"first")
        + server_frame(1, b"x" * 300)
        + server_frame(10, b"pong")
        + server_frame(2, b"sec", fin=False)
        + server_frame(0, b"ond")
        + server_frame(8, b"\x03\xe8bye")
    )
    whole = feed(wsframe.Reader(256, 1024), data)
    assert [op for op, _ in whole] == [1, 1, 10, 2, 8]
    for step in (1, 2, 3, 7, 131):
        assert feed(wsframe.Reader(256, 1024), data, step) == whole


def test_reader_takes_a_frame_larger_than_its_receive_buffer():
    payload = bytes(i % 251 for i in range(1000))
    assert feed(wsframe.Reader(140, 1024), server_frame(2, payload), step=50) == [(2, payload)]


def test_reader_can_be_reset_between_connections():
    reader = wsframe.Reader(256, 1024)
    feed(reader, server_frame(1, b"half", fin=False))
    reader.reset()
    assert feed(reader, server_frame(1, b"new")) == [(1, b"new")]


def test_reader_refuses_a_buffer_that_cannot_hold_a_control_frame():
    try:
        wsframe.Reader(100, 1024)
    except ValueError:
        return
    raise AssertionError("a 100-byte receive buffer was accepted")


# --- what the server must not send (section 5) ---------------------------------------------------


def test_masked_server_frame_is_a_protocol_error():
    assert protocol_error(server_frame(1, b"hello", mask_key=KEY)) == 1002


def test_reserved_bits_are_a_protocol_error():
    for rsv in (1, 2, 4):
        assert protocol_error(server_frame(1, b"x", rsv=rsv)) == 1002, rsv


def test_unknown_opcodes_are_protocol_errors():
    for opcode in (3, 7, 11, 15):
        assert protocol_error(server_frame(opcode, b"x")) == 1002, opcode


def test_bad_control_frames_are_protocol_errors():
    assert protocol_error(server_frame(9, b"x", fin=False)) == 1002  # fragmented
    assert protocol_error(server_frame(8, b"x" * 126)) == 1002  # over 125 bytes


def test_bad_fragment_sequences_are_protocol_errors():
    assert protocol_error(server_frame(0, b"orphan")) == 1002
    assert protocol_error(server_frame(1, b"a", fin=False) + server_frame(1, b"b")) == 1002


def test_64_bit_length_with_the_top_bit_set_is_a_protocol_error():
    data = bytes([0x82, 127]) + b"\x80" + bytes(7)
    assert protocol_error(data) == 1002


def test_oversize_message_is_refused_with_1009():
    assert protocol_error(server_frame(1, bytes(1025))) == 1009
    two = server_frame(1, bytes(600), fin=False) + server_frame(0, bytes(600))
    assert protocol_error(two) == 1009
    assert protocol_error(two, step=1) == 1009
    assert protocol_error(server_frame(1, bytes(1024))) == 0  # exactly the limit fits


# --- close frames --------------------------------------------------------------------------------


def test_parse_close_payload():
    assert wsframe.parse_close(b"\x03\xe8") == (1000, "")
    assert wsframe.parse_close(b"\x03\xf4server restart") == (1012, "server restart")
    assert wsframe.parse_close(memoryview(b"\x03\xe9bye")) == (1001, "bye")
    assert wsframe.parse_close(b"") == (1005, "")  # no status code
    assert wsframe.parse_close(b"\x03\xef\xff\xfe") == (1007, "")  # a reason that is not UTF-8
