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

test("describeRange: a long range says which rollups served it, and when its edges are approximate", () => {
  const year = plan(rangeById("1y"), NOW);
  assert.equal(
    describeRange(year, [chart(730)], false, 20000, { resolutions: ["1h"], exact: true }),
    "730 points, 12 h averages computed by the server from 1-hour rollups · live",
  );
  assert.equal(
    describeRange(year, [chart(730)], true, 20000, { resolutions: ["1h", "raw"], exact: false }),
    "730 points, 12 h averages computed by the server from 1-hour rollups · edge buckets approximate: raw readings have expired · paused",
  );
  const day = plan(rangeById("24h"), NOW);
  assert.equal(
    describeRange(day, [chart(720)], false, 20000, { resolutions: ["1m", "raw"], exact: true }),
    "720 points, 2 min averages computed by the server from 1-minute rollups · live",
  );
});

test("describeRange: raw answers, and servers that say nothing, read as before", () => {
  const month = plan(rangeById("30d"), NOW);
  assert.equal(describeRange(month, [chart(720)], false, 20000, null), "720 points, 1 h averages computed by the server · live");
  assert.equal(
    describeRange(month, [chart(720)], false, 20000, { resolutions: ["raw"], exact: true }),
    "720 points, 1 h averages computed by the server · live",
  );
  // Raw readings are what they are: no source, and no note about buckets.
  const hour = plan(rangeById("1h"), NOW);
  assert.equal(describeRange(hour, [chart(10)], false, 20000, { resolutions: ["raw"], exact: false }), "10 readings · live");
});
