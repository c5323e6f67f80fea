"""Admission counts, caps and token buckets, on numbers alone."""

from __future__ import annotations

from functools import partial

import pytest

from pulsewire.app.admission import (
    ADDRESS_PENDING,
    ADDRESS_RATE,
    FULL,
    Admission,
    Limits,
    TokenBucket,
    connection_cap,
    pending_cap,
)
from pulsewire.proxies import is_trusted, parse_trusted


def limits(**changes: float) -> Limits:
    values: dict[str, float] = dict(
        max_connections=100, max_pending_per_address=10, rate_per_address=1000, burst_per_address=1000
    )
    values.update(changes)
    return Limits(**values)  # type: ignore[arg-type]


def test_the_total_cap_refuses_every_address() -> None:
    admission = Admission(limits(max_connections=2))
    assert admission.admit("10.0.0.1", 0) is None
    assert admission.admit("10.0.0.2", 0) is None
    assert admission.admit("10.0.0.3", 0) == FULL
    admission.release("10.0.0.1", proven=False)
    assert admission.admit("10.0.0.3", 0) is None
    assert admission.open == 2


def test_unproven_connections_are_capped_per_address_and_proven_ones_are_not() -> None:
    admission = Admission(limits(max_pending_per_address=2))
    assert admission.admit("10.0.0.1", 0) is None
    assert admission.admit("10.0.0.1", 0) is None
    assert admission.admit("10.0.0.1", 0) == ADDRESS_PENDING
    assert admission.admit("10.0.0.2", 0) is None  # another address has its own count
    admission.prove("10.0.0.1")  # a device said hello: a place for the next handshake
    assert admission.admit("10.0.0.1", 0) is None
    assert admission.pending["10.0.0.1"] == 2 and admission.open == 4
    admission.release("10.0.0.1", proven=True)  # the device leaves: its address count is unchanged
    assert admission.pending["10.0.0.1"] == 2 and admission.open == 3
    admission.release("10.0.0.1", proven=False)
    admission.release("10.0.0.1", proven=False)
    assert "10.0.0.1" not in admission.pending  # no entry left behind for a quiet address


def test_new_connections_per_address_are_rate_limited() -> None:
    admission = Admission(limits(rate_per_address=2, burst_per_address=3, max_pending_per_address=100))
    assert [admission.admit("10.0.0.1", 0) for _ in range(4)] == [None, None, None, ADDRESS_RATE]
    assert admission.admit("10.0.0.2", 0) is None
    assert admission.admit("10.0.0.1", 0.25) == ADDRESS_RATE  # half a token so far
    assert admission.admit("10.0.0.1", 0.5) is None  # one token after 0.5 s at 2/s


def test_exempt_peers_are_capped_by_the_total_only() -> None:
    admission = Admission(
        limits(max_connections=5, max_pending_per_address=1, burst_per_address=1), exempt=lambda h: h == "10.0.0.9"
    )
    assert [admission.admit("10.0.0.9", 0) for _ in range(6)] == [None] * 5 + [FULL]
    assert admission.buckets == {}  # exempt peers get no bucket


def test_full_buckets_of_quiet_addresses_are_forgotten() -> None:
    admission = Admission(limits(rate_per_address=10, burst_per_address=10, max_pending_per_address=1000))
    for i in range(50):
        assert admission.admit(f"10.0.1.{i}", 0) is None
    assert len(admission.buckets) == 50
    admission.admit("10.0.0.1", 120)  # a sweep is due; every old bucket refilled long ago
    assert set(admission.buckets) == {"10.0.0.1"}


def test_token_bucket_says_how_long_until_the_next_token() -> None:
    bucket = TokenBucket(rate=4, burst=2, now=0)
    assert bucket.take(0) and bucket.take(0) and not bucket.take(0)
    assert bucket.wait_for_one(0) == pytest.approx(0.25)
    assert bucket.wait_for_one(0.25) == 0
    assert bucket.full(10)


@pytest.mark.parametrize(("open_files", "cap"), [(1024, 896), (20_000, 17_500), (256, 192), (65, 1)])
def test_the_connection_cap_leaves_a_reserve_of_descriptors(open_files: int, cap: int) -> None:
    assert connection_cap(open_files) == cap


@pytest.mark.parametrize(("total", "per_address"), [(896, 224), (17_500, 4375), (2, 1)])
def test_the_derived_per_address_cap_is_a_quarter_of_the_total(total: int, per_address: int) -> None:
    assert pending_cap(total) == per_address


def test_trusted_proxies_are_exempt_from_the_per_address_caps() -> None:
    exempt = partial(is_trusted, networks=parse_trusted("10.0.0.0/8, 192.168.1.7, ::1"))
    assert exempt("10.1.2.3") and exempt("192.168.1.7") and exempt("::1")
    assert not exempt("192.168.1.8") and not exempt("127.0.0.1") and not exempt("") and not exempt("not-an-ip")
