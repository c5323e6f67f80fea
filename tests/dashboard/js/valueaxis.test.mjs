// valueaxis.js: a chart's value axis as people read it.
import assert from "node:assert/strict";
import { test } from "node:test";

import { axisSize, BYTE_STEPS, decimalsOf, fillBaseline, tickLabels, tickSteps } from "../../../dashboard/js/valueaxis.js";

const L = "en-US";

test("decimalsOf: the decimals a step needs", () => {
  assert.equal(decimalsOf(5), 0);
  assert.equal(decimalsOf(10_000), 0);
  assert.equal(decimalsOf(0.5), 1);
  assert.equal(decimalsOf(0.25), 2);
  assert.equal(decimalsOf(0.05), 2);
  assert.equal(decimalsOf(0.1 + 0.2), 1); // 0.30000000000000004 is 0.3
  assert.equal(decimalsOf(2.5e-7), 8);
});

test("tickLabels: large values whole, with thousands separators", () => {
  assert.deepEqual(tickLabels("pulses", [134_400_000, 134_420_000], 20_000, L), ["134,400,000", "134,420,000"]);
});

test("tickLabels: the unit on every label, and the same digits on all", () => {
  assert.deepEqual(tickLabels("battery_v", [3.9, 3.95, 4], 0.05, L), ["3.90 V", "3.95 V", "4.00 V"]);
  assert.deepEqual(tickLabels("rssi", [-64, -62, -60], 2, L), ["-64 dBm", "-62 dBm", "-60 dBm"]);
  assert.deepEqual(tickLabels("temperature", [20, 20.5], 0.5, L), ["20.0 °C", "20.5 °C"]);
  assert.deepEqual(tickLabels("humidity", [40, 60], 20, L), ["40 %", "60 %"]);
});

test("tickLabels: a tick at zero but for rounding error reads 0", () => {
  assert.deepEqual(tickLabels("temperature", [-0.2, 2.7755575615628914e-17, 0.2], 0.2, L), ["-0.2 °C", "0.0 °C", "0.2 °C"]);
});

test("tickLabels: bytes in the largest unit the step fills", () => {
  assert.deepEqual(tickLabels("heap_free", [96 * 1024, 98 * 1024], 2 * 1024, L), ["96 KB", "98 KB"]);
  assert.deepEqual(tickLabels("heap_free", [98_300, 98_310], 10, L), ["98,300 B", "98,310 B"]);
  assert.deepEqual(tickLabels("heap_free", [1.5 * 1024 ** 2, 2 * 1024 ** 2], 512 * 1024, L), ["1,536 KB", "2,048 KB"]);
  assert.deepEqual(tickLabels("heap_free", [1024 ** 3, 2 * 1024 ** 3], 1024 ** 3, L), ["1 GB", "2 GB"]);
});

test("tickSteps: round byte steps for bytes, the library's own for anything else", () => {
  assert.equal(tickSteps("heap_free"), BYTE_STEPS);
  assert.equal(tickSteps("temperature"), null);
  assert.deepEqual(BYTE_STEPS.slice(0, 10), [1, 2, 5, 10, 20, 50, 100, 200, 500, 1024]);
  assert.deepEqual([...BYTE_STEPS].sort((a, b) => a - b), BYTE_STEPS);
});

test("axisSize: the widest line of any label, plus the reserve, rounded up", () => {
  const measure = (text) => text.length * 6.5;
  assert.equal(axisSize(["1 V", "134,400,000"], measure, 17), Math.ceil(11 * 6.5 + 17));
  assert.equal(axisSize(["12:00\nNov 30 2026", null], measure, 0), Math.ceil(11 * 6.5));
  assert.equal(axisSize([], measure, 17), 17);
});

test("fillBaseline: zero when it is on the chart, else the bottom edge", () => {
  assert.equal(fillBaseline(-5, 5), 0);
  assert.equal(fillBaseline(10, 20), 10);
  assert.equal(fillBaseline(-70, -58), -70);
  assert.equal(fillBaseline(0, 3), 0);
});
