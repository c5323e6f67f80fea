// format.js: units by metric name, digits by magnitude, times as people read them.
// Every call passes the locale "en-US" so the expected text does not depend on the machine.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  formatAgo,
  formatCount,
  formatDuration,
  formatFixed,
  formatNumber,
  formatValue,
  unitFor,
  withUnit,
} from "../../../dashboard/js/format.js";

const L = "en-US";
const DASH = "\u2013"; // what a missing or non-finite value shows

test("unitFor: a name known whole", () => {
  assert.equal(unitFor("temperature"), "°C");
  assert.equal(unitFor("temp"), "°C");
  assert.equal(unitFor("humidity"), "%");
  assert.equal(unitFor("pressure"), "hPa");
  assert.equal(unitFor("rssi"), "dBm");
  assert.equal(unitFor("heap_free"), "B");
  assert.equal(unitFor("voltage"), "V");
  assert.equal(unitFor("battery"), "%");
  assert.equal(unitFor("co2"), "ppm");
  assert.equal(unitFor("lux"), "lx");
  assert.equal(unitFor("light"), "lx");
  assert.equal(unitFor("uptime"), "s");
  assert.equal(unitFor("dropped"), "readings");
});

test("unitFor: matching ignores case", () => {
  assert.equal(unitFor("Temperature"), "°C");
  assert.equal(unitFor("RSSI"), "dBm");
  assert.equal(unitFor("Battery_V"), "V");
});

test("unitFor: a name matched by its last word, whatever the separator", () => {
  assert.equal(unitFor("mcu_temperature"), "°C");
  assert.equal(unitFor("greenhouse.humidity"), "%");
  assert.equal(unitFor("outdoor-pressure"), "hPa");
  assert.equal(unitFor("wifi_rssi"), "dBm");
  assert.equal(unitFor("mcu_temp"), "°C");
  assert.equal(unitFor("board.uptime"), "s");
});

test("unitFor: a suffix names the unit outright", () => {
  assert.equal(unitFor("battery_v"), "V");
  assert.equal(unitFor("supply_mv"), "mV");
  assert.equal(unitFor("motor_a"), "A");
  assert.equal(unitFor("led_ma"), "mA");
  assert.equal(unitFor("heater_w"), "W");
  assert.equal(unitFor("water_c"), "°C");
  assert.equal(unitFor("oven_f"), "°F");
  assert.equal(unitFor("battery_pct"), "%");
  assert.equal(unitFor("soil.percent"), "%");
  assert.equal(unitFor("air_hpa"), "hPa");
  assert.equal(unitFor("duct_pa"), "Pa");
  assert.equal(unitFor("room-ppm"), "ppm");
  assert.equal(unitFor("desk_lx"), "lx");
  assert.equal(unitFor("link_dbm"), "dBm");
  assert.equal(unitFor("uptime_s"), "s");
  assert.equal(unitFor("loop_ms"), "ms");
  assert.equal(unitFor("stack_b"), "B");
  assert.equal(unitFor("psram_bytes"), "B");
});

test("unitFor: a suffix wins over a name known whole in the same place", () => {
  // "battery" alone is a percentage; "battery_v" is volts.
  assert.equal(unitFor("battery"), "%");
  assert.equal(unitFor("battery_v"), "V");
});

test("unitFor: a bare suffix is not a unit, and unknown names have none", () => {
  assert.equal(unitFor("v"), "");
  assert.equal(unitFor("ms"), "");
  assert.equal(unitFor("unknown"), "");
  assert.equal(unitFor("adc34"), "");
  assert.equal(unitFor("foo_bar"), "");
  assert.equal(unitFor("temperature_x"), "");
});

test("formatNumber: digits by magnitude (3 below 10, 2 below 100, 1 below 1000, else 0)", () => {
  assert.equal(formatNumber(1.23456, L), "1.235");
  assert.equal(formatNumber(9.9994, L), "9.999");
  assert.equal(formatNumber(12.3456, L), "12.35");
  assert.equal(formatNumber(99.994, L), "99.99");
  assert.equal(formatNumber(123.456, L), "123.5");
  assert.equal(formatNumber(999.94, L), "999.9");
  assert.equal(formatNumber(1234.567, L), "1,235");
  assert.equal(formatNumber(1234567.8, L), "1,234,568");
});

test("formatNumber: trailing zeros are not shown", () => {
  assert.equal(formatNumber(0, L), "0");
  assert.equal(formatNumber(2.5, L), "2.5");
  assert.equal(formatNumber(10, L), "10");
  assert.equal(formatNumber(21.5, L), "21.5");
});

test("formatNumber: negative values use the digits of their magnitude", () => {
  assert.equal(formatNumber(-5.5, L), "-5.5");
  assert.equal(formatNumber(-67.126, L), "-67.13");
  assert.equal(formatNumber(-1234.4, L), "-1,234");
});

test("formatNumber: rounding up across a magnitude boundary", () => {
  assert.equal(formatNumber(9.9996, L), "10");
  assert.equal(formatNumber(999.96, L), "1,000");
});

test("formatNumber: booleans as on/off", () => {
  assert.equal(formatNumber(true, L), "on");
  assert.equal(formatNumber(false, L), "off");
});

test("formatNumber: non-finite and non-numbers as a dash", () => {
  for (const value of [NaN, Infinity, -Infinity, null, undefined, "12", {}, []]) {
    assert.equal(formatNumber(value, L), DASH, `formatNumber(${String(value)})`);
  }
});

test("formatNumber: the locale decides separators", () => {
  assert.equal(formatNumber(1234.5, "de-DE"), "1.235");
  assert.equal(formatNumber(12.5, "de-DE"), "12,5");
});

test("formatValue: number and unit separated by a space", () => {
  assert.equal(formatValue("mcu_temperature", 21.5, L), "21.5 °C");
  assert.equal(formatValue("humidity", 40.25, L), "40.25 %");
  assert.equal(formatValue("battery_v", 3.7, L), "3.7 V");
  assert.equal(formatValue("rssi", -67, L), "-67 dBm");
  assert.equal(formatValue("pressure", 1013.25, L), "1,013 hPa");
  assert.equal(formatValue("oven_f", 350, L), "350 °F");
  assert.equal(formatValue("co2", 415, L), "415 ppm");
});

test("formatValue: unknown metrics are the bare number", () => {
  assert.equal(formatValue("unknown", 42, L), "42");
  assert.equal(formatValue("adc34", 1.23456, L), "1.235");
});

test("formatValue: bytes shown as B, KB, MB, GB (steps of 1024)", () => {
  assert.equal(formatValue("heap_free", 0, L), "0 B");
  assert.equal(formatValue("heap_free", 512, L), "512 B");
  assert.equal(formatValue("heap_free", 1023, L), "1,023 B");
  assert.equal(formatValue("heap_free", 1024, L), "1 KB");
  assert.equal(formatValue("heap_free", 1536, L), "1.5 KB");
  assert.equal(formatValue("heap_free", 123456, L), "120.6 KB");
  assert.equal(formatValue("heap_free", 1048576, L), "1 MB");
  assert.equal(formatValue("heap_free", 3 * 1048576, L), "3 MB");
  assert.equal(formatValue("heap_free", 2.5 * 1048576, L), "2.5 MB");
  assert.equal(formatValue("heap_free", 5 * 2 ** 30, L), "5 GB");
  assert.equal(formatValue("psram_bytes", 4096, L), "4 KB");
  assert.equal(formatValue("heap_free", -2048, L), "-2 KB");
});

test("formatValue: booleans as on/off whatever the unit", () => {
  assert.equal(formatValue("relay", true, L), "on");
  assert.equal(formatValue("relay", false, L), "off");
  assert.equal(formatValue("temperature", true, L), "on");
  assert.equal(formatValue("heap_free", false, L), "off");
});

test("formatValue: a missing value is a dash without its unit", () => {
  assert.equal(formatValue("temperature", NaN, L), DASH);
  assert.equal(formatValue("humidity", null, L), DASH);
  assert.equal(formatValue("heap_free", Infinity, L), DASH);
  assert.equal(formatValue("heap_free", undefined, L), DASH);
  assert.equal(formatValue("unknown", -Infinity, L), DASH);
});

test("formatAgo: never, just now, seconds, minutes, hours, days", () => {
  const now = 1_763_700_000_000;
  assert.equal(formatAgo(null, now), "never");
  assert.equal(formatAgo(undefined, now), "never");
  assert.equal(formatAgo(now, now), "just now");
  assert.equal(formatAgo(now - 1499, now), "just now");
  assert.equal(formatAgo(now - 1500, now), "2 s ago");
  assert.equal(formatAgo(now - 59_000, now), "59 s ago");
  assert.equal(formatAgo(now - 59_500, now), "1 min ago");
  assert.equal(formatAgo(now - 60_000, now), "1 min ago");
  assert.equal(formatAgo(now - 3_599_000, now), "59 min ago");
  assert.equal(formatAgo(now - 3_600_000, now), "1 h ago");
  assert.equal(formatAgo(now - 86_399_000, now), "23 h ago");
  assert.equal(formatAgo(now - 86_400_000, now), "1 d ago");
  assert.equal(formatAgo(now - 10 * 86_400_000, now), "10 d ago");
});

test("formatAgo: a timestamp ahead of the clock is just now, and 0 is a time", () => {
  const now = 1_763_700_000_000;
  assert.equal(formatAgo(now + 5000, now), "just now");
  assert.equal(formatAgo(0, 3 * 86_400_000), "3 d ago");
});

test("formatDuration: the largest whole unit, else seconds with a decimal, else ms", () => {
  assert.equal(formatDuration(86_400_000), "1 d");
  assert.equal(formatDuration(7 * 86_400_000), "7 d");
  assert.equal(formatDuration(3_600_000), "1 h");
  assert.equal(formatDuration(25 * 3_600_000), "25 h");
  assert.equal(formatDuration(5_400_000), "90 min");
  assert.equal(formatDuration(60_000), "1 min");
  assert.equal(formatDuration(90_000), "90 s");
  assert.equal(formatDuration(5000), "5 s");
  assert.equal(formatDuration(1000), "1 s");
  assert.equal(formatDuration(1500), "1.5 s");
  assert.equal(formatDuration(90_500), "90.5 s");
  assert.equal(formatDuration(999), "999 ms");
  assert.equal(formatDuration(250), "250 ms");
  assert.equal(formatDuration(0), "0 ms");
});

test("formatCount: whole numbers with grouping", () => {
  assert.equal(formatCount(0, L), "0");
  assert.equal(formatCount(999, L), "999");
  assert.equal(formatCount(1234567, L), "1,234,567");
  assert.equal(formatCount(12.6, L), "13");
  assert.equal(formatCount(1234567, "de-DE"), "1.234.567");
});

test("values that round to zero read 0, never -0", () => {
  assert.equal(formatNumber(-0.0001, L), "0");
  assert.equal(formatNumber(-0, L), "0");
  assert.equal(formatNumber(-0.001, L), "-0.001");
});

test("the byte unit is chosen after rounding", () => {
  assert.equal(formatValue("heap_free", 1048575, L), "1 MB");
  assert.equal(formatValue("heap_free", 1023.9, L), "1 KB");
  assert.equal(formatValue("heap_free", 1022, L), "1,022 B");
});

test("a known name after a prefix keeps its unit", () => {
  assert.equal(unitFor("esp.heap_free"), "B");
  assert.equal(unitFor("node-7.battery"), "%");
  assert.equal(unitFor("board_heap_free"), "B");
  assert.equal(unitFor("preheap_free"), "");
});

test("withUnit: the unit after a space; none, or a missing value, leaves the text alone", () => {
  assert.equal(withUnit("21.5", "°C"), "21.5 °C");
  assert.equal(withUnit("40", "%"), "40 %");
  assert.equal(withUnit("3", ""), "3");
  assert.equal(withUnit(DASH, "V"), DASH);
});

test("formatFixed: exactly the digits asked for, rounded, with the locale's separators", () => {
  assert.equal(formatFixed(3.9, 2, L), "3.90");
  assert.equal(formatFixed(134_400_000, 0, L), "134,400,000");
  assert.equal(formatFixed(0.125, 2, L), "0.13");
  assert.equal(formatFixed(-61, 1, L), "-61.0");
  assert.equal(formatFixed(1234.5, 1, "de-DE"), "1.234,5");
});
