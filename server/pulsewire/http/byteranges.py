"""One byte range of a `Range` header (RFC 9110 section 14.1.2), with no I/O.

Release files are fetched by boards in bounded chunks and resumed after a cut, so one range per
request is all that is served; a header with several is refused like any other that cannot be
met (416), which a board can act on, rather than ignored.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})\Z")


class RangeError(ValueError):
    """The range cannot be served: 416 with `Content-Range: bytes */<size>`."""


def byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) byte offsets, inclusive, of `header` in a file of `size` bytes; or RangeError.

    `bytes=0-99`, `bytes=100-` (to the end) and `bytes=-100` (the last 100) are taken; a last
    offset past the end is cut to the end (section 14.1.2).
    """
    found = _RANGE.match(header.strip())
    if found is None:
        raise RangeError(f"Range: {header[:60]!r} is not one range of bytes (bytes=first-last, first-, or -suffix)")
    first_text, last_text = found.groups()
    if not first_text:
        if not last_text or int(last_text) == 0:
            raise RangeError(f"Range: {header[:60]!r} asks for no bytes")
        if size == 0:
            raise RangeError("Range: the file is empty")
        return max(0, size - int(last_text)), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last < first:
        raise RangeError(f"Range: {header[:60]!r} ends before it starts")
    if first >= size:
        raise RangeError(f"Range: starts at {first}, past the end of the file ({size} bytes)")
    return first, min(last, size - 1)
