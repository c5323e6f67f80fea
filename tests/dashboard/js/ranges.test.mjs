// ranges.js: which query draws a time range (raw readings or per-bucket aggregates).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  BUCKET_AGGS,
  bucketFor,
  csvPlan,
  customRange,
  DAY,
  DEFAULT_RANGE,
  HOUR,
  HOUR_BUCKETS_OVER,
  MINUTE,
  narrowestBucket,
  plan,
  queryParams,
  RANGES,
  RAW_LIMIT,
  RAW_SPAN,
  rangeById,
  rangeFromQuery,
  SECOND,
  TARGET_POINTS,
  tailPlan,
  toLocalInput,
  truncated,
  windowOf,
} from "../../../dashboard/js/ranges.js";

const NOW = 1_763_700_000_000;

test("constants: time units in milliseconds and the limits", () => {
  assert.equal(SECOND, 1000);
  assert.equal(MINUTE, 60_000);
  assert.equal(HOUR, 3_600_000);
  assert.equal(DAY, 86_400_000);
  assert.equal(RAW_LIMIT, 5000);
  assert.equal(RAW_SPAN, HOUR);
  assert.equal(TARGET_POINTS, 1000);
});

test("RANGES: the preset spans in order, with unique ids, and the default among them", () => {
  assert.deepEqual(
    RANGES.map((r) => [r.id, r.label, r.span]),
    [
      ["5m", "5 min", 5 * MINUTE],
      ["1h", "1 h", HOUR],
      ["24h", "24 h", DAY],
      ["7d", "7 d", 7 * DAY],
      ["30d", "30 d", 30 * DAY],
      ["1y", "1 y", 365 * DAY],
    ],
  );
  assert.equal(DEFAULT_RANGE, "1h");
  assert.ok(rangeById(DEFAULT_RANGE));
  for (const r of RANGES) assert.equal(r.end, undefined, `${r.id} slides with the clock`);
});

test("rangeById: the preset, or null", () => {
  assert.equal(rangeById("24h"), RANGES[2]);
  assert.equal(rangeById("7d").span, 7 * DAY);
  assert.equal(rangeById("30d").span, 30 * DAY);
  assert.equal(rangeById("1y").span, 365 * DAY);
  assert.equal(rangeById("2h"), null);
  assert.equal(rangeById(undefined), null);
});

test("bucketFor: the smallest nice width keeping the span within TARGET_POINTS buckets", () => {
  assert.equal(bucketFor(5 * MINUTE), SECOND); // 300 ms wanted
  assert.equal(bucketFor(HOUR), 5 * SECOND); // 3.6 s wanted
  assert.equal(bucketFor(DAY), 2 * MINUTE); // 86.4 s wanted
  assert.equal(bucketFor(7 * DAY), 15 * MINUTE); // 604.8 s wanted: 10 min would make 1008 buckets
  assert.equal(bucketFor(30 * DAY), HOUR); // 2592 s wanted
  assert.equal(bucketFor(365 * DAY), 12 * HOUR); // 31536 s wanted
});

test("bucketFor: a span of exactly TARGET_POINTS widths takes that width", () => {
  assert.equal(bucketFor(TARGET_POINTS * SECOND), SECOND);
  assert.equal(bucketFor(TARGET_POINTS * 10 * MINUTE), 10 * MINUTE);
  assert.equal(bucketFor(TARGET_POINTS * 10 * MINUTE + 1), 15 * MINUTE);
  assert.equal(bucketFor(TARGET_POINTS * DAY), DAY);
});

test("bucketFor: tiny spans take one second", () => {
  assert.equal(bucketFor(1), SECOND);
  assert.equal(bucketFor(0), SECOND);
});

test("bucketFor: beyond a day per bucket, whole days", () => {
  assert.equal(bucketFor(TARGET_POINTS * DAY + 1), 2 * DAY);
  assert.equal(bucketFor(2000 * DAY), 2 * DAY);
  assert.equal(bucketFor(2500 * DAY), 3 * DAY);
});

test("bucketFor: every answer keeps the span within TARGET_POINTS buckets", () => {
  for (const span of [1, 999, 61_000, 5 * MINUTE, HOUR + 1, DAY, 7 * DAY + 123, 90 * DAY, 5000 * DAY]) {
    const width = bucketFor(span);
    assert.ok(span / width <= TARGET_POINTS, `${span} ms in ${width} ms buckets`);
  }
});

test("plan: raw readings for a sliding hour or less", () => {
  assert.deepEqual(plan(rangeById("5m"), NOW), {
    start: NOW - 5 * MINUTE,
    end: NOW,
    span: 5 * MINUTE,
    sliding: true,
    interval: null,
    limit: RAW_LIMIT,
  });
  assert.deepEqual(plan(rangeById("1h"), NOW), {
    start: NOW - HOUR,
    end: NOW,
    span: HOUR,
    sliding: true,
    interval: null,
    limit: RAW_LIMIT,
  });
});

test("plan: buckets beyond an hour, with a limit of the bucket count plus two", () => {
  assert.deepEqual(plan(rangeById("24h"), NOW), {
    start: NOW - DAY,
    end: NOW,
    span: DAY,
    sliding: true,
    interval: 2 * MINUTE,
    limit: 722,
  });
  assert.deepEqual(plan(rangeById("7d"), NOW), {
    start: NOW - 7 * DAY,
    end: NOW,
    span: 7 * DAY,
    sliding: true,
    interval: 15 * MINUTE,
    limit: 674,
  });
  // Past an hour, whole minutes (5 s would do for the point count).
  const justOver = plan({ id: "x", span: HOUR + 1 }, NOW);
  assert.equal(justOver.interval, MINUTE);
  assert.equal(justOver.limit, 63); // ceil(60.00002 min / 1 min) = 61, + 2
});

test("narrowestBucket: seconds up to an hour, whole minutes up to a week, whole hours beyond", () => {
  assert.equal(HOUR_BUCKETS_OVER, 7 * DAY);
  assert.equal(narrowestBucket(0), SECOND);
  assert.equal(narrowestBucket(RAW_SPAN), SECOND);
  assert.equal(narrowestBucket(RAW_SPAN + 1), MINUTE);
  assert.equal(narrowestBucket(DAY), MINUTE);
  assert.equal(narrowestBucket(HOUR_BUCKETS_OVER), MINUTE);
  assert.equal(narrowestBucket(HOUR_BUCKETS_OVER + 1), HOUR);
  assert.equal(narrowestBucket(365 * DAY), HOUR);
});

test("bucketFor: past an hour the width is raised to whole minutes, past a week to whole hours", () => {
  assert.equal(bucketFor(HOUR + 1), MINUTE); // 3.6 s wanted
  assert.equal(bucketFor(2 * HOUR), MINUTE); // 7.2 s wanted
  assert.equal(bucketFor(16 * HOUR), MINUTE); // 57.6 s wanted
  assert.equal(bucketFor(17 * HOUR), 2 * MINUTE); // 61.2 s wanted
  assert.equal(bucketFor(7 * DAY + 1), HOUR); // 604.8 s wanted: 15 min would do for the point count
  assert.equal(bucketFor(8 * DAY), HOUR);
  assert.equal(bucketFor(42 * DAY), 2 * HOUR); // 3628.8 s wanted
});

test("bucketFor: every width over an hour is whole minutes, over a week whole hours, and within TARGET_POINTS", () => {
  // Every span from an hour to ten years, in steps that land on no round number.
  for (let span = HOUR + 1; span < 3650 * DAY; span = Math.floor(span * 1.07) + 12_345) {
    const width = bucketFor(span);
    assert.equal(width % MINUTE, 0, `${span} ms in ${width} ms buckets`);
    if (span > 7 * DAY) assert.equal(width % HOUR, 0, `${span} ms in ${width} ms buckets`);
    assert.ok(span / width <= TARGET_POINTS, `${span} ms in ${width} ms buckets`);
  }
});

test("plan: 30 days in hour buckets, a year in 12-hour ones: a few hundred points each", () => {
  const month = plan(rangeById("30d"), NOW);
  assert.deepEqual(month, { start: NOW - 30 * DAY, end: NOW, span: 30 * DAY, sliding: true, interval: HOUR, limit: 722 });
  const year = plan(rangeById("1y"), NOW);
  assert.deepEqual(year, { start: NOW - 365 * DAY, end: NOW, span: 365 * DAY, sliding: true, interval: 12 * HOUR, limit: 732 });
  assert.equal(queryParams(year).get("interval"), "43200000");
  assert.equal(queryParams(year).get("agg"), BUCKET_AGGS);
  // The refresh of the newest buckets keeps the width.
  assert.equal(tailPlan(year, NOW - 12 * HOUR, NOW).interval, 12 * HOUR);
});

test("plan: forced buckets even for a short span (a raw answer came back full)", () => {
  const p = plan(rangeById("1h"), NOW, true);
  assert.equal(p.interval, 5 * SECOND);
  assert.equal(p.limit, 722);
  assert.equal(p.sliding, true);
  const q = plan(rangeById("5m"), NOW, true);
  assert.equal(q.interval, SECOND);
  assert.equal(q.limit, 302);
});

test("plan: a fixed range keeps its own window whatever the clock says", () => {
  const start = NOW - 3 * DAY;
  const end = NOW - 2 * DAY;
  const p = plan({ id: "custom", start, end, span: end - start }, NOW + 12345);
  assert.deepEqual(p, { start, end, span: DAY, sliding: false, interval: 2 * MINUTE, limit: 722 });
  const short = plan({ id: "custom", start: NOW - 10 * MINUTE, end: NOW }, NOW + DAY);
  assert.deepEqual(short, {
    start: NOW - 10 * MINUTE,
    end: NOW,
    span: 10 * MINUTE,
    sliding: false,
    interval: null,
    limit: RAW_LIMIT,
  });
});

test("queryParams: raw plan: start, end, limit, ascending; no interval, agg or keys", () => {
  const q = queryParams(plan(rangeById("1h"), NOW));
  assert.deepEqual(Object.fromEntries(q), {
    start: String(NOW - HOUR),
    end: String(NOW),
    limit: "5000",
    order: "asc",
  });
  assert.equal(q.toString(), `start=${NOW - HOUR}&end=${NOW}&limit=5000&order=asc`);
});

test("queryParams: bucket plan starts on a bucket, adds the interval and asks for avg, min and max", () => {
  const q = queryParams(plan(rangeById("24h"), NOW + 12_345));
  assert.deepEqual(Object.fromEntries(q), {
    start: String(NOW - DAY),
    end: String(NOW + 12_345),
    limit: "722",
    order: "asc",
    interval: "120000",
    agg: "avg,min,max",
  });
  assert.equal(BUCKET_AGGS, "avg,min,max");
});

test("queryParams: keys joined by commas; an empty list or none adds no keys", () => {
  const p = plan(rangeById("5m"), NOW);
  assert.equal(queryParams(p, ["temperature", "humidity"]).get("keys"), "temperature,humidity");
  assert.equal(queryParams(p, ["temperature", "humidity"]).toString().endsWith("&keys=temperature%2Chumidity"), true);
  assert.equal(queryParams(p, []).has("keys"), false);
  assert.equal(queryParams(p, null).has("keys"), false);
  assert.equal(queryParams(p).has("keys"), false);
});

test("customRange: local date-times from two inputs", () => {
  const r = customRange("2024-05-01T10:00", "2024-05-01T12:30", NOW);
  const start = new Date(2024, 4, 1, 10, 0).getTime();
  const end = new Date(2024, 4, 1, 12, 30).getTime();
  assert.deepEqual(r, { id: "custom", label: "custom", start, end, span: end - start });
  assert.equal(r.span, 150 * MINUTE);
});

test("customRange: no end means now", () => {
  const start = new Date(2024, 4, 1, 10, 0).getTime();
  const r = customRange("2024-05-01T10:00", "", start + DAY);
  assert.equal(r.end, start + DAY);
  assert.equal(r.span, DAY);
  assert.equal(customRange("2024-05-01T10:00", undefined, start + HOUR).span, HOUR);
});

test("customRange: a missing or unreadable start", () => {
  assert.throws(() => customRange("", "2024-05-01T12:00", NOW), { message: "Pick a start date and time." });
  assert.throws(() => customRange(undefined, "", NOW), { message: "Pick a start date and time." });
  assert.throws(() => customRange("yesterday", "", NOW), { message: "Pick a start date and time." });
  // the start is checked first
  assert.throws(() => customRange("", "nonsense", NOW), { message: "Pick a start date and time." });
});

test("customRange: an unreadable end", () => {
  assert.throws(() => customRange("2024-05-01T10:00", "nonsense", NOW), {
    message: "The end is not a date and time.",
  });
});

test("customRange: the start must come before the end", () => {
  assert.throws(() => customRange("2024-05-02T10:00", "2024-05-01T10:00", NOW), {
    message: "The start must be before the end.",
  });
  assert.throws(() => customRange("2024-05-01T10:00", "2024-05-01T10:00", NOW), {
    message: "The start must be before the end.",
  });
  const start = new Date(2024, 4, 1, 10, 0).getTime();
  assert.throws(() => customRange("2024-05-01T10:00", "", start - 1), {
    message: "The start must be before the end.",
  });
});

test("customRange: the result plans as a fixed window", () => {
  const r = customRange("2024-05-01T10:00", "2024-05-01T10:30", NOW);
  const p = plan(r, NOW);
  assert.equal(p.sliding, false);
  assert.equal(p.start, r.start);
  assert.equal(p.end, r.end);
  assert.equal(p.interval, null);
});

test("truncated: a raw answer with a metric at the limit was cut", () => {
  const p = { ...plan(rangeById("1h"), NOW), limit: 3 };
  const pts = (n) => Array.from({ length: n }, (_, i) => ({ ts: i, value: i }));
  assert.equal(truncated(p, {}), false);
  assert.equal(truncated(p, { temperature: pts(2) }), false);
  assert.equal(truncated(p, { temperature: pts(2), humidity: pts(3) }), true);
  assert.equal(truncated(p, { temperature: pts(4) }), true);
  assert.equal(truncated(plan(rangeById("1h"), NOW), { temperature: pts(RAW_LIMIT - 1) }), false);
  assert.equal(truncated(plan(rangeById("1h"), NOW), { temperature: pts(RAW_LIMIT) }), true);
});

test("truncated: a bucket answer never is", () => {
  const p = plan(rangeById("24h"), NOW);
  assert.equal(truncated(p, { temperature: Array.from({ length: p.limit + 10 }, (_, i) => ({ ts: i, value: 1 })) }), false);
});

test("rangeFromQuery: a preset by id, a custom range by start and end, else the default", () => {
  const q = (text) => new URLSearchParams(text);
  assert.equal(rangeFromQuery(q("range=24h"), NOW), rangeById("24h"));
  assert.deepEqual(rangeFromQuery(q("start=1000&end=5000"), NOW), { id: "custom", label: "custom", start: 1000, end: 5000, span: 4000 });
  // No end: up to now.
  assert.deepEqual(rangeFromQuery(q(`start=${NOW - HOUR}`), NOW), { id: "custom", label: "custom", start: NOW - HOUR, end: NOW, span: HOUR });
  for (const bad of ["", "range=forever", "start=abc", "start=5000&end=1000", "range=forever&start=abc"]) {
    assert.equal(rangeFromQuery(q(bad), NOW), rangeById(DEFAULT_RANGE), bad);
  }
});

test("toLocalInput: local time to the minute, as datetime-local inputs take it, and back", () => {
  const ms = new Date(2024, 4, 1, 10, 7, 42).getTime();
  assert.equal(toLocalInput(ms), "2024-05-01T10:07");
  assert.equal(customRange(toLocalInput(ms), "", NOW).start, new Date(2024, 4, 1, 10, 7).getTime());
});

test("windowOf: a sliding plan moves with the clock and stands still where it was frozen", () => {
  const p = plan(rangeById("1h"), NOW);
  assert.deepEqual(windowOf(p, null, NOW + 5000), { ...p, start: NOW + 5000 - HOUR, end: NOW + 5000 });
  assert.deepEqual(windowOf(p, NOW + 1000, NOW + 5000), { ...p, start: NOW + 1000 - HOUR, end: NOW + 1000 });
  const fixed = plan(customRange("2024-05-01T10:00", "2024-05-01T10:30", NOW), NOW);
  assert.equal(windowOf(fixed, null, NOW), fixed);
});

test("tailPlan: the buckets from the newest one held to now, with room for both ends", () => {
  const p = plan(rangeById("24h"), NOW);
  const tail = tailPlan(p, NOW - 10 * p.interval, NOW);
  assert.deepEqual(tail, { ...p, start: NOW - 10 * p.interval, end: NOW, limit: 12 });
});

test("csvPlan: a raw range asks for as many rows as the fullest chart holds; buckets as planned", () => {
  const raw = plan(rangeById("1h"), NOW);
  assert.equal(csvPlan(raw, 10).limit, RAW_LIMIT);
  assert.equal(csvPlan(raw, RAW_LIMIT + 123).limit, RAW_LIMIT + 123);
  assert.notEqual(csvPlan(raw, 10), raw); // a copy: the plan on screen is not changed
  const buckets = plan(rangeById("24h"), NOW);
  assert.deepEqual(csvPlan(buckets, 99_999), buckets);
});
