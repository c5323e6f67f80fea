// A chart's value (y) axis as people read it: tick labels with the metric's unit and the digits
// their step needs, byte sizes on round KB/MB/GB steps, an axis as wide as its widest label, and
// where the area under the line is filled to. Pure: the caller measures text (a canvas in the page).

import { formatFixed, unitFor, withUnit } from "./format.js";

const KB = 1024;
const BYTE_SIZES = [
  [KB ** 3, "GB"],
  [KB ** 2, "MB"],
  [KB, "KB"],
];

// Tick steps for byte metrics: round numbers of bytes, KB, MB, GB and beyond (decimal steps
// would read 97.66 KB, 98.63 KB).
export const BYTE_STEPS = [0, 1, 2, 3, 4].flatMap((k) => [1, 2, 5, 10, 20, 50, 100, 200, 500].map((n) => n * KB ** k));

// The steps a metric's ticks may take, or null for the chart library's own (1, 2, 2.5 or 5
// times a power of ten).
export function tickSteps(metric) {
  return unitFor(metric) === "B" ? BYTE_STEPS : null;
}

// The decimals that tell ticks `step` apart: 0.25 -> 2, 5 -> 0.
export function decimalsOf(step) {
  for (let digits = 0; digits < 12; digits++) {
    const scaled = step * 10 ** digits;
    if (Math.abs(scaled - Math.round(scaled)) < 1e-9 * Math.max(1, Math.abs(scaled))) return digits;
  }
  return 12;
}

// Labels for ticks `step` apart, all with the same digits and the metric's unit. Bytes take the
// largest unit the step fills ("96 KB", "98 KB"; "98,304 B" when the step is a few bytes).
export function tickLabels(metric, ticks, step, locale = undefined) {
  const unit = unitFor(metric);
  const [size, name] = unit === "B" ? byteUnit(step) : [1, unit];
  const digits = decimalsOf(step / size);
  // A tick that is zero but for rounding error is written 0, not "-0.00".
  return ticks.map((v) => withUnit(formatFixed(Math.abs(v) < step * 1e-6 ? 0 : v / size, digits, locale), name));
}

function byteUnit(step) {
  for (const [size, name] of BYTE_SIZES) if (step >= size) return [size, name];
  return [1, "B"];
}

// The axis width that shows every label whole: the widest line of any label, plus `reserve` (the
// tick and the gap beside it). `measure(text)` gives a text's width in px.
export function axisSize(labels, measure, reserve) {
  let widest = 0;
  for (const label of labels) {
    if (label == null) continue;
    for (const line of String(label).split("\n")) widest = Math.max(widest, measure(line));
  }
  return Math.ceil(widest + reserve);
}

// Where the area under a line is filled to: zero when zero is on the chart, else the bottom edge,
// so an all-negative series (RSSI, dBm) is shaded below its line as a positive one is.
export function fillBaseline(min, max) {
  return min < 0 && max > 0 ? 0 : min;
}
