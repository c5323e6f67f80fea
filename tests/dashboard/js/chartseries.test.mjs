// chartseries.js: a chart's line, and for buckets its min..max band, in parallel arrays.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  addPoints,
  addReading,
  chartData,
  clearChartSeries,
  makeChartSeries,
  trimChartSeries,
} from "../../../dashboard/js/chartseries.js";

test("raw: {ts, value} points make one line; booleans draw as 1/0", () => {
  const cs = makeChartSeries(10, false);
  addPoints(cs, [{ ts: 2, value: 21.5 }, { ts: 1, value: true }]);
  addReading(cs, 3, 22);
  assert.deepEqual(chartData(cs), [[1, 2, 3], [1, 21.5, 22]]);
  assert.equal(cs.low, null);
});

test("buckets: {ts, avg, min, max} make the line and the band, aligned by ts", () => {
  const cs = makeChartSeries(10, true);
  addPoints(cs, [
    { ts: 120, avg: 3.95, min: 3.9, max: 4 },
    { ts: 0, avg: 3.5, min: 3, max: 4 },
    { ts: 120, avg: 3.97, min: 3.9, max: 4.1 }, // a bucket fetched again replaces its values
  ]);
  assert.deepEqual(chartData(cs), [[0, 120], [3.5, 3.97], [3, 3.9], [4, 4.1]]);
  assert.throws(() => addReading(cs, 200, 1), /raw charts only/);
});

test("trim and clear act on the line and the band together", () => {
  const cs = makeChartSeries(10, true);
  addPoints(cs, [0, 60, 120].map((ts) => ({ ts, avg: ts, min: ts - 1, max: ts + 1 })));
  trimChartSeries(cs, 60);
  assert.deepEqual(chartData(cs), [[60, 120], [60, 120], [59, 119], [61, 121]]);
  clearChartSeries(cs);
  assert.deepEqual(chartData(cs), [[], [], [], []]);
});

test("past capacity the oldest points go from the line and the band alike", () => {
  const cs = makeChartSeries(4, true);
  addPoints(cs, Array.from({ length: 9 }, (_, ts) => ({ ts, avg: ts, min: ts, max: ts })));
  const [ts, ...columns] = chartData(cs);
  assert.ok(ts.length <= 5 && ts.at(-1) === 8);
  for (const column of columns) assert.deepEqual(column, ts);
});
