"""The simulated board's hardware.py: the firmware's hardware.py, with the hardware faked.

It has exactly the public functions and constants of device/firmware/hardware.py (a test
compares them) and sits ahead of the firmware on sys.path, so the real hardware.py copied to the
board's filesystem does not shadow it. What it fakes:

- Wi-Fi: always joined, RSSI -60.
- The network: real TCP and TLS through the host (pwsim.py, bridge.mjs); sha1 from Node.
- The watchdog: the host resets the board when it is not fed in time.
- reset(): the host resets the board (run.mjs: a fresh interpreter, or exit code 3).
- Sensors: the MCU temperature is a count of readings taken (1, 2, 3, ... for the life of the
  simulation, across resets), so a test can prove each reading is stored exactly once; an ADC
  at half scale, a DHT22 and a BME280 (datasheet calibration) with fixed values. Any of them can
  be made to fail from the host (`fail_sensor`).
- No RTC and no NTP: the firmware has to take the server's clock.
"""

import asyncio
import gc
import time

import pwsim
import pwsim_host

# network.STAT_* as the ESP32 port numbers them
STAT_CONNECTING = 1001
STAT_GOT_IP = 1010
STAT_WRONG_PASSWORD = 202
STAT_NO_AP_FOUND = 201

_RSSI = -60


class _WLAN:
    def __init__(self) -> None:
        self._active = True

    def active(self, on: bool | None = None) -> bool:
        if on is not None:
            self._active = bool(on)
        return self._active

    def isconnected(self) -> bool:
        return self._active

    def connect(self, ssid: str, password: str = "") -> None:
        self._active = True

    def disconnect(self) -> None:
        pass

    def status(self, param: str | None = None) -> int:
        if param == "rssi":
            return _RSSI
        return STAT_GOT_IP if self._active else STAT_CONNECTING


_wlan = _WLAN()


def wlan() -> _WLAN:
    return _wlan


def wifi_begin(ssid: str, password: str) -> None:
    w = wlan()
    w.active(True)
    if not w.isconnected():
        w.connect(ssid, password)


def wifi_status() -> int:
    return wlan().status()


def wifi_connected() -> bool:
    return wlan().isconnected()


def wifi_rssi() -> int:
    return wlan().status("rssi")


def wifi_reset() -> None:
    w = wlan()
    w.disconnect()
    w.active(False)
    w.active(True)


class sha1:  # noqa: N801  (hashlib's name, which the real hardware.py re-exports)
    def __init__(self, data: bytes = b"") -> None:
        self._data = bytearray(data)

    def update(self, data: bytes) -> None:
        self._data.extend(data)

    def digest(self) -> bytes:
        return bytes.fromhex(pwsim_host.sha1(self._data.hex()))


def tls_context(ca_path: str) -> pwsim.TLSContext:
    """A marker the simulated asyncio.open_connection passes to Node's tls (CA checked when given)."""
    if ca_path:
        with open(ca_path) as f:
            return pwsim.TLSContext(f.read(), True)
    return pwsim.TLSContext("", False)


class _WDT:
    def __init__(self, timeout: int) -> None:
        pwsim_host.wdt_start(timeout)

    def feed(self) -> None:
        pwsim_host.wdt_feed()


def watchdog(timeout_ms: int) -> _WDT:
    return _WDT(timeout_ms)


def reset() -> None:
    pwsim_host.reset("machine.reset()")
    # The board is gone: nothing after reset() may run. Ending the calling task is as near as a
    # simulation gets to that (the host has already cut the board off from everything).
    raise asyncio.CancelledError


def reset_cause() -> int:
    return pwsim_host.reset_cause()


def unique_id() -> bytes:
    return bytes.fromhex(pwsim_host.unique_id())


def ticks_ms() -> int:
    return time.ticks_ms()


def free_heap() -> int:
    return gc.mem_free()  # the WebAssembly port grows its heap on demand: far more than an ESP32's


class _Pin:
    def __init__(self, pin: int) -> None:
        self.pin = pin
        self._value = 0

    def value(self, v: int | None = None) -> int:
        if v is not None:
            self._value = 1 if v else 0
            pwsim_host.led(self.pin, self._value)
        return self._value

    def on(self) -> None:
        self.value(1)

    def off(self) -> None:
        self.value(0)


def led(pin: int) -> _Pin:
    return _Pin(pin)


def _check(kind: str) -> None:
    if not pwsim_host.sensor_ok(kind):
        raise OSError(110)  # ETIMEDOUT: the sensor did not answer


def mcu_temperature() -> float:
    """The number of readings taken so far, this one included (see the module's docstring)."""
    v = pwsim_host.mcu_temperature()
    if v is None:
        raise OSError(110)
    return float(v)


class _ADC:
    def __init__(self, pin: int) -> None:
        self.pin = pin

    def atten(self, value: int) -> None:
        pass

    def read_uv(self) -> int:
        _check("adc")
        return 1_650_000  # half of 3.3 V

    def read_u16(self) -> int:
        _check("adc")
        return 32768

    def read(self) -> int:
        _check("adc")
        return 2048


def adc(pin: int) -> _ADC:
    return _ADC(pin)


class _DHT22:
    def __init__(self, pin: int) -> None:
        self.pin = pin

    def measure(self) -> None:
        _check("dht22")

    def temperature(self) -> float:
        return 21.5

    def humidity(self) -> float:
        return 40.0


def dht22(pin: int) -> _DHT22:
    return _DHT22(pin)


# A BME280 at 0x76: the datasheet's calibration example (BST-BME280-DS002, section 8.1), which
# reads 25.08 C and 1006.5 hPa, with typical humidity trimming (55 %).
_BME280_REGS = {
    0xD0: b"\x60",
    0x88: bytes.fromhex("706b436718fc7d8e43d6d00b270b8c00f9ff8c3cf8c67017004b"),
    0xE1: bytes.fromhex("6a01001329031e"),
    0xF3: b"\x00",
    0xF7: bytes.fromhex("655ac07eed00" + "7530"),
}


class _I2C:
    def __init__(self, sda: int, scl: int, freq: int) -> None:
        self.sda = sda
        self.scl = scl
        self.freq = freq

    def scan(self) -> list:
        return [0x76] if pwsim_host.sensor_ok("i2c") else []

    def readfrom_mem_into(self, addr: int, reg: int, buf) -> None:
        _check("i2c")
        if addr != 0x76:
            raise OSError(19)  # ENODEV: nothing answers at that address
        data = _BME280_REGS.get(reg, b"")
        for i in range(len(buf)):
            buf[i] = data[i] if i < len(data) else 0

    def writeto_mem(self, addr: int, reg: int, buf) -> None:
        _check("i2c")
        if addr != 0x76:
            raise OSError(19)


def i2c(sda: int, scl: int, freq: int = 100_000) -> _I2C:
    return _I2C(sda, scl, freq)


def rtc_epoch_ms() -> int:
    return 0  # no RTC: the firmware has to use the server's clock


def ntp_sync(host: str) -> bool:
    return False  # no NTP on the simulated network
