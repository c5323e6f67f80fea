// rangeinfo.js: the line under the range buttons.
import assert from "node:assert/strict";
import { test } from "node:test";

import { describeRange } from "../../../dashboard/js/rangeinfo.js";
import { customRange, plan, rangeById } from "../../../dashboard/js/ranges.js";

const NOW = 1_763_700_000_000;
const chart = (n, capacity = 20000) => ({ ts: Array.from({ length: n }, (_, i) => i), capacity });

test("describeRange: raw readings, live or paused", () => {
  const p = plan(rangeById("1h"), NOW);
  assert.equal(describeRange(p, [chart(1200), chart(2400)], false, 20000), "3,600 readings · live");
  assert.equal(describeRange(p, [chart(3)], true, 20000), "3 readings · paused");
});

test("describeRange: buckets say their width and that the server computed them", () => {
  const p = plan(rangeById("7d"), NOW);
  assert.equal(describeRange(p, [chart(672)], false, 20000), "672 points, 15 min averages computed by the server · live");
});

test("describeRange: a fixed range, and a raw chart that is full", () => {
  const fixed = plan(customRange("2024-05-01T10:00", "2024-05-01T10:30", NOW), NOW);
  assert.equal(describeRange(fixed, [chart(5)], false, 20000), "5 readings · fixed range");
  const p = plan(rangeById("5m"), NOW);
  assert.equal(
    describeRange(p, [chart(4, 4)], false, 4),
    "4 readings · the newest 4 per chart (pick a longer range for all of it) · live",
  );
});

test("describeRange: a device with no readings yet", () => {
  assert.equal(describeRange(plan(rangeById("1h"), NOW), [], false, 20000), "No readings stored for this device yet.");
});
