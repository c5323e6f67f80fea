"""The firmware's configuration check, sensor registry and BME280 driver, under CPython.

`hardware` is replaced by a fake, as on the simulated board: these modules only reach the
hardware through it.
"""

from __future__ import annotations

import importlib.util
import struct
import sys
import types
from array import array
from collections.abc import Iterator
from typing import Any

import pytest

from pulsewire import firmware

config = firmware.load("config")


class FakeI2C:
    """A BMP280/BME280 register map, with the calibration from Bosch's datasheet example."""

    def __init__(self, chip: int) -> None:
        calib = struct.pack(
            "<HhhHhhhhhhhh", 27504, 26435, -1000, 36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000
        )
        self.regs = {
            0xD0: bytes([chip]),
            0x88: calib + b"\x00\x4b",
            0xE1: bytes([0x6A, 0x01, 0x00, 0x13, 0x2F, 0x03, 0x1E]),
        }
        adc_p, adc_t, adc_h = 415148, 519888, 30000
        self.regs[0xF7] = bytes(
            [adc_p >> 12, (adc_p >> 4) & 0xFF, (adc_p & 0xF) << 4, adc_t >> 12, (adc_t >> 4) & 0xFF, (adc_t & 0xF) << 4]
        ) + struct.pack(">H", adc_h)
        self.regs[0xF3] = b"\x00"
        self.writes: list[tuple[int, int]] = []

    def readfrom_mem_into(self, addr: int, reg: int, buf: bytearray) -> None:
        if addr != 0x76:
            raise OSError(19, "ENODEV")
        buf[:] = self.regs[reg][: len(buf)]

    def writeto_mem(self, addr: int, reg: int, data: bytes) -> None:
        self.writes.append((reg, data[0]))


class FakeHardware(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("hardware")
        self.temperature = 40.0
        self.fail = False
        self.i2c_bus = FakeI2C(0x60)

    def mcu_temperature(self) -> float:
        if self.fail:
            raise OSError("sensor gone")
        return self.temperature

    def adc(self, pin: int) -> Any:
        return types.SimpleNamespace(read_uv=lambda: 1_650_000)

    def dht22(self, pin: int) -> Any:
        return types.SimpleNamespace(measure=lambda: None, temperature=lambda: 22.5, humidity=lambda: 61.0)

    def i2c(self, sda: int, scl: int) -> FakeI2C:
        return self.i2c_bus

    def wifi_rssi(self) -> int:
        return -61

    def free_heap(self) -> int:
        return 81234


@pytest.fixture
def fw(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, FakeHardware, Any]]:
    hardware = FakeHardware()
    monkeypatch.setitem(sys.modules, "hardware", hardware)
    mods = {}
    for name in ("bme280", "sensors"):
        spec = importlib.util.spec_from_file_location(name, firmware.folder() / f"{name}.py")
        assert spec and spec.loader
        mods[name] = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, name, mods[name])
        spec.loader.exec_module(mods[name])
    monkeypatch.setattr(mods["bme280"].time, "sleep_ms", lambda ms: None, raising=False)
    yield mods["sensors"], hardware, mods["bme280"]


def test_config_defaults_fill_in_and_url_is_parsed() -> None:
    cfg = config.check({"server": "http://10.0.0.5:8000", "token": "pwd_x"})
    assert cfg["interval_ms"] == 5000 and cfg["window"] == 8 and cfg["sensors"]
    assert config.parse_url("http://10.0.0.5:8000") == (False, "10.0.0.5", 8000, "/ws/device")
    assert config.parse_url("wss://example.org/pulse/") == (True, "example.org", 443, "/pulse/ws/device")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a JSON object"),
        ({"token": "t"}, "server: required"),
        ({"server": "ftp://x", "token": "t"}, "expected http://"),
        ({"server": "http://:80", "token": "t"}, "no host"),
        ({"server": "http://h:eighty", "token": "t"}, "bad port"),
        ({"server": "http://h", "token": ""}, "token: required"),
        ({"server": "http://h", "token": "t", "interval_ms": 10}, "interval_ms: expected an integer in 100..86400000"),
        ({"server": "http://h", "token": "t", "window": True}, "window: expected an integer"),
        ({"server": "http://h", "token": "t", "wifi": "home"}, "wifi: expected"),
        ({"server": "http://h", "token": "t", "sensors": {"type": "adc"}}, "sensors: expected a list"),
    ],
)
def test_config_mistakes_are_named(raw: Any, message: str) -> None:
    with pytest.raises(config.ConfigError, match="config: .*" + message.replace("(", r"\(").replace(".", r"\.")):
        config.check(raw)


def test_metric_names_are_checked_like_the_server_does() -> None:
    config.check_names(["temperature", "bme.humidity", "adc-34"])
    with pytest.raises(config.ConfigError, match="not a valid metric name"):
        config.check_names(["température"])
    with pytest.raises(config.ConfigError, match="two values are named 'temperature'"):
        config.check_names(["temperature", "temperature"])


def test_sensors_are_built_from_configuration(fw: Any) -> None:
    sensors, hardware, _ = fw
    names, readers = sensors.build(
        [
            {"type": "mcu_temp"},
            {"type": "adc", "pin": 34, "name": "light", "scale": 100},
            {"type": "dht22", "pin": 4, "prefix": "out_"},
            {"type": "bme280"},
            {"type": "system"},
        ]
    )
    assert names == [
        "mcu_temperature", "light", "out_temperature", "out_humidity",
        "temperature", "pressure", "humidity", "heap_free", "rssi",
    ]  # fmt: skip
    values = array("f", bytes(4 * len(names)))
    failures = [0] * len(readers)
    mask = sensors.read_all(readers, values, failures)
    assert mask == (1 << len(names)) - 1 and failures == [0] * 5
    assert values[0] == 40.0 and values[1] == pytest.approx(165.0)
    assert (values[2], values[3]) == (22.5, 61.0)
    assert (values[7], values[8]) == (81234, -61)


def test_unknown_sensor_type_lists_the_known_ones(fw: Any) -> None:
    sensors, _, _ = fw
    with pytest.raises(ValueError, match="sensor type 'lux': expected one of adc, bme280, dht22, mcu_temp, system"):
        sensors.build([{"type": "lux"}])


def test_a_failing_sensor_is_counted_and_left_out_of_this_reading_only(fw: Any) -> None:
    sensors, hardware, _ = fw
    names, readers = sensors.build([{"type": "mcu_temp"}, {"type": "system"}])
    values = array("f", bytes(4 * len(names)))
    failures = [0, 0]
    hardware.fail = True
    assert sensors.read_all(readers, values, failures) == 0b110
    assert failures == [1, 0]
    hardware.fail = False
    assert sensors.read_all(readers, values, failures) == 0b111


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_values_are_left_out(fw: Any, bad: float) -> None:
    sensors, hardware, _ = fw
    names, readers = sensors.build([{"type": "mcu_temp"}])
    hardware.temperature = bad
    values = array("f", [0.0])
    assert sensors.read_all(readers, values, [0]) == 0


def test_bme280_matches_the_datasheet_example(fw: Any) -> None:
    _, hardware, bme280 = fw
    hardware.i2c_bus = FakeI2C(0x58)  # BMP280: the datasheet's worked example, no humidity
    t, p, h = bme280.BME280(hardware.i2c_bus).measure()
    assert t == pytest.approx(25.08, abs=0.01)
    assert p == pytest.approx(1006.5327, abs=0.01)  # hPa
    assert h != h  # NaN: a BMP280 has no humidity
    assert (0xF4, 0x25) in hardware.i2c_bus.writes  # a forced measurement was started


def test_bme280_humidity_is_plausible_and_a_missing_chip_is_retried(fw: Any) -> None:
    sensors, hardware, _ = fw
    names, readers = sensors.build([{"type": "bme280", "address": 0x77}])
    values = array("f", bytes(12))
    failures = [0]
    assert sensors.read_all(readers, values, failures) == 0 and failures == [1]  # nothing at 0x77
    names, readers = sensors.build([{"type": "bme280"}])
    assert sensors.read_all(readers, values, failures) == 0b111
    assert 0 <= values[2] <= 100


@pytest.mark.parametrize("spec", [{"type": "adc"}, {"type": "dht22", "pin": "4"}, {"type": "adc", "pin": 99}])
def test_a_sensor_without_a_usable_pin_is_named(fw: Any, spec: dict[str, Any]) -> None:
    sensors, _, _ = fw
    with pytest.raises(ValueError, match=f"sensor {spec['type']}: pin: required GPIO number"):
        sensors.build([spec])
