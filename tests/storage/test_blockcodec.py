"""The block codec: blocks decode to exactly what was encoded, and rollups are the exact decimal aggregates."""

from __future__ import annotations

import math
import random
import struct
import zlib
from collections.abc import Callable
from fractions import Fraction
from itertools import accumulate

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulsewire.storage.blockcodec import (
    KIND_RAW,
    KIND_ROLLUP,
    MAGIC,
    VERSION,
    CorruptBlock,
    Rollup,
    decimal_of,
    decode_raw,
    decode_rollup,
    decode_rollup_aggregates,
    encode_raw,
    encode_rollup,
    merge_rollups,
    rescale,
    rollup_of,
    to_float,
)

# Doubles that have tripped decimal and binary conversions before, and the extremes.
AWKWARD = [-0.0, 0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308]
AWKWARD += [1 / 3, 0.1 + 0.2, float(2**53 - 1), float(2**53 + 2), 1844674407370955.2, 123456789.12345679, 1e300]
AWKWARD += [1e15, 1125899906842623.9, 0.1, 1e-22, 1.5e-20, 9.999999999999999e22, 4.35, -60.0, 21.53]

finite = st.floats(allow_nan=False, allow_infinity=False)
short_decimals = st.builds(lambda m, e: float(f"{m}e-{e}"), st.integers(-(10**7), 10**7), st.integers(0, 4))
long_decimals = st.builds(lambda m, e: float(f"{m}e-{e}"), st.integers(-(10**17), 10**17), st.integers(0, 24))
# Digit strings around 2**50, where a scaled decimal stops being the only integer near the scaled double.
near_limit = st.builds(
    lambda m, e: float(f"{m}e-{e}"), st.integers(2**49, 2**51) | st.integers(-(2**51), -(2**49)), st.integers(0, 22)
)
odd = st.one_of(long_decimals, near_limit, finite, st.sampled_from(AWKWARD))
mostly_decimals = st.one_of(short_decimals, short_decimals, short_decimals, odd)


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


@st.composite
def timestamps(draw: st.DrawFn, n: int) -> list[int]:
    if draw(st.booleans()):
        return sorted(draw(st.sets(st.integers(0, 2**53 - 1), min_size=n, max_size=n)))
    start = draw(st.integers(0, 2**40))
    deltas = draw(st.lists(st.integers(1, 2000), min_size=n - 1, max_size=n - 1))
    return list(accumulate(deltas, initial=start))


@st.composite
def raw_blocks(
    draw: st.DrawFn, values: st.SearchStrategy[float], max_size: int = 40
) -> tuple[list[int], list[float], list[bool] | None]:
    n = draw(st.integers(1, max_size))
    vs = draw(st.lists(values, min_size=n, max_size=n))
    flags = draw(st.none() | st.lists(st.booleans(), min_size=n, max_size=n))
    return draw(timestamps(n)), vs, flags


def assert_round_trip(ts: list[int], values: list[float], flags: list[bool] | None) -> bytes:
    block = encode_raw(ts, values, flags)
    ts2, values2, flags2 = decode_raw(block)
    assert ts2 == ts and bits(values2) == bits(values)
    assert all(type(v) is float for v in values2)
    assert flags2 == (flags if flags is not None and any(flags) else None)
    return block


# --- raw blocks -------------------------------------------------------------------------------------------------


@given(raw_blocks(finite))
def test_any_finite_doubles_round_trip_bit_for_bit(block: tuple[list[int], list[float], list[bool] | None]) -> None:
    assert_round_trip(*block)


@given(raw_blocks(short_decimals))
def test_short_decimals_round_trip(block: tuple[list[int], list[float], list[bool] | None]) -> None:
    assert_round_trip(*block)


@given(raw_blocks(mostly_decimals, max_size=50))
def test_decimals_with_odd_values_among_them_round_trip(
    block: tuple[list[int], list[float], list[bool] | None],
) -> None:
    assert_round_trip(*block)


@given(st.sampled_from(AWKWARD), st.integers(0, 2**53 - 1))
def test_a_single_value_block_round_trips(value: float, ts: int) -> None:
    assert_round_trip([ts], [value], None)
    assert_round_trip([ts], [value], [True])


def test_awkward_values_round_trip_among_decimals() -> None:
    rng = random.Random(5)
    for spread in (1, 8, 200):
        values = [round(20 + rng.random(), 2) for _ in range(1000)]
        for k, v in enumerate(AWKWARD):
            values[k * spread % 1000] = v
        assert_round_trip(list(range(0, 1000 * 997, 997)), values, None)
    assert_round_trip(list(range(len(AWKWARD))), AWKWARD, None)


def test_a_long_block_of_far_apart_times_and_arbitrary_doubles_round_trips() -> None:
    rng = random.Random(9)
    ts = sorted(rng.sample(range(2**53), 2000))
    block = assert_round_trip(ts, [struct.unpack("<d", rng.randbytes(8))[0] for _ in ts], None)
    assert block.startswith(MAGIC + bytes((VERSION, KIND_RAW)))


def test_nan_and_infinities_round_trip_bit_for_bit() -> None:
    payload_nan = struct.unpack("<d", b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]
    special = [math.nan, -math.nan, math.inf, -math.inf, payload_nan]
    assert_round_trip(list(range(5)), special, None)
    assert_round_trip(list(range(105)), [float(i % 7) for i in range(100)] + special, None)


def simulated_hour(seed: int) -> tuple[list[int], dict[str, list[float]]]:
    """An hour of one simulated board at 1 Hz, as the simulator rounds its readings."""
    rng = random.Random(seed)
    ts = [1_700_000_000_000 + i * 1000 + rng.randint(0, 20) for i in range(3600)]
    temperature, humidity, battery, rssi = 21.0, 45.0, 4.15, -60.0
    series: dict[str, list[float]] = {"temperature": [], "humidity": [], "battery_v": [], "rssi": []}
    for _ in ts:
        temperature += (23 - temperature) * 0.05 + rng.gauss(0, 0.05)
        humidity += (45 - humidity) * 0.05 + rng.gauss(0, 0.2)
        battery = max(3.3, battery - abs(rng.gauss(0, 0.0002)))
        rssi += (-62 - rssi) * 0.1 + rng.gauss(0, 1.5)
        series["temperature"].append(round(temperature, 2))
        series["humidity"].append(round(humidity, 1))
        series["battery_v"].append(round(battery, 3))
        series["rssi"].append(float(round(rssi)))
    return ts, series


def test_an_hour_of_a_board_round_trips_in_little_more_than_a_byte_a_value() -> None:
    ts, series = simulated_hour(1)
    sizes = {name: len(assert_round_trip(ts, values, None)) / len(ts) for name, values in series.items()}
    assert max(sizes.values()) < 1.3 and sum(sizes.values()) / len(sizes) < 1.1, sizes


def test_a_boolean_series_round_trips_with_its_flags() -> None:
    ts = list(range(0, 3_600_000, 1000))
    states = [float(i // 300 % 2) for i in range(len(ts))]
    block = assert_round_trip(ts, states, [True] * len(ts))
    assert len(block) < 200
    assert decode_raw(encode_raw(ts, states, [False] * len(ts)))[2] is None


@pytest.mark.parametrize(
    "ts, values, flags",
    [
        ([], [], None),
        ([1, 1], [1.0, 2.0], None),
        ([2, 1], [1.0, 2.0], None),
        ([1, 2], [1.0], None),
        ([1, 2], [1.0, 2.0], [True]),
        ([-1], [1.0], None),
        ([2**53], [1.0], None),
    ],
)
def test_bad_readings_are_refused(ts: list[int], values: list[float], flags: list[bool] | None) -> None:
    with pytest.raises(ValueError):
        encode_raw(ts, values, flags)


# --- decimals ---------------------------------------------------------------------------------------------------


@given(st.one_of(short_decimals, odd))
def test_decimal_of_is_the_repr_decimal_and_to_float_brings_the_double_back(v: float) -> None:
    m, e = decimal_of(v)
    assert Fraction(repr(v)) == Fraction(m) / Fraction(10) ** e
    assert (m, e) == (0, 0) if v == 0 else m % 10 != 0
    assert bits([to_float(m, e)]) == bits([v if v != 0 else 0.0])


@pytest.mark.parametrize("v", [math.nan, math.inf, -math.inf])
def test_decimal_of_refuses_what_is_not_a_number(v: float) -> None:
    with pytest.raises(ValueError):
        decimal_of(v)


@given(st.integers(-(10**40), 10**40), st.integers(-400, 400))
def test_to_float_rounds_correctly_and_saturates(m: int, e: int) -> None:
    assert bits([to_float(m, e)]) == bits([float(f"{m}e{-e}")])


def test_to_float_answers_far_outside_the_range_at_once() -> None:
    assert to_float(1, -(10**9)) == math.inf and to_float(-3, -(10**9)) == -math.inf
    assert bits([to_float(1, 10**9), to_float(-1, 10**9), to_float(0, -(10**9))]) == bits([0.0, -0.0, 0.0])
    # Integers past the double range themselves, as a sum of extreme values at a fine scale is.
    huge = 3 * 10**340
    assert (to_float(huge, 16), to_float(-huge, 16)) == (math.inf, -math.inf)
    assert bits([to_float(huge, 1000), to_float(-huge, 1000)]) == bits([0.0, -0.0])


def test_rescale_moves_to_a_finer_scale_only() -> None:
    assert rescale([1, -25, 0], 1, 3) == [100, -2500, 0] and rescale([7], 2, 2) == [7]
    with pytest.raises(ValueError):
        rescale([1], 3, 1)


# --- rollups ----------------------------------------------------------------------------------------------------


@st.composite
def readings(draw: st.DrawFn, values: st.SearchStrategy[float]) -> tuple[list[int], list[float]]:
    ts = sorted(draw(st.lists(st.integers(-(10**6), 10**7), min_size=0, max_size=50)))
    return ts, draw(st.lists(values, min_size=len(ts), max_size=len(ts)))


def reference_rollup(ts: list[int], values: list[float], width: int) -> dict[int, tuple[object, ...]]:
    """Per bucket start: count, sum, min, max, first ts and value, last ts and value, as exact fractions."""
    buckets: dict[int, list[tuple[int, Fraction]]] = {}
    for t, v in zip(ts, values, strict=True):
        buckets.setdefault(t // width * width, []).append((t, Fraction(repr(v))))
    return {
        start: (len(b), sum(d for _, d in b), min(d for _, d in b), max(d for _, d in b), *b[0], *b[-1])
        for start, b in buckets.items()
    }


def as_reference(r: Rollup) -> dict[int, tuple[object, ...]]:
    def d(m: int) -> Fraction:
        return Fraction(m, 10**r.scale)

    rows = zip(r.start, r.count, r.sum_m, r.min_m, r.max_m, r.first_ts, r.first_m, r.last_ts, r.last_m, strict=True)
    return {s: (c, d(sm), d(lo), d(hi), ft, d(fm), lt, d(lm)) for s, c, sm, lo, hi, ft, fm, lt, lm in rows}


widths = st.sampled_from([1, 7, 1000, 60_000, 3_600_000])


@settings(max_examples=200)
@given(readings(mostly_decimals), widths)
def test_a_rollup_is_the_exact_decimal_aggregate_of_its_buckets(
    data: tuple[list[int], list[float]], width: int
) -> None:
    ts, values = data
    r = rollup_of(ts, values, width)
    assert r.scale >= 0 and r.start == sorted(set(r.start))
    assert as_reference(r) == reference_rollup(ts, values, width)


def test_a_rollup_of_an_hour_at_a_minute() -> None:
    ts, series = simulated_hour(2)
    r = rollup_of(ts, series["temperature"], 60_000)
    assert r.scale == 2 and len(r.start) in (60, 61) and sum(r.count) == 3600
    assert as_reference(r) == reference_rollup(ts, series["temperature"], 60_000)


@pytest.mark.parametrize("v", [math.nan, math.inf])
def test_a_rollup_refuses_what_is_not_a_number(v: float) -> None:
    with pytest.raises(ValueError):
        rollup_of([1, 2], [1.0, v], 10)


def test_a_rollup_refuses_unsorted_readings_and_a_bad_width() -> None:
    for ts, width in (([2, 1], 10), ([1, 2], 0)):
        with pytest.raises(ValueError):
            rollup_of(ts, [1.0, 2.0], width)


@settings(max_examples=100)
@given(readings(mostly_decimals), readings(short_decimals), widths)
def test_merging_replaces_buckets_with_the_same_start_and_keeps_the_others(
    old_data: tuple[list[int], list[float]], new_data: tuple[list[int], list[float]], width: int
) -> None:
    old, new = rollup_of(*old_data, width), rollup_of(*new_data, width)
    merged = merge_rollups(old, new)
    expected = as_reference(old) | as_reference(new)
    assert merged.scale == max(old.scale, new.scale) and merged.start == sorted(expected)
    assert as_reference(merged) == expected


def test_merging_refuses_a_rollup_whose_starts_repeat() -> None:
    good = rollup_of([1, 2], [1.0, 2.0], 1)
    bad = Rollup(0, [5, 5], *([[1, 1]] * 8))
    with pytest.raises(ValueError):
        merge_rollups(good, bad)


@settings(max_examples=100)
@given(readings(st.one_of(finite, mostly_decimals)), widths)
def test_a_rollup_block_round_trips(data: tuple[list[int], list[float]], width: int) -> None:
    r = rollup_of(*data, width)
    assert decode_rollup(encode_rollup(r)) == r


def test_a_rollup_with_columns_of_different_lengths_is_refused() -> None:
    r = rollup_of([1, 2], [1.0, 2.0], 1)
    r.last_m.pop()
    with pytest.raises(ValueError):
        encode_rollup(r)


def test_a_rollup_with_huge_integers_round_trips() -> None:
    huge = [10**400, -(10**300), 2**64, -(2**64), 0]
    r = Rollup(
        7, [0, 10, 20, 30, 40], [1, 2**70, 3, 4, 5], huge, huge[::-1], huge, [0, 11, 22, 33, 44], huge, huge, huge
    )
    assert decode_rollup(encode_rollup(r)) == r


# --- damage -----------------------------------------------------------------------------------------------------


def small_blocks() -> list[bytes]:
    ts, series = simulated_hour(3)
    return [
        encode_raw(ts[:50], series["temperature"][:50], [False] * 49 + [True]),
        encode_raw(ts[:50], [1 / 3 + i for i in range(50)], None),
        encode_rollup(rollup_of(ts[:300], series["humidity"][:300], 60_000)),
    ]


def decoder(kind: int) -> Callable[[bytes], object]:
    return decode_raw if kind == KIND_RAW else decode_rollup


def test_every_truncation_and_every_flipped_byte_is_refused() -> None:
    for block in small_blocks():
        decode = decoder(block[len(MAGIC) + 1])
        for end in range(len(block)):
            with pytest.raises(CorruptBlock, match="^corrupt block: "):
                decode(block[:end])
        for at in range(len(block)):
            damaged = bytearray(block)
            damaged[at] ^= 0x5A
            with pytest.raises(ValueError, match="^corrupt block: "):
                decode(bytes(damaged))


def test_another_kind_or_version_is_refused() -> None:
    raw, _, rollup = small_blocks()
    with pytest.raises(ValueError, match="kind"):
        decode_rollup(raw)
    with pytest.raises(ValueError, match="kind"):
        decode_raw(rollup)
    body = bytearray(raw[:-4])
    body[len(MAGIC)] = VERSION + 1
    with pytest.raises(ValueError, match="version"):
        decode_raw(bytes(body) + zlib.crc32(body).to_bytes(4, "little"))


@given(st.binary(max_size=200), st.sampled_from([KIND_RAW, KIND_ROLLUP]))
def test_garbage_with_a_good_checksum_is_refused_or_read_never_crashes(body: bytes, kind: int) -> None:
    block = MAGIC + bytes((VERSION, kind)) + body
    block += zlib.crc32(block).to_bytes(4, "little")
    try:
        decoder(kind)(block)
    except CorruptBlock as exc:
        assert str(exc).startswith("corrupt block: ")


def test_the_aggregate_columns_alone_decode_as_in_the_whole_rollup() -> None:
    ts = [1_000 * i + (i % 3) for i in range(5_000)]
    r = rollup_of(ts, [round(20 + (i % 17) * 0.05, 2) for i in range(5_000)], 60_000)
    data = encode_rollup(r)
    head = decode_rollup_aggregates(data)
    assert (head.scale, head.start, head.count, head.sum_m, head.min_m, head.max_m) == (
        r.scale,
        r.start,
        r.count,
        r.sum_m,
        r.min_m,
        r.max_m,
    )
    assert head.first_ts == head.first_m == head.last_ts == head.last_m == []
    with pytest.raises(ValueError):
        merge_rollups(head, r)  # a read-only view, refused where a whole rollup is needed
    with pytest.raises(CorruptBlock):
        decode_rollup_aggregates(data[:-1] + bytes([data[-1] ^ 1]))
