"""Pulsewire firmware: sample the configured sensors and stream the readings to the server.

Tasks: the sampler (one reading per interval into the ring), the link (link.py), the status LED,
and the watchdog feeder, which feeds only while the sampler keeps going, so a wedged board resets.
What they share is one state.Device, handed to each.
"""

import otaboot

# The boot layer first (otaboot.py): it may run a staged version instead of this file.
RUN_HERE = otaboot.boot(__name__)

import asyncio  # noqa: E402  (after the boot layer, which decides where modules come from)
import gc
import time
from array import array

import config
import hardware
import link
import sensors
import wifi
from journal import Journal
from ring import Ring
from session import Session
from state import Device

FW_VERSION = "0.1.0"


async def sample(dev: Device, session: Session, readers: list, width: int, journal: "Journal | None") -> None:
    ring = session.ring
    values = array("f", bytes(4 * width))
    failures = [0] * len(readers)
    reported = list(failures)
    dropped_bit = 1 << (width - 1)  # the last value is the count of readings dropped when full
    due = time.ticks_ms()
    while True:
        mask = sensors.read_all(readers, values, failures)
        if ring.dropped:
            values[width - 1] = ring.dropped
            mask |= dropped_bit
        now = hardware.ticks_ms()
        if mask & ~dropped_bit:
            ring.push(now, session.stamp(now) if session.knows_time() else 0, values, mask)
            dev.wake.set()
        if journal is not None:  # offline, readings go to flash too; acknowledged ones leave it
            journal.track(ring, dev.status != "online", now)
        for i in range(len(failures)):
            if failures[i] != reported[i]:
                print("sensors: sensor %d failed to read (%d times so far)" % (i, failures[i]))
                reported[i] = failures[i]
        dev.sampled_at = now
        dev.uptime_ms()
        due = time.ticks_add(due, dev.interval_ms)
        wait = time.ticks_diff(due, time.ticks_ms())
        if wait < 0:  # fell behind (a slow sensor, a long GC): start the schedule again from now
            due = time.ticks_ms()
            wait = 0
        await asyncio.sleep_ms(wait)


async def feed_watchdog(dev: Device, timeout_ms: int) -> None:
    wdt = hardware.watchdog(timeout_ms)
    while True:
        if time.ticks_diff(time.ticks_ms(), dev.sampled_at) < 2 * dev.interval_ms + 10000:
            wdt.feed()
        await asyncio.sleep_ms(timeout_ms // 4)


_BLINK_MS = {"online": 0, "refused": 100, "starting": 500, "wifi": 500, "connecting": 500, "offline": 500}


async def show_status(dev: Device, pin: int) -> None:
    """Solid: streaming. Slow blink: joining Wi-Fi or reaching the server. Fast blink: token refused."""
    led = hardware.led(pin)
    on = 0
    while True:
        period = _BLINK_MS.get(dev.status, 500)
        on = 1 if not period else 1 - on
        led.value(on)
        await asyncio.sleep_ms(period or 500)


async def run(cfg: dict, names: list, readers: list) -> None:
    dev = Device(FW_VERSION, cfg["interval_ms"])
    ring = Ring(cfg["buffer"], len(names))
    session = Session(ring, names, cfg["window"], cfg["batch"])
    journal = Journal(names, cfg["buffer"], cfg["journal_ms"]) if cfg["journal_ms"] else None
    if journal is not None and journal.replay(ring) + journal.torn + journal.foreign:
        print(
            "journal: %d readings read back from flash (%d torn writes; %d kept for other sensors, dropped)"
            % (len(ring), journal.torn, journal.foreign)
        )
    if cfg["watchdog_ms"]:
        asyncio.create_task(feed_watchdog(dev, cfg["watchdog_ms"]))
    if cfg["led"] >= 0:
        asyncio.create_task(show_status(dev, cfg["led"]))
    gc.collect()
    print("pulsewire %s: %d values per reading, every %d ms" % (FW_VERSION, len(names), dev.interval_ms))
    asyncio.create_task(sample(dev, session, readers, len(names), journal))
    if cfg.get("wifi"):
        await wifi.join(cfg["wifi"]["ssid"], cfg["wifi"].get("password", ""), dev)
    clock_ms = hardware.rtc_epoch_ms()
    if not clock_ms and cfg["ntp"] and hardware.ntp_sync(cfg["ntp"]):
        clock_ms = hardware.rtc_epoch_ms()
    if clock_ms:  # the board's own clock; otherwise the server's, from welcome
        session.own_clock = True
        session.set_clock(clock_ms, hardware.ticks_ms())
    await link.run(dev, cfg, session)


def main() -> None:
    try:
        cfg = config.load()
        names, readers = sensors.build(cfg["sensors"])
        names.append("dropped")
        config.check_names(names)
    except (ValueError, TypeError, OSError) as exc:
        # Back to the REPL instead of a reset loop, so the configuration can be fixed over USB.
        print("pulsewire: cannot start:", exc)
        return
    asyncio.run(run(cfg, names, readers))


if RUN_HERE:
    main()
