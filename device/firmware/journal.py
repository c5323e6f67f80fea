"""Readings kept in flash while the server is out of reach, and read back into the ring after a boot.

The journal mirrors the ring's readings that are stamped and not yet acknowledged, from the moment
the link goes down. It is a few append-only segment files in FOLDER, each a header and fixed-size
records, every record with its own CRC:

    header  b"PWJ1", values per reading (1 byte), CRC-16 of the value names (2), CRC of these 7 (2)
    record  ts (int64, epoch ms), mask (uint32), one float32 per value, CRC-16 of those (2)

Flash wears by the write, not by the byte: records gather in a RAM page and go to flash a page at
a time (one `write` per page), when the page is full or when its oldest record has waited
`hold_ms`. A segment takes pages until it holds a quarter of the ring's capacity. `writes` and
`written` count the appends and their bytes.

A write cut short by a power cut leaves a segment whose last record is short or fails its CRC:
reading stops there, so the journal is readable up to the last whole record. Nothing is ever
appended to a segment from an earlier boot, so a torn tail never hides later records.

Bounded like the ring, and by it: a segment is removed once every reading in it has left the ring
(acknowledged, refused, or pushed out when the ring was full, which the ring counts in `dropped`),
so flash holds at most the ring's readings plus one segment and one page (`bound_bytes`). A
reading is stamped before it is kept: readings taken before the board first learned the time
since boot stay in RAM only (their ticks mean nothing after a reboot).

No I/O but the files: it runs the same under CPython, where the tests drive it.
"""

import os
import struct
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

FOLDER = "pulsewire-journal"  # a hyphen: no module can be imported by that name, so none is shadowed
PAGE_BYTES = const(2048)  # the RAM page records gather in before one append
SEGMENTS = const(4)  # the ring's capacity is spread over this many segments
_MAX_FILES = const(8)  # segment files kept at most (a changed `buffer` can leave more after a boot)
_HEADER = const(9)
_MAGIC = b"PWJ1"


def _table() -> array:
    t = array("H", bytes(512))
    for n in range(256):
        c = n << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t[n] = c & 0xFFFF
    return t


_CRC = _table()  # CRC-16/CCITT-FALSE, a byte at a time: 512 bytes of RAM for an 8x faster check


def crc16(buf: bytearray | bytes, start: int, end: int) -> int:
    crc = 0xFFFF
    t = _CRC
    for i in range(start, end):
        crc = ((crc << 8) & 0xFFFF) ^ t[(crc >> 8) ^ buf[i]]
    return crc


def header(width: int, names_crc: int) -> bytes:
    head = bytearray(_HEADER)
    head[0:4] = _MAGIC
    struct.pack_into("<BH", head, 4, width, names_crc)
    struct.pack_into("<H", head, 7, crc16(head, 0, 7))
    return bytes(head)


class Journal:
    def __init__(self, names: list, capacity: int, hold_ms: int, folder: str = FOLDER, page: int = PAGE_BYTES) -> None:
        self.width = len(names)
        self.rec = 14 + 4 * self.width  # bytes per record
        self.hold_ms = hold_ms
        self.folder = folder
        self.page_records = max(1, (page - _HEADER) // self.rec)
        self.seg_records = max(1, -(-capacity // SEGMENTS))
        joined = ",".join(names).encode()
        self.head = header(self.width, crc16(joined, 0, len(joined)))
        self.buf = bytearray(_HEADER + self.page_records * self.rec)  # the header, then the page
        self.buf[0:_HEADER] = self.head
        self.fill = _HEADER  # end of the records waiting in the page
        self.count = 0  # records waiting in the page
        self.since = 0  # ticks when the oldest of them was kept
        self.page_from = 0  # ring number of the page's first record
        self.upto = 0  # ring number after the last reading journaled (in the page or on flash)
        # Segment files on flash, oldest first: file number, and the ring numbers of its first
        # reading and of the one after its last.
        self.numbers = [0] * _MAX_FILES
        self.starts = [0] * _MAX_FILES
        self.ends = [0] * _MAX_FILES
        self.files = 0
        self.last = 0  # the newest file number used
        self.fresh = True  # the next write starts a new segment file
        self.in_seg = 0  # records on flash in the newest segment
        self.writes = 0  # appends to flash
        self.written = 0  # bytes appended to flash
        self.failed = 0  # appends that raised (a full filesystem), files unreadable at boot
        self.dropped = 0  # readings removed from flash unacknowledged to keep within _MAX_FILES
        self.torn = 0  # segments found at boot ending in a torn or corrupt record
        self.foreign = 0  # readings found at boot kept for other values (the sensors changed): dropped
        try:
            os.mkdir(folder)
        except OSError:
            pass  # there already

    def _path(self, number: int) -> str:
        return "%s/%08d" % (self.folder, number)

    # -- at boot ---------------------------------------------------------------------------------

    def replay(self, ring: "Ring") -> int:
        """Push the readings kept in flash into the ring, oldest first; returns how many.

        Call it once, before the first reading is taken. The ring keeps the newest of them if
        there are more than it holds (the older ones were counted when they were dropped first).
        """
        try:
            names = os.listdir(self.folder)
        except OSError:
            return 0  # no folder (a file in its way): nothing kept, and the writes will fail too
        found = []
        for name in names:
            if len(name) == 8 and name.isdigit():
                found.append(int(name))
        found.sort()
        kept_dropped = ring.dropped
        start = ring.next
        values = array("f", bytes(4 * self.width))
        for number in found:
            try:
                self._read(number, ring, values)
            except OSError:
                self.failed += 1  # unreadable: skipped, never appended to (its number is used)
            self.last = number
        pushed = ring.next - start
        ring.dropped = kept_dropped  # pushed out here: counted before the boot, not again
        self.upto = ring.next
        return pushed

    def _read(self, number: int, ring: "Ring", values: array) -> None:
        path = self._path(number)
        buf = self.buf
        view = memoryview(buf)
        rec = self.rec
        width = self.width
        start = ring.next
        with open(path, "rb") as f:
            got = f.readinto(view[0:_HEADER])
            ok = got == _HEADER and buf[0:_HEADER] == self.head
            if got == _HEADER and not ok and buf[0:4] == _MAGIC and buf[4]:
                # Kept for another set of values (the sensors changed): theirs, not these names'.
                self.foreign += (os.stat(path)[6] - _HEADER) // (14 + 4 * buf[4])
            while ok:
                n = f.readinto(view[_HEADER : _HEADER + rec])
                if not n:
                    break
                end = _HEADER + rec - 2
                if n < rec or struct.unpack_from("<H", buf, end)[0] != crc16(buf, _HEADER, end):
                    self.torn += 1  # a write cut short: nothing after it is read
                    break
                ts, mask = struct.unpack_from("<qI", buf, _HEADER)
                for k in range(width):
                    values[k] = struct.unpack_from("<f", buf, _HEADER + 12 + 4 * k)[0]
                ring.push(0, ts, values, mask)
        buf[0:_HEADER] = self.head
        if ring.next == start:
            os.remove(path)  # nothing readable in it
            return
        if self.files == _MAX_FILES:
            self._evict(ring.first)
        self.numbers[self.files] = number
        self.starts[self.files] = start
        self.ends[self.files] = ring.next
        self.files += 1

    # -- while running -----------------------------------------------------------------------------

    def track(self, ring: "Ring", offline: bool, now: int) -> None:
        """Once per sampler round: forget what left the ring; while offline, keep the new readings."""
        self.settle(ring.first)
        if offline:
            self.keep(ring, now)

    def settle(self, first: int) -> None:
        """Remove segments (and the page) whose readings all left the ring: it is past `first`."""
        while self.files and self.ends[0] <= first:
            self._remove_oldest()
        if self.count and self.upto <= first:
            self.fill = _HEADER
            self.count = 0

    def keep(self, ring: "Ring", now: int) -> None:
        """Journal the ring's stamped readings not journaled yet; write the page when it is due."""
        n = self.upto if self.upto > ring.first else ring.first
        buf = self.buf
        width = self.width
        cap = ring.capacity
        while n < ring.next:
            i = n % cap
            ts = ring.ts[i]
            if not ts:
                break  # stamped once the time is known (session.set_clock); kept then
            mask = ring.mask[i]
            if mask:
                pos = self.fill
                struct.pack_into("<qI", buf, pos, ts, mask)
                base = i * width
                for k in range(width):
                    struct.pack_into("<f", buf, pos + 12 + 4 * k, ring.values[base + k])
                end = pos + 12 + 4 * width
                struct.pack_into("<H", buf, end, crc16(buf, pos, end))
                if not self.count:
                    self.since = now
                    self.page_from = n
                self.fill = end + 2
                self.count += 1
            n += 1
            self.upto = n
            if self.count == self.page_records:
                self.write(ring.first)
                break  # a page per round at most: catching up on a full ring takes a few rounds
        if self.count and ticks_diff(now, self.since) >= self.hold_ms:
            self.write(ring.first)

    def write(self, first: int = 0) -> None:
        """Append the page to the newest segment (a new one when due); call before a planned reset."""
        if not self.count:
            return
        if self.fresh:
            if self.files == _MAX_FILES:
                self._evict(first)
            self.last += 1
            self.numbers[self.files] = self.last
            self.starts[self.files] = self.page_from
            self.files += 1
            self.in_seg = 0
        start = 0 if self.fresh else _HEADER
        try:
            with open(self._path(self.last), "wb" if self.fresh else "ab") as f:
                f.write(memoryview(self.buf)[start : self.fill])
        except OSError:
            # Part of the page may be on flash: start a new segment so that nothing is appended
            # behind a torn record. These readings stay in RAM only.
            self.failed += 1
            self.fresh = True
        else:
            self.writes += 1
            self.written += self.fill - start
            self.in_seg += self.count
            self.fresh = self.in_seg >= self.seg_records
        if self.fresh:
            self.in_seg = 0
        self.ends[self.files - 1] = self.upto
        self.fill = _HEADER
        self.count = 0

    def _evict(self, first: int) -> None:
        """Make room for a segment file: the oldest goes, its readings not yet acknowledged counted."""
        gone = self.ends[0] - (self.starts[0] if self.starts[0] > first else first)
        if gone > 0:
            self.dropped += gone
        self._remove_oldest()

    def _remove_oldest(self) -> None:
        try:
            os.remove(self._path(self.numbers[0]))
        except OSError:
            pass  # never written (its append failed)
        for k in range(1, self.files):
            self.numbers[k - 1] = self.numbers[k]
            self.starts[k - 1] = self.starts[k]
            self.ends[k - 1] = self.ends[k]
        self.files -= 1
        if not self.files:
            self.fresh = True
            self.in_seg = 0

    def bound_bytes(self, capacity: int) -> int:
        """The most the journal of a ring of `capacity` readings holds on flash."""
        records = capacity + self.seg_records + self.page_records
        return records * self.rec + (SEGMENTS + 2) * _HEADER

    def on_flash(self) -> int:
        """Bytes the journal holds on flash now."""
        total = 0
        for k in range(self.files):
            try:
                total += os.stat(self._path(self.numbers[k]))[6]
            except OSError:
                pass
        return total
