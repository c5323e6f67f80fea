"""Cases for the firmware's flash journal (device/firmware/journal.py) with the ring (ring.py).

Plain functions with plain asserts and no pytest, so the same file runs under CPython (in a
temporary working folder) and under MicroPython on the simulated board's filesystem
(run_cases.py prints PASS/FAIL per case there); tests/firmware/test_journal.py runs it on both.
A "reboot" is a new Ring and a new Journal reading the same folder, as main.py does at boot.
`figures()` gives the numbers docs/firmware.md quotes, as FIGURE lines.
"""

import os
from array import array

import journal
from journal import Journal
from ring import Ring

NAMES = ["mcu_temperature", "heap_free", "rssi", "dropped"]  # the default sensors' values
T0 = 1_767_225_600_000  # 2026-01-01, epoch ms
_folders = [0]


# --- helpers -------------------------------------------------------------------------------------


def folder():
    """A new, empty journal folder for one case."""
    _folders[0] += 1
    return "jcase" + str(_folders[0])


def take(ring, n, first_value=1, ts0=T0, stamped=True):
    """Push n readings: values (v, 1000+v, -60, 0), mask 0b111, 1 s apart."""
    values = array("f", bytes(4 * ring.width))
    for k in range(n):
        v = first_value + k
        values[0] = v
        if ring.width > 1:
            values[1] = 1000 + v
        if ring.width > 2:
            values[2] = -60
        ring.push(k, ts0 + v * 1000 if stamped else 0, values, 0b111)


def offline(ring, jr, n, first_value=1, now=0, step_ms=1000):
    """n readings taken with the link down, one sampler round each; returns the ticks after."""
    for k in range(n):
        take(ring, 1, first_value + k)
        now += step_ms
        jr.track(ring, True, now)
    return now


def reboot(path, names=NAMES, capacity=100, hold_ms=60000):
    ring = Ring(capacity, len(names))
    jr = Journal(names, capacity, hold_ms, path)
    got = jr.replay(ring)
    return ring, jr, got


def first_values(ring):
    return [int(ring.values[(n % ring.capacity) * ring.width]) for n in range(ring.first, ring.next)]


def files(path):
    return sorted(os.listdir(path))


def size(path, name):
    return os.stat(path + "/" + name)[6]


def truncate(path, name, length, fill=None):
    """Cut a file to `length` bytes, as a write cut short leaves it; `fill` pads it back out."""
    with open(path + "/" + name, "rb") as f:
        data = f.read()
    with open(path + "/" + name, "wb") as f:
        f.write(data[:length])
        if fill is not None:
            f.write(bytes([fill]) * (len(data) - length))
    return data


# --- cases ---------------------------------------------------------------------------------------


def test_readings_come_back_after_a_reboot_as_they_were():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 5000, path)
    now = offline(ring, jr, 30)
    assert jr.writes == 5 and jr.count == 0, (jr.writes, jr.count)  # a write each 5 s
    offline(ring, jr, 2, first_value=31, now=now, step_ms=0)
    assert jr.count == 2
    jr.write()  # the rest, as before a planned reset
    ring2, jr2, got = reboot(path)
    assert got == 32 and len(ring2) == 32
    for n in range(32):
        i, j = (ring.first + n) % ring.capacity, n % ring2.capacity
        assert ring2.ts[j] == ring.ts[i] and ring2.mask[j] == ring.mask[i]
        for k in range(4):
            assert ring2.values[j * 4 + k] == ring.values[i * 4 + k]
    assert jr2.torn == 0 and jr2.foreign == 0
    assert now == 30000


def test_only_what_waited_hold_ms_or_filled_a_page_is_on_flash():
    path = folder()
    ring = Ring(500, 4)
    jr = Journal(NAMES, 500, 60000, path)
    now = offline(ring, jr, 60)
    assert jr.writes == 0 and files(path) == []  # the first waited 59 s, under a page: RAM only
    now = offline(ring, jr, 1, first_value=61, now=now)
    assert jr.writes == 1 and jr.count == 0
    per_page = jr.page_records
    offline(ring, jr, per_page, first_value=62, now=now, step_ms=0)  # no time passes: the page fills
    assert jr.writes == 2 and jr.count == 0
    assert jr.written == (61 + per_page) * jr.rec + 9 * len(files(path)) and len(files(path)) == 1


def test_a_write_cut_short_at_every_byte_keeps_every_whole_record_before_it():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 0, path)
    offline(ring, jr, 5)  # hold_ms 0: each reading written alone
    (name,) = files(path)
    whole = size(path, name)
    assert whole == 9 + 5 * jr.rec and jr.writes == 5
    for fill in (None, 0xFF, 0x00):  # cut short; or the rest erased (0xFF) or zeroed
        for cut in range(whole):
            data = truncate(path, name, cut, fill)
            ring2, jr2, got = reboot(path)
            expect = max(0, (cut - 9) // jr.rec)
            assert got == expect, (fill, cut, got, expect)
            assert first_values(ring2) == list(range(1, expect + 1))
            if fill is None:
                assert jr2.torn == (1 if cut >= 9 and (cut - 9) % jr.rec else 0), (cut, jr2.torn)
            else:
                assert jr2.torn == (1 if cut >= 9 else 0), (fill, cut, jr2.torn)
            if not expect:
                assert files(path) == [], (fill, cut)  # nothing readable: removed
            with open(path + "/" + name, "wb") as f:
                f.write(data)


def test_after_a_torn_write_new_readings_go_to_a_new_segment():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 0, path)
    offline(ring, jr, 4)
    (name,) = files(path)
    truncate(path, name, 9 + 3 * jr.rec + 5)  # the fourth record torn
    ring2, jr2, got = reboot(path, hold_ms=0)
    assert got == 3 and jr2.torn == 1
    offline(ring2, jr2, 2, first_value=10)  # still offline after the boot
    assert len(files(path)) == 2  # never appended behind the torn record
    ring3, jr3, got = reboot(path)
    assert first_values(ring3) == [1, 2, 3, 10, 11] and jr3.torn == 1


def test_acknowledged_readings_leave_flash_and_the_page():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 10000, path)
    offline(ring, jr, 25)  # written at 11 s and 22 s, 3 waiting in the page
    assert jr.writes == 2 and jr.count == 3 and jr.on_flash() == 9 + 22 * jr.rec
    ring.release(15)  # the server acked the first 15 (back online: track without keep)
    jr.track(ring, False, 26000)
    assert files(path) != [] and jr.count == 3  # the segment still holds readings 16..22
    ring.release(ring.next)
    jr.track(ring, False, 27000)
    assert files(path) == [] and jr.count == 0 and jr.on_flash() == 0
    offline(ring, jr, 12, first_value=26, now=27000)  # offline again: a new segment
    ring2, jr2, got = reboot(path)
    assert first_values(ring2) == list(range(26, 37))  # the 37th waited under 10 s


def test_the_journal_is_bounded_by_the_ring_and_the_oldest_go_first():
    path = folder()
    capacity = 40
    ring = Ring(capacity, 4)
    jr = Journal(NAMES, capacity, 3000, path)
    bound = jr.bound_bytes(capacity)
    most = 0
    now = 0
    for k in range(10 * capacity):
        now = offline(ring, jr, 1, first_value=1 + k, now=now)
        most = max(most, jr.on_flash())
    assert most <= bound, (most, bound)
    assert ring.dropped == 9 * capacity  # the ring counts what it pushed out, as always
    assert len(files(path)) <= journal.SEGMENTS + 2
    jr.write()
    ring2, jr2, got = reboot(path, capacity=capacity)
    newest = list(range(9 * capacity + 1, 10 * capacity + 1))
    assert first_values(ring2) == newest and ring2.dropped == 0  # not counted twice


def test_segments_beyond_the_file_bound_are_dropped_oldest_first_and_counted():
    path = folder()
    big = Ring(1000, 4)
    jr = Journal(NAMES, 8, 1, path, page=9 + 2 * (14 + 16))  # 2 readings a segment, 2 a page
    for k in range(40):
        take(big, 1, 1 + k)
        jr.keep(big, k)  # the ring keeps all 40: only the journal's own bound can drop
    assert len(files(path)) == 8 and jr.dropped == 40 - 16
    ring2, jr2, got = reboot(path, capacity=1000)
    assert first_values(ring2) == list(range(25, 41))


def test_readings_not_yet_stamped_wait_in_ram_until_the_clock_is_known():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 1, path)
    take(ring, 5, stamped=False)
    jr.track(ring, True, 10)
    jr.track(ring, True, 20)
    assert jr.count == 0 and files(path) == []  # a reboot now loses them: their ticks mean nothing after it
    for n in range(ring.first, ring.next):  # the welcome arrives: session.set_clock stamps them
        ring.ts[n % ring.capacity] = T0 + n
    jr.track(ring, True, 30)
    jr.track(ring, True, 40)
    ring2, jr2, got = reboot(path)
    assert got == 5 and [ring2.ts[n] for n in range(5)] == [T0 + n for n in range(5)]


def test_readings_kept_for_other_sensors_are_dropped_and_counted():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 0, path)
    offline(ring, jr, 7)
    others = ["temperature", "humidity", "dropped"]
    ring2, jr2, got = reboot(path, names=others)
    assert got == 0 and jr2.foreign == 7 and files(path) == []


def test_empty_readings_take_no_room():
    path = folder()
    ring = Ring(100, 4)
    jr = Journal(NAMES, 100, 1, path)
    values = array("f", bytes(16))
    ring.push(0, T0, values, 0)  # every sensor failed: nothing to keep
    take(ring, 1)
    jr.track(ring, True, 5)
    jr.track(ring, True, 6)
    assert jr.written == 9 + jr.rec and jr.writes == 1


# --- figures -------------------------------------------------------------------------------------


def figures():
    """(name, value) pairs: flash bytes an hour at 1 reading/s offline, RAM the journal holds."""
    out = []
    for interval_ms, label in ((1000, "1s"), (5000, "5s")):
        path = folder()
        ring = Ring(256, 4)
        jr = Journal(NAMES, 256, 60000, path)
        now = 0
        for k in range(3600000 // interval_ms):
            now = offline(ring, jr, 1, first_value=1 + k, now=now, step_ms=interval_ms)
        out.append(("bytes_per_hour_" + label, jr.written))
        out.append(("writes_per_hour_" + label, jr.writes))
        out.append(("on_flash_" + label, jr.on_flash()))
    try:
        import gc

        gc.collect()
        before = gc.mem_alloc()  # type: ignore[attr-defined]
        jr = Journal(NAMES, 256, 60000, folder())
        gc.collect()
        out.append(("heap_journal", gc.mem_alloc() - before))  # type: ignore[attr-defined]
        ring = Ring(256, 4)
        take(ring, 30)
        jr.keep(ring, 0)  # warm up: the first call allocates what every call reuses
        take(ring, 30, first_value=31)
        gc.collect()
        before = gc.mem_alloc()  # type: ignore[attr-defined]
        gc.disable()
        jr.keep(ring, 0)  # 30 readings into the page (60 of its 67), no write
        used = gc.mem_alloc() - before  # type: ignore[attr-defined]
        gc.enable()
        out.append(("heap_per_reading", used // 30))
    except AttributeError:
        pass  # CPython: gc.mem_alloc is MicroPython's
    return out
