"""Everything that touches the hardware, in one thin module.

The rest of the firmware imports `machine`, `network`, `esp32`, `dht` and `ntptime` only through
here, so tests replace this one file with fakes and run the rest unmodified.
"""

import gc
import time

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

from hashlib import sha1  # noqa: F401  (re-exported: wsclient verifies the handshake with it)

import machine
import network

if TYPE_CHECKING:
    import dht


def wlan() -> network.WLAN:
    return network.WLAN(network.STA_IF)  # the port hands out the one station interface each time


def wifi_begin(ssid: str, password: str) -> None:
    w = wlan()
    w.active(True)
    if not w.isconnected():
        w.connect(ssid, password)


def wifi_status() -> int:
    """network.STAT_* of the station interface."""
    return wlan().status()


def wifi_connected() -> bool:
    return wlan().isconnected()


def wifi_rssi() -> int:
    try:
        return wlan().status("rssi")
    except (OSError, ValueError):
        return 0


def wifi_reset() -> None:
    w = wlan()
    w.disconnect()
    w.active(False)
    w.active(True)


# network.STAT_* values the Wi-Fi module reports on.
STAT_CONNECTING = network.STAT_CONNECTING
STAT_GOT_IP = network.STAT_GOT_IP
STAT_WRONG_PASSWORD = network.STAT_WRONG_PASSWORD
STAT_NO_AP_FOUND = network.STAT_NO_AP_FOUND


def tls_context(ca_path: str) -> object:
    """A TLS client context; verifies the server against the CA in `ca_path` when one is given."""
    import ssl

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca_path:
        with open(ca_path, "rb") as f:
            ctx.load_verify_locations(cadata=f.read())
        ctx.verify_mode = ssl.CERT_REQUIRED  # type: ignore[attr-defined]  # documented, missing from the stubs
    else:
        ctx.verify_mode = ssl.CERT_NONE  # type: ignore[attr-defined]
    return ctx


def watchdog(timeout_ms: int) -> machine.WDT:
    """Start the hardware watchdog: the board resets unless `feed()` is called within timeout_ms."""
    return machine.WDT(timeout=timeout_ms)


def reset() -> None:
    machine.reset()


def reset_cause() -> int:
    return machine.reset_cause()


def unique_id() -> bytes:
    return machine.unique_id()


def ticks_ms() -> int:
    # Ticks are small ints on the board; the stubs make them an opaque type, which the ring's
    # int arrays and the session's arithmetic cannot take.
    return time.ticks_ms()  # type: ignore[return-value]


def free_heap() -> int:
    return gc.mem_free()


def led(pin: int) -> machine.Pin:
    return machine.Pin(pin, machine.Pin.OUT)


def mcu_temperature() -> float:
    """The chip's own temperature sensor, in degrees C."""
    import esp32

    if hasattr(esp32, "mcu_temperature"):  # ESP32-S2/S3/C3 report degrees C directly
        return float(esp32.mcu_temperature())
    return (esp32.raw_temperature() - 32) / 1.8  # the original ESP32 reports degrees F


def adc(pin: int) -> machine.ADC:
    a = machine.ADC(machine.Pin(pin))
    a.atten(machine.ADC.ATTN_11DB)  # the full 0-3.3 V range
    return a


def dht22(pin: int) -> "dht.DHT22":
    import dht

    return dht.DHT22(machine.Pin(pin))


def i2c(sda: int, scl: int, freq: int = 100_000) -> machine.I2C:
    return machine.I2C(0, sda=machine.Pin(sda), scl=machine.Pin(scl), freq=freq)


def rtc_epoch_ms() -> int:
    """Wall-clock ms since 1970 from the RTC, or 0 when the RTC has not been set (year < 2024)."""
    t = time.time()
    if time.gmtime(0)[0] == 2000:  # ports whose epoch is 2000
        t += 946_684_800
    return t * 1000 if t > 1_704_067_200 else 0


def ntp_sync(host: str) -> bool:
    import ntptime

    ntptime.host = host
    try:
        ntptime.settime()
        return True
    except (OSError, OverflowError):
        return False
