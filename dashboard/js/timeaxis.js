// A chart's time (x) axis: where its ticks go (round local times: every 5 s, 10 min, 6 h, day,
// month...) and what they say, choosing the finest step whose labels, measured, never overlap at
// the chart's width. Pure: the caller measures text (a canvas in the page); times are local, as
// the rest of the page shows them.

import { DAY, HOUR, MINUTE, SECOND } from "./ranges.js";

// Space (px) kept free between two neighbouring labels.
export const LABEL_GAP = 10;
// Steps whose ticks would come closer than this (px) are not tried: no label is that narrow.
const MIN_SPACING = 24;

const MONTH = 30 * DAY;
const YEAR = 365 * DAY;
const steps = (unit, size, counts) => counts.map((n) => ({ unit, n, ms: n * size }));

// From the finest up; `ms` is the step's (typical) length.
export const TIME_STEPS = [
  ...steps("second", SECOND, [1, 2, 5, 10, 15, 30]),
  ...steps("minute", MINUTE, [1, 2, 5, 10, 15, 30]),
  ...steps("hour", HOUR, [1, 2, 3, 6, 12]),
  ...steps("day", DAY, [1, 2, 7, 14]),
  ...steps("month", MONTH, [1, 2, 3, 6]),
  ...steps("year", YEAR, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]),
];

const offsetAt = (t) => -new Date(t).getTimezoneOffset() * MINUTE;

// The tick times of `step` in [min, max].
export function timeSplits(min, max, step) {
  if (step.ms < HOUR) {
    // Steps below an hour divide every time zone's offset (and a daylight-saving shift), so ticks
    // aligned once in local time stay aligned: 14:05, 14:10, whatever the zone.
    const out = [];
    const offset = offsetAt(min);
    for (let t = Math.ceil((min + offset) / step.ms) * step.ms - offset; t <= max; t += step.ms) out.push(t);
    return out;
  }
  return calendarSplits(min, max, step);
}

// Hours, days, months and years by the local calendar: 00:00, 06:00 even on a day with 23 hours.
function calendarSplits(min, max, { unit, n }) {
  const out = [];
  const at = new Date(min);
  let [y, mo, d, h] = [at.getFullYear(), at.getMonth(), at.getDate(), 0];
  if (unit === "hour") h = Math.floor(at.getHours() / n) * n;
  else if (unit === "day") d -= dayNumber(y, mo, d) % n;
  else if (unit === "month") [mo, d] = [mo - (mo % n), 1];
  else [y, mo, d] = [y - (y % n), 0, 1];
  for (;;) {
    const t = localTime(y, mo, d, h);
    if (t > max) return out;
    // A local time a daylight-saving change skips lands on the next hour: kept once.
    if (t >= min && (!out.length || t > out[out.length - 1])) out.push(t);
    if (unit === "hour") h += n;
    else if (unit === "day") d += n;
    else if (unit === "month") mo += n;
    else y += n;
  }
}

// Days since 1970-01-01 of a local date, so day steps fall on the same dates however the range moves.
function dayNumber(y, mo, d) {
  return Math.round(Date.UTC(y, mo, d) / DAY);
}

// Date normalises fields past their end (hour 24, day 32, month 12). Years here are all past 100,
// which Date would read as 19xx.
function localTime(y, mo, d, h) {
  return new Date(y, mo, d, h).getTime();
}

// How a step's ticks are written: the time (or date) on the first line, and on a second line the
// day (or year) where it changes, and on the first label.
const FORMATS = {
  second: [{ hour: "numeric", minute: "2-digit", second: "2-digit" }, { month: "short", day: "numeric" }],
  minute: [{ hour: "numeric", minute: "2-digit" }, { month: "short", day: "numeric" }],
  hour: [{ hour: "numeric", minute: "2-digit" }, { month: "short", day: "numeric" }],
  day: [{ month: "short", day: "numeric" }, { year: "numeric" }],
  month: [{ month: "short" }, { year: "numeric" }],
  year: [{ year: "numeric" }, null],
};

const formats = new Map();
function formatsFor(unit, locale) {
  const key = `${unit}|${locale}`;
  if (!formats.has(key)) {
    const [main, context] = FORMATS[unit];
    formats.set(key, [new Intl.DateTimeFormat(locale, main), context && new Intl.DateTimeFormat(locale, context)]);
  }
  return formats.get(key);
}

export function timeLabels(splits, step, locale = undefined) {
  const [main, context] = formatsFor(step.unit, locale);
  let previous = null;
  return splits.map((t) => {
    const date = new Date(t);
    const text = main.format(date);
    if (!context) return text;
    const around = context.format(date);
    const changed = around !== previous;
    previous = around;
    return changed ? `${text}\n${around}` : text;
  });
}

// The finest step whose labels fit, with their ticks and labels ({step, splits, labels}). The
// chart is `width` px wide for [min, max]; a label may reach `room.left` px before it and
// `room.right` px after it, and one that would reach further is left out (null), its tick kept.
// `measure(text)` gives a text's width in px.
export function pickTimeStep(min, max, width, measure, room = { left: 0, right: 0 }, locale = undefined) {
  const span = max - min;
  let chosen = { step: TIME_STEPS[TIME_STEPS.length - 1], splits: [], labels: [] };
  if (!(span > 0 && width > 0)) return chosen;
  const place = (t) => ((t - min) / span) * width;
  const fit = { place, width, measure, room, locale };
  let finer = null;
  for (const step of TIME_STEPS) {
    if ((width * step.ms) / span < MIN_SPACING) continue;
    const splits = timeSplits(min, max, step);
    const labels = labelsInRoom(splits, step, fit);
    chosen = { step, splits, labels };
    if (apart(splits, labels, place, measure)) {
      return shown(labels) < 2 && finer ? everyOther(finer, fit) || chosen : chosen;
    }
    finer = chosen;
  }
  return chosen;
}

// A step whose labels fit can still show only one, when a tick near an end has its label left
// out; the finer step with a label on every other tick (either half) then shows two or more.
function everyOther({ step, splits }, fit) {
  for (const phase of [0, 1]) {
    const half = splits.filter((_, i) => i % 2 === phase);
    const halfLabels = labelsInRoom(half, step, fit);
    const labels = splits.map((_, i) => (i % 2 === phase ? halfLabels[(i - phase) / 2] : null));
    if (shown(labels) >= 2 && apart(splits, labels, fit.place, fit.measure)) return { step, splits, labels };
  }
  return null;
}

const shown = (labels) => labels.filter((label) => label !== null).length;

// Labels, those at the ends left out while they would reach past the room there. The day (or
// year) goes on the first label that is kept.
function labelsInRoom(splits, step, { place, width, measure, room, locale }) {
  let first = 0;
  let last = splits.length - 1;
  for (;;) {
    const kept = timeLabels(splits.slice(first, last + 1), step, locale);
    const left = first <= last && place(splits[first]) - widthOf(kept[0], measure) / 2 < -room.left;
    const right = first <= last && place(splits[last]) + widthOf(kept[kept.length - 1], measure) / 2 > width + room.right;
    if (!left && !right) return splits.map((_, i) => (i >= first && i <= last ? kept[i - first] : null));
    if (left) first += 1;
    else last -= 1;
  }
}

function apart(splits, labels, place, measure) {
  let prev = null;
  for (let i = 0; i < splits.length; i++) {
    if (labels[i] === null) continue;
    const here = { pos: place(splits[i]), half: widthOf(labels[i], measure) / 2 };
    if (prev && here.pos - prev.pos < prev.half + here.half + LABEL_GAP) return false;
    prev = here;
  }
  return true;
}

function widthOf(label, measure) {
  return Math.max(...label.split("\n").map((line) => measure(line)));
}
