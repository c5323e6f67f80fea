"""Blocks of the compact store as bytes: every reading of one series in a window (raw), or per-bucket aggregates (rollup).

Values are kept as the decimals devices wrote (JSON carried `21.53`, not a binary fraction), scaled to integers by one
power of ten per block. Successive readings then differ by small integers, which delta coding and deflate shrink to
about a byte each, and sums stay exact. A value whose scaled integer would not give back its exact bits (-0.0, NaN, a
digit string too long for the block's scale) is stored as its IEEE-754 bits beside the column; a block made mostly of
such values stores every value as bits. Decoding only repeats arithmetic that encoding checked, so a block decodes to
what was encoded by construction, and the CRC32 at its end catches a damaged one.

An integer column (timestamps, scaled values, rollup fields) is stored as the residuals of whichever transform packs
smallest (values less a linear trend, first or second differences), as the narrowest signed machine ints,
byte-transposed (the k-th bytes of all ints together: near-constant high bytes compress to nothing) and deflated.
Decoding a column is one or two passes of C-level iterators (map, accumulate), so a block of an hour at 1 Hz decodes
in well under a millisecond. Ints past 64 bits (rollup sums of extreme values) go as decimal text.
"""

from __future__ import annotations

import math
import sys
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain, compress, islice, repeat
from operator import add, le, lt, mul, ne, sub, truediv, xor
from typing import TypeVar

RAW_WINDOW_MS = 3_600_000
MAGIC = b"PWB"
VERSION = 1
KIND_RAW = ord("R")  # the byte after VERSION
KIND_ROLLUP = ord("U")

_T = TypeVar("_T")
_HEAD = len(MAGIC) + 2
_MAX_TS = 2**53
_MAX_SCALE = 22  # 10**22 is the largest power of ten a double holds exactly
_POW = tuple(10**k for k in range(_MAX_SCALE + 1))
_FPOW = tuple(float(p) for p in _POW)
# Under 2**50, v * 10**k rounds to the decimal of v at scale k whenever one rounds back to v (see _at_scale).
_EXACT = 2**50
_SIGNED = tuple(next(c for c in "bhilq" if array(c).itemsize == w) for w in (1, 2, 4, 8))
_BITS64 = next(c for c in "LQ" if array(c).itemsize == 8)
_BOUNDS = tuple(1 << 8 * array(c).itemsize - 1 for c in _SIGNED)  # each signed width holds [-bound, bound)
_TEXT = len(_SIGNED)
_STRATEGIES = (zlib.Z_RLE, zlib.Z_DEFAULT_STRATEGY)
_BIG_ENDIAN = sys.byteorder == "big"
_DECIMAL, _BITS = 0, 1


class CorruptBlock(ValueError):
    """Bytes that are not a block this version wrote: truncated, damaged, or of another format."""


def _corrupt(why: str) -> CorruptBlock:
    return CorruptBlock(f"corrupt block: {why}")


@dataclass(slots=True)
class Rollup:
    """One rollup block's buckets, as columns of the same length, starts strictly increasing."""

    scale: int  # every *_m column is an integer m meaning m * 10**-scale
    start: list[int]
    count: list[int]
    sum_m: list[int]
    min_m: list[int]
    max_m: list[int]
    first_ts: list[int]
    first_m: list[int]
    last_ts: list[int]
    last_m: list[int]


# --- decimals ---------------------------------------------------------------------------------------------------


def decimal_of(v: float) -> tuple[int, int]:
    """`v` as the decimal m * 10**-e its repr shows, m not divisible by 10; (0, 0) for either zero."""
    if not math.isfinite(v):
        raise ValueError(f"not a finite number: {v!r}")
    mantissa, _, exponent = repr(v).partition("e")
    whole, _, fraction = mantissa.partition(".")
    m, e = int(whole + fraction), len(fraction) - int(exponent or 0)
    if not m:
        return 0, 0
    while not m % 10:
        m, e = m // 10, e - 1
    return m, e


def to_float(m: int, e: int) -> float:
    """The double nearest m * 10**-e; +-inf past the double range."""
    if not m:
        return 0.0
    # Far outside the range, answer without building a huge power of ten.
    digits = m.bit_length() * math.log10(2)
    if digits - e < -330:
        return 0.0 if m > 0 else -0.0
    if digits - e > 330:
        return math.inf if m > 0 else -math.inf
    try:
        return m / 10**e if e >= 0 else float(m * 10**-e)
    except OverflowError:
        return math.inf if m > 0 else -math.inf


def rescale(ms: list[int], from_scale: int, to_scale: int) -> list[int]:
    """`ms` at scale `from_scale` as the same decimals at the finer `to_scale`."""
    if to_scale < from_scale:
        raise ValueError(f"cannot rescale from {from_scale} down to {to_scale} exactly")
    return list(map(mul, ms, repeat(10 ** (to_scale - from_scale))))


def _at_scale(values: Sequence[float], scale: int) -> tuple[list[int], list[int]]:
    """Each value times 10**scale, to the nearest integer, and the positions where that does not give its bits back.

    An m that gives the bits back and is under 2**50 is the value's repr decimal at this scale. When repr has at
    most `scale` decimals, its decimal is an integer here; the reals that round to the value span under a quarter
    here and the float product errs by under an eighth, so the nearest integer is that decimal. When repr has more
    decimals, no integer here rounds to the value: repr is the shortest decimal that does. Past 2**50 another
    integer may round to the value too, so those positions are reported with the failures.
    """
    fp, p = _FPOW[scale], _POW[scale]
    try:  # floor(x + 0.5) is the nearest integer wherever that is within a quarter, and quicker than round()
        ms = list(map(math.floor, map(add, map(mul, values, repeat(fp)), repeat(0.5))))
    except (ValueError, OverflowError):  # NaN or infinite values, or products
        ms = [math.floor(x + 0.5) if math.isfinite(x) else 0 for x in map(mul, values, repeat(fp))]
    back, want = array("d", map(truediv, ms, repeat(p))).tobytes(), array("d", values).tobytes()
    bad = [] if back == want else list(compress(range(len(ms)), map(ne, array(_BITS64, back), array(_BITS64, want))))
    if ms and (max(ms) >= _EXACT or min(ms) <= -_EXACT):
        bad = sorted({*bad, *(i for i, m in enumerate(ms) if not -_EXACT < m < _EXACT)})
    return ms, bad


def _scaled(values: Sequence[float]) -> tuple[int, list[int], list[int]]:
    """A scale for the block, the values as integers at it, and where those fail (see _at_scale).

    The scale is the finest that a sample of the values needs. Any finer values are rare, and cost less as
    exceptions than a finer scale would cost every value; a value too long for 2**50 does not count.
    """
    sample = [decimal_of(v) for v in values[:: max(1, len(values) // 32)] if math.isfinite(v)]
    scale = max((e for m, e in sample if 0 < e <= _MAX_SCALE and abs(m) < _EXACT), default=0)
    return scale, *_at_scale(values, scale)


def _exact_decimals(values: Sequence[float]) -> tuple[int, list[int]]:
    """The values as exact repr decimals at one scale >= 0 (ValueError on NaN or infinity)."""
    scale, ms, bad = _scaled(values)
    if not bad:
        return scale, ms
    fixed = {i: decimal_of(values[i]) for i in bad}
    finest = max(scale, *(e for _, e in fixed.values()))
    ms = rescale(ms, scale, finest)
    for i, (m, e) in fixed.items():
        ms[i] = m * 10 ** (finest - e)
    return finest, ms


# --- bytes ------------------------------------------------------------------------------------------------------


def _put_uvarint(out: bytearray, x: int) -> None:
    while x > 0x7F:
        out.append(x & 0x7F | 0x80)
        x >>= 7
    out.append(x)


def _put_svarint(out: bytearray, x: int) -> None:
    _put_uvarint(out, x << 1 if x >= 0 else (~x << 1) | 1)


@dataclass(slots=True)
class _Reader:
    data: bytes
    pos: int
    end: int

    def byte(self) -> int:
        return self.take(1)[0]

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise _corrupt("truncated")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def uvarint(self) -> int:
        x = shift = 0
        while (b := self.byte()) & 0x80:
            x |= (b & 0x7F) << shift
            shift += 7
        return x | b << shift

    def svarint(self) -> int:
        z = self.uvarint()
        return ~(z >> 1) if z & 1 else z >> 1


def _deflate(raw: bytes, strategies: Sequence[int]) -> bytes:
    # A window and buffers no larger than the input: same output, and much less to set up for small columns.
    size = max(9, min(15, len(raw).bit_length()))
    best = b""
    for strategy in strategies:
        z = zlib.compressobj(6, zlib.DEFLATED, -size, size - 6, strategy)
        packed = z.compress(raw) + z.flush()
        best = packed if not best or len(packed) < len(best) else best
    return best


def _inflate(packed: bytes, limit: int | None) -> bytes:
    z = zlib.decompressobj(-15)
    raw = z.decompress(packed) if limit is None else z.decompress(packed, limit + 1)
    if not z.eof or z.unused_data or z.unconsumed_tail:
        raise _corrupt("bad deflate stream")
    return raw


# --- integer columns --------------------------------------------------------------------------------------------
# A column is stored as residuals after one transform: _TREND the values less the line from the first value with the
# block's mean slope (timestamps on a steady clock become their jitter), _D1 first differences (random walks), _D2
# second differences. Residuals go as the narrowest signed machine ints, or as decimal text past 64 bits.

_TREND, _D1, _D2 = 0, 1, 2
_ANY = (_TREND, _D1, _D2)
_SAMPLE = 512


def _lanes(packed: array[int]) -> bytes:
    """The array's little-endian bytes, the k-th byte of every item together."""
    if _BIG_ENDIAN:
        packed.byteswap()
    raw, w = packed.tobytes(), packed.itemsize
    return b"".join(raw[k::w] for k in range(w)) if w > 1 else raw


def _unlaned(raw: bytes, typecode: str, n: int) -> array[int]:
    w = array(typecode).itemsize
    if len(raw) != n * w:
        raise _corrupt("column length")
    if w > 1:
        items = bytearray(n * w)
        for k in range(w):
            items[k::w] = raw[k * n : (k + 1) * n]
        raw = bytes(items)
    unpacked = array(typecode, raw)
    if _BIG_ENDIAN:
        unpacked.byteswap()
    return unpacked


def _residuals(xs: list[int], transform: int) -> tuple[list[int], list[int]]:
    """The seeds (and slope) the reader needs, and the residuals."""
    x0, n = xs[0], len(xs)
    if transform == _TREND:
        step = (2 * (xs[-1] - x0) + n - 1) // (2 * (n - 1)) if n > 1 else 0  # the mean slope, rounded
        return [x0, step], list(map(sub, xs, range(x0, x0 + n * step, step) if step else repeat(x0)))
    rs = list(map(sub, islice(xs, 1, None), xs))
    if transform == _D1:
        return [x0], rs
    return [x0, rs[0]], list(map(sub, islice(rs, 1, None), rs))


def _transformed(xs: list[int], transform: int) -> bytearray:
    seeds, rs = _residuals(xs, transform)
    lo, hi = min(rs, default=0), max(rs, default=0)
    code = next((k for k, bound in enumerate(_BOUNDS) if -bound <= lo and hi < bound), _TEXT)
    if code == _TEXT:
        packed = _deflate(",".join(map(str, rs)).encode(), (zlib.Z_DEFAULT_STRATEGY,))
    else:
        packed = _deflate(_lanes(array(_SIGNED[code], rs)), _STRATEGIES)
    out = bytearray((transform | code << 2,))
    for x in seeds:
        _put_svarint(out, x)
    _put_uvarint(out, len(packed))
    out += packed
    return out


def _pack_ints(out: bytearray, xs: list[int], transforms: tuple[int, ...] = _ANY) -> None:
    """Append `xs` (the reader knows how many) in whichever of `transforms` packs the smallest.

    A long column is judged on a prefix: a series keeps its character through a block, and packing every
    candidate in full would take three times as long.
    """
    usable = [t for t in transforms if t < len(xs)]
    if len(xs) > _SAMPLE and len(usable) > 1:
        sample = xs[:_SAMPLE]
        usable = [min(usable, key=lambda t: len(_transformed(sample, t)))]
    if usable:
        out += min((_transformed(xs, t) for t in usable), key=len)


def _unpack_ints(r: _Reader, n: int) -> Iterable[int]:
    """The column's ints, computed as they are iterated (its bytes are read at once)."""
    if not n:
        return []
    mode = r.byte()
    transform, code = mode & 3, mode >> 2
    if transform > _D2 or transform >= n or code > _TEXT:
        raise _corrupt("bad column header")
    x0, second = r.svarint(), r.svarint() if transform != _D1 else 0
    packed = r.take(r.uvarint())
    count = n - transform  # _TREND keeps all n
    if code == _TEXT:
        rs = list(map(int, _inflate(packed, None).split(b",")))
        if len(rs) != count:
            raise _corrupt("column length")
    else:
        rs = _unlaned(_inflate(packed, count << code), _SIGNED[code], count).tolist()
    if transform == _TREND:
        return map(add, rs, range(x0, x0 + n * second, second) if second else repeat(x0))
    return accumulate(accumulate(rs, initial=second) if transform == _D2 else rs, initial=x0)


# --- value columns ----------------------------------------------------------------------------------------------


def _xored_bits(values: Iterable[float]) -> bytes:
    """The values' bits, each XORed with the one before: shared sign, exponent and leading digits become zeros."""
    bits = array(_BITS64, array("d", values).tobytes())
    return _deflate(_lanes(array(_BITS64, map(xor, bits, chain((0,), bits)))), _STRATEGIES)


def _unxored_floats(r: _Reader, n: int) -> list[float]:
    bits = _unlaned(_inflate(r.take(r.uvarint()), n * 8), _BITS64, n)
    return array("d", array(_BITS64, accumulate(bits, xor)).tobytes()).tolist()


def _pack_values(out: bytearray, values: Sequence[float]) -> None:
    scale, ms, bad = _scaled(values)
    if len(bad) * 4 > len(values):  # not decimals
        packed = _xored_bits(values)
        out.append(_BITS)
        _put_uvarint(out, len(packed))
        out += packed
        return
    out += bytes((_DECIMAL, scale))
    for i in bad:
        ms[i] = ms[i - 1] if i else 0  # a placeholder that keeps the differences small
    _pack_ints(out, ms)
    _put_uvarint(out, len(bad))
    if bad:
        _pack_ints(out, bad, (_D1, _TREND))
        packed = _xored_bits(values[i] for i in bad)
        _put_uvarint(out, len(packed))
        out += packed


def _unpack_values(r: _Reader, n: int) -> list[float]:
    mode = r.byte()
    if mode == _BITS:
        return _unxored_floats(r, n)
    scale = r.byte()
    if mode != _DECIMAL or scale > _MAX_SCALE:
        raise _corrupt("bad value column header")
    values = list(map(truediv, _unpack_ints(r, n), repeat(_POW[scale])))
    count = r.uvarint()
    if count:
        at = list(_unpack_ints(r, count))
        if count > n or at[0] < 0 or at[-1] >= n or not all(map(lt, at, islice(at, 1, None))):
            raise _corrupt("bad exception positions")
        for i, v in zip(at, _unxored_floats(r, count), strict=True):
            values[i] = v
    return values


# --- blocks -----------------------------------------------------------------------------------------------------


def _header(kind: int) -> bytearray:
    return bytearray(MAGIC + bytes((VERSION, kind)))


def _sealed(out: bytearray) -> bytes:
    return bytes(out + zlib.crc32(out).to_bytes(4, "little"))


def _decoded(data: bytes, kind: int, read: Callable[[_Reader], _T], whole: bool = True) -> _T:
    """What `read` makes of the block's body, once its frame and checksum are whole; with `whole`,
    the body must be read to its end."""
    data = bytes(data)
    if len(data) < _HEAD + 4 or not data.startswith(MAGIC):
        raise _corrupt("not a block")
    if data[_HEAD - 2] != VERSION:
        raise _corrupt(f"format version {data[_HEAD - 2]}, this reads {VERSION}")
    if data[_HEAD - 1] != kind:
        raise _corrupt(f"kind {data[_HEAD - 1]:#x}, expected {kind:#x}")
    if zlib.crc32(memoryview(data)[:-4]) != int.from_bytes(data[-4:], "little"):
        raise _corrupt("checksum mismatch")
    r = _Reader(data, _HEAD, len(data) - 4)
    try:
        decoded = read(r)
    except CorruptBlock:
        raise
    except (ValueError, IndexError, OverflowError, zlib.error) as exc:
        raise _corrupt(str(exc)) from exc
    if whole and r.pos != r.end:
        raise _corrupt("trailing bytes")
    return decoded


def encode_raw(ts: Sequence[int], values: Sequence[float], flags: Sequence[bool] | None) -> bytes:
    """One series' readings as a raw block; `flags[i]` marks values[i] as a boolean (0.0 or 1.0)."""
    n = len(ts)
    if not n:
        raise ValueError("a raw block holds at least one reading")
    if len(values) != n or (flags is not None and len(flags) != n):
        raise ValueError("ts, values and flags differ in length")
    if not all(map(lt, ts, islice(ts, 1, None))) or ts[0] < 0 or ts[-1] >= _MAX_TS:
        raise ValueError("timestamps must be strictly increasing integers in [0, 2**53)")
    flagged = [int(f) for f in flags] if flags is not None and any(flags) else None
    out = _header(KIND_RAW)
    _put_uvarint(out, n)
    out.append(flagged is not None)
    _pack_ints(out, list(ts))
    _pack_values(out, values)
    if flagged is not None:
        _pack_ints(out, flagged)
    return _sealed(out)


def _read_raw(r: _Reader) -> tuple[list[int], list[float], list[bool] | None]:
    n, flagged = r.uvarint(), r.byte()
    if not n or flagged > 1:
        raise _corrupt("bad raw header")
    ts = list(_unpack_ints(r, n))
    values = _unpack_values(r, n)
    return ts, values, list(map(bool, _unpack_ints(r, n))) if flagged else None


def decode_raw(data: bytes) -> tuple[list[int], list[float], list[bool] | None]:
    """The ts, values (bit for bit) and flags (None when none was set) that encode_raw was given."""
    return _decoded(data, KIND_RAW, _read_raw)


# --- rollups ----------------------------------------------------------------------------------------------------

_M_COLUMNS = (2, 3, 4, 6, 8)  # the *_m columns among _columns'


def _columns(r: Rollup) -> list[list[int]]:
    return [r.start, r.count, r.sum_m, r.min_m, r.max_m, r.first_ts, r.first_m, r.last_ts, r.last_m]


def _check(r: Rollup) -> None:
    if r.scale < 0:
        raise ValueError(f"rollup scale {r.scale} is negative")
    if len({len(c) for c in _columns(r)}) > 1 or not all(map(lt, r.start, islice(r.start, 1, None))):
        raise ValueError("rollup columns differ in length or starts are not strictly increasing")


def _from_rows(scale: int, rows: Sequence[tuple[int, ...]]) -> Rollup:
    return Rollup(scale, *([list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(9)]))


def rollup_of(ts: Sequence[int], values: Sequence[float], width: int) -> Rollup:
    """Exact per-bucket aggregates of sorted readings, buckets starting at multiples of `width`."""
    if width < 1 or len(ts) != len(values) or not all(map(le, ts, islice(ts, 1, None))):
        raise ValueError("need width >= 1 and as many values as sorted timestamps")
    scale, ms = _exact_decimals(values)
    rows = []
    i = 0
    while i < len(ts):
        start = ts[i] // width * width
        j = bisect_left(ts, start + width, i)
        bucket = ms[i:j]
        rows.append((start, j - i, sum(bucket), min(bucket), max(bucket), ts[i], ms[i], ts[j - 1], ms[j - 1]))
        i = j
    return _from_rows(scale, rows)


def merge_rollups(old: Rollup, new: Rollup) -> Rollup:
    """`old` with the buckets of `new` added, a bucket of `new` replacing one of `old` with the same start."""
    _check(old)
    _check(new)
    scale = max(old.scale, new.scale)
    rows: dict[int, tuple[int, ...]] = {}
    for r in (old, new):
        columns = _columns(r)
        for k in _M_COLUMNS:
            columns[k] = rescale(columns[k], r.scale, scale)
        rows.update((row[0], row) for row in zip(*columns, strict=True))
    return _from_rows(scale, [rows[start] for start in sorted(rows)])


def encode_rollup(r: Rollup) -> bytes:
    """A rollup block; first and last timestamps go as offsets into their bucket, small whatever the gaps."""
    _check(r)
    out = _header(KIND_ROLLUP)
    _put_uvarint(out, len(r.start))
    _put_uvarint(out, r.scale)
    columns = _columns(r)
    columns[5] = list(map(sub, r.first_ts, r.start))
    columns[7] = list(map(sub, r.last_ts, r.start))
    for column in columns:
        _pack_ints(out, column)
    return _sealed(out)


def _read_rollup(r: _Reader, wanted: int = 9) -> Rollup:
    n, scale = r.uvarint(), r.uvarint()
    columns = [list(_unpack_ints(r, n)) for _ in range(wanted)]
    if wanted < 9:
        return Rollup(scale, *columns, *([] for _ in range(9 - wanted)))
    columns[5] = list(map(add, columns[5], columns[0]))
    columns[7] = list(map(add, columns[7], columns[0]))
    return Rollup(scale, *columns)


def decode_rollup(data: bytes) -> Rollup:
    """The rollup encode_rollup was given."""
    return _decoded(data, KIND_ROLLUP, _read_rollup)


def decode_rollup_aggregates(data: bytes) -> Rollup:
    """The start, count, sum, min and max columns of a rollup (what queries read), the first and last
    columns left empty: they come last in a block, so decoding stops before them. Such a Rollup is
    for reading only (merge_rollups and encode_rollup refuse it)."""
    return _decoded(data, KIND_ROLLUP, lambda r: _read_rollup(r, 5), whole=False)
