// series.js: a bounded, time-ordered series in two parallel arrays.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  clear,
  insert,
  insertLatestPerBucket,
  lastTs,
  makeSeries,
  plotValue,
  stats,
  trimBefore,
} from "../../../dashboard/js/series.js";

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

// insertLatestPerBucket with buckets of W: [0, 10), [10, 20), ...
const W = 10;

function bucketed(capacity, points) {
  const s = makeSeries(capacity);
  for (const [ts, value] of points) insertLatestPerBucket(s, ts, value, W);
  return s;
}

test("insertLatestPerBucket: a reading in a new (later) bucket is appended", () => {
  const s = bucketed(10, [[5, "a"], [15, "b"], [37, "c"]]);
  assert.deepEqual(s.ts, [5, 15, 37]);
  assert.deepEqual(s.values, ["a", "b", "c"]);
  insertLatestPerBucket(s, 40, "d", W); // the first ts of the next bucket
  assert.deepEqual(s.ts, [5, 15, 37, 40]);
  assert.deepEqual(s.values, ["a", "b", "c", "d"]);
});

test("insertLatestPerBucket: a newer reading in the last bucket replaces its ts and value", () => {
  const s = bucketed(10, [[5, "a"], [11, "b"]]);
  insertLatestPerBucket(s, 14, "c", W);
  assert.deepEqual(s.ts, [5, 14]);
  assert.deepEqual(s.values, ["a", "c"]);
  insertLatestPerBucket(s, 19, "d", W); // the last ts of the bucket
  assert.deepEqual(s.ts, [5, 19]);
  assert.deepEqual(s.values, ["a", "d"]);
  const first = bucketed(10, [[0, "x"]]);
  insertLatestPerBucket(first, 9, "y", W);
  assert.deepEqual(first.ts, [9]);
  assert.deepEqual(first.values, ["y"]);
});

test("insertLatestPerBucket: an older reading in a bucket that holds a newer one changes nothing", () => {
  const s = bucketed(10, [[7, "a"], [18, "b"], [27, "c"]]);
  insertLatestPerBucket(s, 21, "late", W); // the last bucket
  insertLatestPerBucket(s, 10, "late", W); // a middle bucket
  insertLatestPerBucket(s, 0, "late", W); // the first bucket
  assert.deepEqual(s.ts, [7, 18, 27]);
  assert.deepEqual(s.values, ["a", "b", "c"]);
});

test("insertLatestPerBucket: out of order into an earlier bucket holding an older reading replaces it", () => {
  const s = bucketed(10, [[3, "a"], [13, "b"], [25, "c"]]);
  insertLatestPerBucket(s, 17, "B", W); // a middle bucket
  assert.deepEqual(s.ts, [3, 17, 25]);
  assert.deepEqual(s.values, ["a", "B", "c"]);
  insertLatestPerBucket(s, 8, "A", W); // the first bucket
  assert.deepEqual(s.ts, [8, 17, 25]);
  assert.deepEqual(s.values, ["A", "B", "c"]);
});

test("insertLatestPerBucket: out of order into an empty earlier bucket is inserted in order", () => {
  const s = bucketed(10, [[15, "b"], [45, "e"]]);
  insertLatestPerBucket(s, 32, "d", W); // between, next to the newer point's bucket
  insertLatestPerBucket(s, 20, "c", W); // between, next to the older point's bucket
  insertLatestPerBucket(s, 3, "a", W); // before all
  assert.deepEqual(s.ts, [3, 15, 20, 32, 45]);
  assert.deepEqual(s.values, ["a", "b", "c", "d", "e"]);
});

test("insertLatestPerBucket: an equal ts replaces the value (a reading sent twice is kept once)", () => {
  const s = bucketed(10, [[5, "a"], [15, "b"], [25, "c"]]);
  insertLatestPerBucket(s, 25, "C", W); // the newest
  insertLatestPerBucket(s, 15, "B", W); // in the middle
  insertLatestPerBucket(s, 5, "A", W); // the oldest
  insertLatestPerBucket(s, 25, "C", W); // the same reading again
  assert.deepEqual(s.ts, [5, 15, 25]);
  assert.deepEqual(s.values, ["A", "B", "C"]);
});

test("insertLatestPerBucket: null values are kept (a gap) like any other newest reading", () => {
  const s = bucketed(10, [[1, 5], [2, null], [11, null], [12, 7]]);
  assert.deepEqual(s.ts, [2, 12]);
  assert.deepEqual(s.values, [null, 7]);
});

test("insertLatestPerBucket: 100 readings/s for 10 minutes stay bounded, one point per bucket, the newest of each", () => {
  const width = 5000;
  const capacity = 40; // fewer than the 120 buckets of 10 minutes: trimming happens
  const step = 10; // ms: 100 per second
  const t0 = 1_763_700_000_123; // not on a bucket boundary
  const count = 10 * 60 * 100;
  const s = makeSeries(capacity);
  for (let i = 0; i < count; i++) {
    insertLatestPerBucket(s, t0 + i * step, i, width);
    assert.ok(s.ts.length <= capacity + capacity / 4, `length ${s.ts.length} after ${i + 1} readings`);
  }
  assert.equal(s.ts.length, s.values.length);
  assert.ok(s.ts.length >= capacity);
  assert.equal(lastTs(s), t0 + (count - 1) * step);
  for (let k = 0; k < s.ts.length; k++) {
    assert.equal(s.ts[k], t0 + s.values[k] * step, "each value with its own ts");
    if (k) {
      assert.ok(s.ts[k - 1] < s.ts[k], "ts strictly increasing");
      assert.equal(Math.floor(s.ts[k] / width), Math.floor(s.ts[k - 1] / width) + 1, "one point per bucket, none missing");
    }
    if (k < s.ts.length - 1) {
      assert.ok(Math.floor((s.ts[k] + step) / width) > Math.floor(s.ts[k] / width), "the newest reading of its bucket");
    }
  }
});

test("insertLatestPerBucket: in any arrival order, each bucket holds its newest reading", () => {
  // A fixed pseudo-random order (an LCG), with timestamps sent twice and buckets hit many times.
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  const s = makeSeries(1000);
  const newest = new Map(); // bucket -> [ts, value]
  for (let i = 0; i < 5000; i++) {
    const ts = next() % 2000;
    insertLatestPerBucket(s, ts, i, W);
    const bucket = Math.floor(ts / W);
    const held = newest.get(bucket);
    if (!held || ts >= held[0]) newest.set(bucket, [ts, i]);
    if (i % 97 === 0) {
      const want = [...newest.entries()].sort((a, b) => a[0] - b[0]).map(([, point]) => point);
      assert.deepEqual(s.ts, want.map(([t]) => t), `after ${i + 1} readings`);
      assert.deepEqual(s.values, want.map(([, v]) => v));
    }
  }
  const want = [...newest.entries()].sort((a, b) => a[0] - b[0]).map(([, point]) => point);
  assert.deepEqual(s.ts, want.map(([t]) => t));
  assert.deepEqual(s.values, want.map(([, v]) => v));
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
