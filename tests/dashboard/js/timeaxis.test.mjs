// timeaxis.js: time ticks at round local times, labels that never overlap. The expected text is
// en-US; the expected ticks hold in any time zone (each test reads local fields back).
import assert from "node:assert/strict";
import { test } from "node:test";

import { DAY, HOUR, MINUTE, SECOND } from "../../../dashboard/js/ranges.js";
import { LABEL_GAP, pickTimeStep, TIME_STEPS, timeLabels, timeSplits } from "../../../dashboard/js/timeaxis.js";

const L = "en-US";
const NOW = new Date(2026, 10, 30, 16, 31, 7, 250).getTime(); // local 30 Nov 2026 16:31:07.250
const step = (unit, n) => TIME_STEPS.find((s) => s.unit === unit && s.n === n);
// About 6.5 px per character: the width of 12 px system-ui text, near enough.
const measure = (text) => text.length * 6.5;

test("TIME_STEPS: from the finest up", () => {
  assert.deepEqual(TIME_STEPS.slice(0, 3).map((s) => s.ms), [SECOND, 2 * SECOND, 5 * SECOND]);
  for (let i = 1; i < TIME_STEPS.length; i++) assert.ok(TIME_STEPS[i].ms > TIME_STEPS[i - 1].ms, i);
});

test("timeSplits: short steps on round local times, inside the range", () => {
  const ticks = timeSplits(NOW - 5 * MINUTE, NOW, step("minute", 1));
  assert.equal(ticks.length, 5);
  for (const t of ticks) {
    const d = new Date(t);
    assert.equal(d.getSeconds() + d.getMilliseconds(), 0);
    assert.ok(t >= NOW - 5 * MINUTE && t <= NOW);
  }
  assert.deepEqual(timeSplits(NOW - 20 * SECOND, NOW, step("second", 10)).map((t) => new Date(t).getSeconds()), [50, 0]);
});

test("timeSplits: hours at local multiples of the step; days at local midnight; months on the 1st", () => {
  const six = timeSplits(NOW - 2 * DAY, NOW, step("hour", 6));
  assert.deepEqual(six.map((t) => new Date(t).getHours()), [18, 0, 6, 12, 18, 0, 6, 12]);
  const days = timeSplits(NOW - 7 * DAY, NOW, step("day", 1));
  assert.equal(days.length, 7);
  for (const t of days) assert.equal(new Date(t).getHours() + new Date(t).getMinutes(), 0);
  const months = timeSplits(NOW - 100 * DAY, NOW, step("month", 1));
  assert.deepEqual(months.map((t) => [new Date(t).getMonth(), new Date(t).getDate()]), [[8, 1], [9, 1], [10, 1]]);
  const years = timeSplits(new Date(2001, 5, 1).getTime(), NOW, step("year", 10));
  assert.deepEqual(years.map((t) => new Date(t).getFullYear()), [2010, 2020]);
});

test("timeLabels: the time, with the day under the first label and wherever the day changes", () => {
  const ticks = [new Date(2026, 10, 29, 22).getTime(), new Date(2026, 10, 30, 0).getTime(), new Date(2026, 10, 30, 2).getTime()];
  assert.deepEqual(timeLabels(ticks, step("hour", 2), L), ["10:00 PM\nNov 29", "12:00 AM\nNov 30", "2:00 AM"]);
  assert.deepEqual(timeLabels([ticks[0]], step("second", 5), L), ["10:00:00 PM\nNov 29"]);
  assert.deepEqual(timeLabels(ticks.slice(1), step("day", 1), L), ["Nov 30\n2026", "Nov 30"]);
  assert.deepEqual(timeLabels([new Date(2030, 0, 1).getTime()], step("year", 1), L), ["2030"]);
});

test("pickTimeStep: no two labels closer than their half widths and the gap, at any width", () => {
  for (const span of [5 * MINUTE, HOUR, DAY, 7 * DAY, 400 * DAY]) {
    for (let width = 200; width <= 3000; width += 37) {
      const { splits, labels } = pickTimeStep(NOW - span, NOW, width, measure, { left: 40, right: 20 }, L);
      const drawn = splits.map((t, i) => [((t - NOW + span) / span) * width, labels[i]]).filter(([, text]) => text !== null);
      assert.ok(drawn.length >= 2, `${span} at ${width}: ${drawn.length} labels`);
      for (let i = 1; i < drawn.length; i++) {
        const [a, b] = [drawn[i - 1], drawn[i]];
        const half = (text) => Math.max(...text.split("\n").map(measure)) / 2;
        assert.ok(b[0] - a[0] >= half(a[1]) + half(b[1]) + LABEL_GAP, `${span} at ${width}: ${a[1]} | ${b[1]}`);
      }
    }
  }
});

test("pickTimeStep: the finest step that fits; wider charts get finer steps", () => {
  const narrow = pickTimeStep(NOW - 5 * MINUTE, NOW, 250, measure, { left: 40, right: 20 }, L);
  const wide = pickTimeStep(NOW - 5 * MINUTE, NOW, 1100, measure, { left: 40, right: 20 }, L);
  assert.ok(narrow.step.ms > wide.step.ms);
  assert.deepEqual([wide.step.unit, wide.step.n], ["second", 30]);
});

test("pickTimeStep: a label that would reach past the room at an end is left out, its tick kept", () => {
  // The first tick sits right at the left edge; with no room there its label cannot be drawn.
  const start = new Date(2026, 10, 30, 16, 0).getTime();
  const { splits, labels } = pickTimeStep(start, start + HOUR, 600, measure, { left: 0, right: 100 }, L);
  assert.equal(splits[0], start);
  assert.equal(labels[0], null);
  assert.match(labels[1], /\n/); // the day moves to the first label drawn
});

test("pickTimeStep: an empty span or width picks nothing", () => {
  assert.deepEqual(pickTimeStep(NOW, NOW, 500, measure).splits, []);
  assert.deepEqual(pickTimeStep(NOW - HOUR, NOW, 0, measure).labels, []);
});

test("pickTimeStep: a narrow chart keeps two labels when the step that fits would leave one", () => {
  // 24 hours ending 10 min after noon, 200 px: 6-hour labels crowd each other, and the 12-hour
  // step's noon tick sits at the right edge, its label left out: every other 6-hour tick instead.
  const end = new Date(2026, 10, 30, 12, 10).getTime();
  const { step: picked, splits, labels } = pickTimeStep(end - DAY, end, 200, measure, { left: 40, right: 0 }, L);
  const shown = labels.filter((label) => label !== null);
  assert.ok(shown.length >= 2, JSON.stringify({ picked, labels }));
  const place = (t) => ((t - (end - DAY)) / DAY) * 200;
  const kept = splits.map((t, i) => ({ t, label: labels[i] })).filter((s) => s.label !== null);
  for (let i = 1; i < kept.length; i++) {
    const half = (s) => Math.max(...s.label.split("\n").map(measure)) / 2;
    assert.ok(place(kept[i].t) - place(kept[i - 1].t) >= half(kept[i]) + half(kept[i - 1]) + LABEL_GAP, i);
  }
  assert.ok(place(kept.at(-1).t) + Math.max(...kept.at(-1).label.split("\n").map(measure)) / 2 <= 200);
});
