"""Query buckets folded from whole rollup blocks, kept for the next query that needs the same.

A dashboard asks for the same week again and again (every viewer, every reload); its 15-minute
buckets come from seven day-blocks of 1,440 minute buckets each, which take longer to decode and
add up than anything else in the query. Kept here, per block and bucket width, they are 96 sums
a day, joined in a fraction of a millisecond. A block is known by its series, resolution, start
and checksum (its last four bytes), so a block that compaction rewrote is never taken for its old
self. One per server (`Reads`), bounded, safe for the threads reads run on.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from pulsewire.storage.fold import Partial

# (series id, resolution code, block start, block checksum, query bucket width)
Key = tuple[int, int, int, bytes, int]

CAPACITY = 2048  # entries; each at most MAX_PARTIALS tuples of six ints (about 60 KiB)
MAX_PARTIALS = 256  # larger folds (little grouping) cost about what they would save


class FoldCache:
    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._items: OrderedDict[Key, list[Partial]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Key) -> list[Partial] | None:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
            return found

    def put(self, key: Key, partials: list[Partial]) -> None:
        if len(partials) > MAX_PARTIALS:
            return
        with self._lock:
            self._items[key] = partials
            self._items.move_to_end(key)
            while len(self._items) > self._capacity:
                self._items.popitem(last=False)
