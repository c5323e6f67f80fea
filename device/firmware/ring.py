"""A fixed-size store of readings: what was measured and not yet acknowledged by the server.

Everything is allocated once, in flat arrays. Readings are numbered from 0 for the life of the
board (`first` is the oldest kept, `next` the one the next reading gets); batches and acks talk in
these numbers, so dropping the oldest reading when full never confuses which readings an ack
frees. A reading's timestamp is its `ticks_ms()` until the board knows the wall-clock time, and
epoch milliseconds from then on (see `stamp`).
"""

from array import array


class Ring:
    def __init__(self, capacity: int, width: int) -> None:
        if capacity < 1 or not 1 <= width <= 30:
            raise ValueError("ring needs capacity >= 1 and 1..30 values per reading")
        self.capacity = capacity
        self.width = width
        self.ts = array("q", bytes(8 * capacity))
        self.stamped = bytearray(capacity)  # 1: ts is epoch ms; 0: ts is ticks_ms()
        self.mask = array("I", bytes(4 * capacity))  # bit k set: value k was read
        self.values = array("f", bytes(4 * capacity * width))
        self.first = 0
        self.next = 0
        self.dropped = 0  # readings pushed out, unsent, because the ring was full

    def __len__(self) -> int:
        return self.next - self.first

    def push(self, ts: int, stamped: int, values: array, mask: int) -> None:
        """Keep one reading; when full, the oldest is dropped and counted."""
        if self.next - self.first >= self.capacity:
            self.first += 1
            self.dropped += 1
        i = self.next % self.capacity
        self.ts[i] = ts
        self.stamped[i] = stamped
        self.mask[i] = mask
        base = i * self.width
        for k in range(self.width):
            self.values[base + k] = values[k]
        self.next += 1

    def release(self, upto: int) -> None:
        """Forget every reading numbered below `upto` (the server has them, or refused them)."""
        if upto > self.next:
            upto = self.next
        if upto > self.first:
            self.first = upto

    def slot(self, n: int) -> int:
        """Index into the arrays of reading number `n`."""
        return n % self.capacity

    def unstamped(self) -> bool:
        for n in range(self.first, self.next):
            if not self.stamped[n % self.capacity]:
                return True
        return False
