"""A fixed-size store of readings: what was measured and not yet acknowledged by the server.

Everything is allocated once, in flat arrays. Readings are numbered from 0 for the life of the
board (`first` is the oldest kept, `next` the one the next reading gets); batches and acks talk in
these numbers, so dropping the oldest reading when full never confuses which readings an ack
frees. A reading's timestamp is its `ticks_ms()` until the board knows the wall-clock time, and
epoch milliseconds from then on (session.set_clock stamps it).
"""

from array import array


class Ring:
    def __init__(self, capacity: int, width: int) -> None:
        if capacity < 1 or not 1 <= width <= 30:
            raise ValueError("ring needs capacity >= 1 and 1..30 values per reading")
        self.capacity = capacity
        self.width = width
        self.ts = array("q", bytes(8 * capacity))  # epoch ms; 0 until the time is known
        # ticks_ms() when read: kept apart because an 'i' array hands back small ints, and
        # time.ticks_diff misreads the long ints a 'q' array hands back on MicroPython.
        self.ticks = array("i", bytes(4 * capacity))
        self.mask = array("I", bytes(4 * capacity))  # bit k set: value k was read
        self.values = array("f", bytes(4 * capacity * width))
        self.first = 0
        self.next = 0
        self.dropped = 0  # readings pushed out, unsent, because the ring was full

    def __len__(self) -> int:
        return self.next - self.first

    def push(self, ticks: int, ts: int, values: array, mask: int) -> None:
        """Keep one reading taken at `ticks`, at epoch ms `ts` (0: not known yet).

        When full, the oldest reading is dropped and counted.
        """
        if self.next - self.first >= self.capacity:
            self.first += 1
            self.dropped += 1
        i = self.next % self.capacity
        self.ticks[i] = ticks
        self.ts[i] = ts
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
