"""Bosch BME280 (temperature, pressure, humidity) over I2C, in forced mode.

Compensation follows the datasheet (BST-BME280-DS002, section 8.1, floating point). A BMP280
(chip id 0x58) answers the same way without humidity; humidity is then left out.
"""

import time

try:
    from typing import TYPE_CHECKING
except ImportError:
    TYPE_CHECKING = False

if TYPE_CHECKING:
    import machine

try:
    from micropython import const
except ImportError:

    def const(expr: int) -> int:
        return expr


_CHIP_ID = const(0xD0)
_CALIB_A = const(0x88)  # 26 bytes: T1..T3, P1..P9, H1
_CALIB_B = const(0xE1)  # 7 bytes: H2..H6
_CTRL_HUM = const(0xF2)
_STATUS = const(0xF3)
_CTRL_MEAS = const(0xF4)
_DATA = const(0xF7)  # 8 bytes: pressure, temperature, humidity
_FORCED_X1 = const(0x25)  # temperature x1, pressure x1, forced mode


def _u16(b: bytearray, i: int) -> int:
    return b[i] | (b[i + 1] << 8)


def _s16(b: bytearray, i: int) -> int:
    v = b[i] | (b[i + 1] << 8)
    return v - 65536 if v & 0x8000 else v


def _s12(v: int) -> int:
    return v - 4096 if v & 0x800 else v


class BME280:
    def __init__(self, i2c: "machine.I2C", address: int = 0x76) -> None:
        self.i2c = i2c
        self.address = address
        self.one = bytearray(1)
        self.data = bytearray(8)
        chip = self._read(_CHIP_ID, self.one)[0]
        if chip not in (0x60, 0x58):
            raise OSError("no BME280/BMP280 at 0x%02x (chip id 0x%02x)" % (address, chip))
        self.has_humidity = chip == 0x60
        a = self._read(_CALIB_A, bytearray(26))
        self.t = (_u16(a, 0), _s16(a, 2), _s16(a, 4))
        self.p = (_u16(a, 6),) + tuple(_s16(a, 8 + 2 * k) for k in range(8))
        self.h = (0, 0, 0, 0, 0, 0)
        if self.has_humidity:
            b = self._read(_CALIB_B, bytearray(7))
            h4 = _s12((b[3] << 4) | (b[4] & 0x0F))
            h5 = _s12((b[5] << 4) | (b[4] >> 4))
            h6 = b[6] - 256 if b[6] & 0x80 else b[6]
            self.h = (a[25], _s16(b, 0), b[2], h4, h5, h6)
            self._write(_CTRL_HUM, 0x01)  # humidity x1; takes effect with the next ctrl_meas write

    def _read(self, reg: int, buf: bytearray) -> bytearray:
        self.i2c.readfrom_mem_into(self.address, reg, buf)
        return buf

    def _write(self, reg: int, value: int) -> None:
        self.one[0] = value
        self.i2c.writeto_mem(self.address, reg, self.one)

    def measure(self) -> tuple[float, float, float]:
        """(degrees C, hPa, % relative humidity); humidity is NaN on a BMP280."""
        self._write(_CTRL_MEAS, _FORCED_X1)
        for _ in range(20):  # a forced conversion at x1 takes about 8 ms
            time.sleep_ms(2)
            if not self._read(_STATUS, self.one)[0] & 0x08:
                break
        d = self._read(_DATA, self.data)
        adc_p = (d[0] << 12) | (d[1] << 4) | (d[2] >> 4)
        adc_t = (d[3] << 12) | (d[4] << 4) | (d[5] >> 4)
        adc_h = (d[6] << 8) | d[7]
        if adc_t == 0x80000:
            raise OSError("BME280 returned no temperature (measurement skipped)")
        t_fine, temperature = self.compensate_t(adc_t)
        pressure = self.compensate_p(adc_p, t_fine) / 100
        humidity = self.compensate_h(adc_h, t_fine) if self.has_humidity else float("nan")
        return temperature, pressure, humidity

    def compensate_t(self, adc_t: int) -> tuple[float, float]:
        t1, t2, t3 = self.t
        var1 = (adc_t / 16384.0 - t1 / 1024.0) * t2
        var2 = (adc_t / 131072.0 - t1 / 8192.0) * (adc_t / 131072.0 - t1 / 8192.0) * t3
        t_fine = var1 + var2
        return t_fine, t_fine / 5120.0

    def compensate_p(self, adc_p: int, t_fine: float) -> float:
        p1, p2, p3, p4, p5, p6, p7, p8, p9 = self.p
        var1 = t_fine / 2.0 - 64000.0
        var2 = var1 * var1 * p6 / 32768.0
        var2 = var2 + var1 * p5 * 2.0
        var2 = var2 / 4.0 + p4 * 65536.0
        var1 = (p3 * var1 * var1 / 524288.0 + p2 * var1) / 524288.0
        var1 = (1.0 + var1 / 32768.0) * p1
        if var1 == 0:
            raise OSError("BME280 pressure calibration is zero")
        p = 1048576.0 - adc_p
        p = (p - var2 / 4096.0) * 6250.0 / var1
        var1 = p9 * p * p / 2147483648.0
        var2 = p * p8 / 32768.0
        return p + (var1 + var2 + p7) / 16.0

    def compensate_h(self, adc_h: int, t_fine: float) -> float:
        h1, h2, h3, h4, h5, h6 = self.h
        v = t_fine - 76800.0
        v = (adc_h - (h4 * 64.0 + h5 / 16384.0 * v)) * (
            h2 / 65536.0 * (1.0 + h6 / 67108864.0 * v * (1.0 + h3 / 67108864.0 * v))
        )
        v = v * (1.0 - h1 * v / 524288.0)
        return 0.0 if v < 0 else 100.0 if v > 100 else v
