"""Which resolution answers which part of a bucketed query. Pure.

A bucket of a query whose width is a multiple of a rollup's bucket is made of whole rollup
buckets, because both are aligned to the epoch. So the aligned middle of a range is read from the
coarsest such rollup, what is left at either edge from the next finer one, and the last partial
minutes from raw readings: every bucket exact, read from as few stored buckets as can give it.

Each resolution is kept only from its floor on (retention: `floors`). Older than the raw floor,
edges that would need raw readings are answered from the finest rollup still kept, in whole
rollup buckets (each counted in the query bucket holding its start): such an answer is marked
not exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pulsewire.storage.layout import HOUR, MINUTE, RAW, Resolution

COARSEST_FIRST = (HOUR, MINUTE, RAW)


@dataclass(frozen=True, slots=True)
class Segment:
    res: Resolution
    lo: int  # inclusive
    hi: int  # inclusive
    exact: bool = True


def plan(lo: int, hi: int, width: int, floors: Mapping[Resolution, int]) -> list[Segment]:
    """Segments covering [lo, hi] for buckets of `width` ms, in time order.

    `floors[r]`: the oldest ts resolution r still holds (0: kept for ever)."""
    out: list[Segment] = []
    edges = sorted({f for f in floors.values() if lo < f <= hi})
    for zone_lo, zone_hi in zip([lo, *edges], [e - 1 for e in edges] + [hi], strict=True):
        kept = tuple(r for r in COARSEST_FIRST if floors[r] <= zone_lo)
        _cover(zone_lo, zone_hi, width, kept, out)
    return sorted(out, key=lambda s: s.lo)


def _cover(lo: int, hi: int, width: int, kept: tuple[Resolution, ...], out: list[Segment]) -> None:
    if lo > hi or not kept:
        return  # nothing is kept this far back
    for i, r in enumerate(kept):
        if r is RAW or width % r.bucket_ms:
            continue
        a = -(-lo // r.bucket_ms) * r.bucket_ms
        b = (hi + 1) // r.bucket_ms * r.bucket_ms - 1
        if a <= b:
            out.append(Segment(r, a, b))
            finer = kept[i + 1 :]
            for x, y in ((lo, a - 1), (b + 1, hi)):
                if x > y:
                    continue
                if finer:
                    _cover(x, y, width, finer, out)
                else:
                    out.append(Segment(r, x, y, exact=False))
            return
    if RAW in kept:
        out.append(Segment(RAW, lo, hi))
        return
    out.append(Segment(kept[-1], lo, hi, exact=False))


def floors_for(cutoffs: Mapping[Resolution, int | None]) -> dict[Resolution, int]:
    """Each resolution's floor from its retention cutoff (None: kept for ever).

    Retention removes whole blocks only once their window has passed the cutoff, so what a
    resolution surely still holds starts at the window holding the cutoff."""
    return {r: 0 if cut is None else max(0, r.window_of(cut)) for r, cut in cutoffs.items()}
