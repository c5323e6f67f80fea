// series.js: a bounded, time-ordered series in two parallel arrays.
import assert from "node:assert/strict";
import { test } from "node:test";

import { clear, insert, lastTs, makeSeries, plotValue, stats, trimBefore } from "../../dashboard/js/series.js";

function filled(capacity, points) {
  const s = makeSeries(capacity);
  for (const [ts, value] of points) insert(s, ts, value);
  return s;
}

test("makeSeries: empty parallel arrays and the capacity", () => {
  assert.deepEqual(makeSeries(600), { ts: [], values: [], capacity: 600 });
});

test("insert: in order appends", () => {
  const s = filled(10, [[1000, 1], [2000, 2], [3000, 3]]);
  assert.deepEqual(s.ts, [1000, 2000, 3000]);
  assert.deepEqual(s.values, [1, 2, 3]);
});

test("insert: out of order keeps the series sorted, values with their timestamps", () => {
  const s = filled(10, [[3000, "c"], [1000, "a"], [5000, "e"], [2000, "b"], [4000, "d"], [0, "z"]]);
  assert.deepEqual(s.ts, [0, 1000, 2000, 3000, 4000, 5000]);
  assert.deepEqual(s.values, ["z", "a", "b", "c", "d", "e"]);
});

test("insert: an equal timestamp replaces the value (a reading sent twice is kept once)", () => {
  const s = filled(10, [[1000, 1], [2000, 2], [3000, 3]]);
  insert(s, 2000, 20); // in the middle
  insert(s, 3000, 30); // the newest
  insert(s, 1000, 10); // the oldest
  insert(s, 3000, 30); // the same reading again
  assert.deepEqual(s.ts, [1000, 2000, 3000]);
  assert.deepEqual(s.values, [10, 20, 30]);
});

test("insert: null values are kept as gaps", () => {
  const s = filled(10, [[1, null], [2, 5]]);
  assert.deepEqual(s.values, [null, 5]);
});

test("insert: bounded: after 10 x capacity points the newest are kept, length <= capacity + capacity/4", () => {
  const capacity = 40;
  const s = makeSeries(capacity);
  for (let i = 0; i < 10 * capacity; i++) {
    insert(s, i * 1000, i);
    assert.ok(s.ts.length <= capacity + capacity / 4, `length ${s.ts.length} after ${i + 1} inserts`);
    assert.equal(s.ts.length, s.values.length);
  }
  assert.ok(s.ts.length >= capacity);
  const n = s.ts.length;
  const newest = 10 * capacity - 1;
  assert.equal(lastTs(s), newest * 1000);
  assert.deepEqual(s.values, Array.from({ length: n }, (_, k) => newest - n + 1 + k));
  assert.deepEqual(s.ts, s.values.map((v) => v * 1000));
});

test("insert: trimming drops the oldest in a chunk down to capacity", () => {
  const s = makeSeries(4); // trims when past 4 + 1
  for (let ts = 1; ts <= 5; ts++) insert(s, ts, ts);
  assert.deepEqual(s.ts, [1, 2, 3, 4, 5]);
  insert(s, 6, 6);
  assert.deepEqual(s.ts, [3, 4, 5, 6]);
  assert.deepEqual(s.values, [3, 4, 5, 6]);
});

test("insert: bounded when points arrive in random order too", () => {
  const capacity = 16;
  const s = makeSeries(capacity);
  // a fixed shuffle of 0..159 (multiplying by 7 modulo 160 is a permutation)
  for (let i = 0; i < 10 * capacity; i++) insert(s, (i * 7) % 160, i);
  assert.ok(s.ts.length <= capacity + capacity / 4);
  for (let i = 1; i < s.ts.length; i++) assert.ok(s.ts[i - 1] < s.ts[i], "strictly increasing");
});

test("insert: a capacity of 1 keeps at most two points", () => {
  const s = makeSeries(1);
  for (let ts = 1; ts <= 10; ts++) {
    insert(s, ts, ts);
    assert.ok(s.ts.length <= 2);
  }
  assert.equal(lastTs(s), 10);
});

test("trimBefore: drops points older than t, keeps t itself", () => {
  const s = filled(10, [[1000, 1], [2000, 2], [3000, 3], [4000, 4]]);
  trimBefore(s, 2500);
  assert.deepEqual(s.ts, [3000, 4000]);
  assert.deepEqual(s.values, [3, 4]);
  trimBefore(s, 3000);
  assert.deepEqual(s.ts, [3000, 4000]);
  trimBefore(s, 0);
  assert.deepEqual(s.ts, [3000, 4000]);
  trimBefore(s, 9999);
  assert.deepEqual(s.ts, []);
  assert.deepEqual(s.values, []);
  trimBefore(s, 1); // an empty series stays empty
  assert.deepEqual(s.ts, []);
});

test("lastTs: the newest timestamp, or null", () => {
  const s = makeSeries(10);
  assert.equal(lastTs(s), null);
  insert(s, 2000, 1);
  insert(s, 1000, 1);
  assert.equal(lastTs(s), 2000);
  insert(s, 0, 1);
  assert.equal(lastTs(s), 2000);
});

test("clear: empties both arrays in place and keeps the capacity", () => {
  const s = filled(10, [[1, 1], [2, 2]]);
  const { ts, values } = s;
  clear(s);
  assert.deepEqual(s, { ts: [], values: [], capacity: 10 });
  assert.equal(s.ts, ts);
  assert.equal(s.values, values);
  insert(s, 5, 5);
  assert.deepEqual(s.ts, [5]);
});

test("plotValue: booleans as 1/0, finite numbers as themselves, anything else as null", () => {
  assert.equal(plotValue(true), 1);
  assert.equal(plotValue(false), 0);
  assert.equal(plotValue(0), 0);
  assert.equal(plotValue(-3.5), -3.5);
  assert.equal(plotValue(21.5), 21.5);
  for (const v of [NaN, Infinity, -Infinity, null, undefined, "5", {}]) assert.equal(plotValue(v), null);
});

test("stats: count of points, min and max ignoring nulls", () => {
  const s = filled(10, [[1, null], [2, 3], [3, -1], [4, null], [5, 7], [6, 0]]);
  assert.deepEqual(stats(s), { count: 6, min: -1, max: 7 });
});

test("stats: only nulls, or empty, have no min or max", () => {
  assert.deepEqual(stats(filled(10, [[1, null], [2, null]])), { count: 2, min: null, max: null });
  assert.deepEqual(stats(makeSeries(10)), { count: 0, min: null, max: null });
});

test("stats: a single point is both min and max", () => {
  assert.deepEqual(stats(filled(10, [[1, 4.25]])), { count: 1, min: 4.25, max: 4.25 });
});
