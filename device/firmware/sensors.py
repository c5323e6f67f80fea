"""Sensors chosen by configuration, read into one row of floats.

Each kind is a function that takes its configuration entry and returns the names of the values
it gives and a `read(values, offset)` function. `read` writes its values at values[offset:] and
returns a bit mask of the ones it got (bit 0 is the first name); it raises OSError when the
sensor does not answer. To add a kind, write one such function and add it to KINDS.
"""

from array import array

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

import hardware

if TYPE_CHECKING:
    from typing import Callable

    import bme280 as driver

    Read = Callable[[array, int], int]


def _pin(spec: dict) -> int:
    pin = spec.get("pin")
    if not isinstance(pin, int) or isinstance(pin, bool) or not 0 <= pin <= 48:
        raise ValueError("sensor %s: pin: required GPIO number, got %r" % (spec.get("type"), pin))
    return pin


def mcu_temp(spec: dict) -> "tuple[list[str], Read]":
    def read(values: array, offset: int) -> int:
        values[offset] = hardware.mcu_temperature()
        return 1

    return [spec.get("name", "mcu_temperature")], read


def adc(spec: dict) -> "tuple[list[str], Read]":
    pin = _pin(spec)
    scale = float(spec.get("scale", 1.0))
    offset_v = float(spec.get("offset", 0.0))
    a = hardware.adc(pin)

    def read(values: array, offset: int) -> int:
        values[offset] = a.read_uv() / 1_000_000 * scale + offset_v  # volts, then the user's scale
        return 1

    return [spec.get("name", "adc%d" % pin)], read


def dht22(spec: dict) -> "tuple[list[str], Read]":
    d = hardware.dht22(_pin(spec))
    prefix = spec.get("prefix", "")

    def read(values: array, offset: int) -> int:
        d.measure()  # OSError when the sensor does not answer in time
        values[offset] = d.temperature()
        values[offset + 1] = d.humidity()
        return 0b11

    return [prefix + "temperature", prefix + "humidity"], read


def bme280(spec: dict) -> "tuple[list[str], Read]":
    import bme280

    bus = hardware.i2c(spec.get("sda", 21), spec.get("scl", 22))
    address = spec.get("address", 0x76)
    prefix = spec.get("prefix", "")
    chip: "list[driver.BME280 | None]" = [None]  # found on first good read: a late sensor still starts

    def read(values: array, offset: int) -> int:
        sensor = chip[0]
        if sensor is None:
            sensor = chip[0] = bme280.BME280(bus, address)
        t, p, h = sensor.measure()
        values[offset] = t
        values[offset + 1] = p
        values[offset + 2] = h
        return 0b111 if h == h else 0b011  # NaN humidity: a BMP280

    return [prefix + "temperature", prefix + "pressure", prefix + "humidity"], read


def system(spec: dict) -> "tuple[list[str], Read]":
    """The board's own vitals: free heap and Wi-Fi signal."""

    def read(values: array, offset: int) -> int:
        values[offset] = hardware.free_heap()
        rssi = hardware.wifi_rssi()
        if rssi:
            values[offset + 1] = rssi
            return 0b11
        return 0b01

    return ["heap_free", "rssi"], read


KINDS = {"mcu_temp": mcu_temp, "adc": adc, "dht22": dht22, "bme280": bme280, "system": system}


def build(specs: list) -> "tuple[list[str], list[tuple[int, Read]]]":
    """(value names, [(offset, read), ...]) for the configured sensors, in order."""
    names: "list[str]" = []
    readers: "list[tuple[int, Read]]" = []
    for spec in specs:
        make = KINDS.get(spec.get("type"))
        if make is None:
            raise ValueError("sensor type %r: expected one of %s" % (spec.get("type"), ", ".join(sorted(KINDS))))
        got, read = make(spec)
        readers.append((len(names), read))
        names.extend(got)
    return names, readers


def read_all(readers: "list[tuple[int, Read]]", values: array, failures: "list[int]") -> int:
    """Read every sensor into `values`; returns the mask of values read and finite.

    A sensor that fails is counted in failures[i] and left out of this reading only; the next
    reading tries it again.
    """
    mask = 0
    for i in range(len(readers)):
        offset, read = readers[i]
        try:
            got = read(values, offset)
        except (OSError, ValueError, RuntimeError):
            failures[i] += 1
            continue
        k = 0
        while got >> k:
            if got >> k & 1:
                v = values[offset + k]
                if v - v == 0.0:  # finite: NaN and infinities give NaN here
                    mask |= 1 << (offset + k)
            k += 1
    return mask
