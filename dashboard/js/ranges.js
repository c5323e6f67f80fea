// Which query draws a time range: raw readings for short spans, per-bucket aggregates computed in
// the database for long ones, so a week of 1 Hz data arrives as about a thousand points, and a
// year as fewer still. Pure.

export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

export const RANGES = [
  { id: "5m", label: "5 min", span: 5 * MINUTE },
  { id: "1h", label: "1 h", span: HOUR },
  { id: "24h", label: "24 h", span: DAY },
  { id: "7d", label: "7 d", span: 7 * DAY },
  { id: "30d", label: "30 d", span: 30 * DAY },
  { id: "1y", label: "1 y", span: 365 * DAY },
];
export const DEFAULT_RANGE = "1h";

// Raw readings are drawn up to this many per metric; a span holding more is drawn from buckets.
export const RAW_LIMIT = 5000;
// Spans longer than this are always drawn from buckets.
export const RAW_SPAN = HOUR;
// About this many buckets across the chart: more than a phone has pixels, fewer than a 4K screen.
export const TARGET_POINTS = 1000;

const NICE = [
  SECOND, 2 * SECOND, 5 * SECOND, 10 * SECOND, 15 * SECOND, 30 * SECOND,
  MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE,
  HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY,
];

// Spans longer than this take whole hours per bucket (and spans over RAW_SPAN whole minutes).
// A server with rollups answers a width that is a multiple of 1 h from its 1-hour rollups (kept
// longest), and a multiple of 1 min from its 1-minute ones, reading raw rows only for the partial
// buckets at the window's edges; any other width is computed from raw readings, the slowest to
// read and the first to expire. Minute rollups are 60 times the rows of hour ones and expire
// sooner, so beyond a week hours draw the chart.
export const HOUR_BUCKETS_OVER = 7 * DAY;

// The narrowest bucket width `span` may take: one the server's rollups answer exactly.
export function narrowestBucket(span) {
  if (span > HOUR_BUCKETS_OVER) return HOUR;
  if (span > RAW_SPAN) return MINUTE;
  return SECOND;
}

// The smallest round bucket width, no narrower than narrowestBucket, that keeps `span` within
// TARGET_POINTS buckets. NICE's widths from a minute up are whole minutes, from an hour up whole
// hours, and past a day they are whole days: a width no narrower than the floor is a multiple of it.
export function bucketFor(span) {
  const want = Math.max(span / TARGET_POINTS, narrowestBucket(span));
  for (const width of NICE) if (width >= want) return width;
  return Math.ceil(want / DAY) * DAY;
}

export function rangeById(id) {
  return RANGES.find((r) => r.id === id) ?? null;
}

// A plan: the window [start, end], whether it slides with the clock, and how to query it.
// `forceBuckets` is set after a raw query came back full (more readings than RAW_LIMIT).
export function plan(range, now, forceBuckets = false) {
  const sliding = range.end === undefined;
  const end = sliding ? now : range.end;
  const start = sliding ? now - range.span : range.start;
  const span = end - start;
  if (span <= RAW_SPAN && !forceBuckets) {
    return { start, end, span, sliding, interval: null, limit: RAW_LIMIT };
  }
  const interval = bucketFor(span);
  // Bucket starts are aligned to the epoch, so the window may touch one more bucket than span/width.
  const limit = Math.ceil(span / interval) + 2;
  return { start, end, span, sliding, interval, limit };
}

// What a bucketed range asks for per bucket: the average draws the line, min and max the band.
export const BUCKET_AGGS = "avg,min,max";

// The HTTP API's query string for a plan (telemetry and telemetry.csv take the same). A bucketed
// query starts on a bucket boundary: its first bucket is then whole, so the server answers every
// bucket exactly from rollups, even where raw readings have expired.
export function queryParams(p, keys = null) {
  const start = p.interval ? Math.floor(p.start / p.interval) * p.interval : p.start;
  const q = new URLSearchParams({ start: String(start), end: String(p.end), limit: String(p.limit), order: "asc" });
  if (p.interval) {
    q.set("interval", String(p.interval));
    q.set("agg", BUCKET_AGGS);
  }
  if (keys && keys.length) q.set("keys", keys.join(","));
  return q;
}

// A custom range from two <input type="datetime-local"> values (local time). Throws with a message
// a person can act on.
export function customRange(startText, endText, now) {
  const start = Date.parse(startText);
  const end = endText ? Date.parse(endText) : now;
  if (!startText || Number.isNaN(start)) throw new Error("Pick a start date and time.");
  if (Number.isNaN(end)) throw new Error("The end is not a date and time.");
  if (start >= end) throw new Error("The start must be before the end.");
  return { id: "custom", label: "custom", start, end, span: end - start };
}

// Whether a raw answer was cut at the limit (so buckets should draw it instead).
export function truncated(p, answer) {
  if (p.interval) return false;
  return Object.values(answer).some((points) => points.length >= p.limit);
}

// The range an address asks for (`?range=24h`, or `?start=..&end=..` in epoch ms); the default
// when it names none that makes sense.
export function rangeFromQuery(query, now) {
  if (query.get("start")) {
    const start = Number(query.get("start"));
    const end = Number(query.get("end")) || now;
    if (Number.isFinite(start) && start < end) return { id: "custom", label: "custom", start, end, span: end - start };
  }
  return rangeById(query.get("range")) || rangeById(DEFAULT_RANGE);
}

// "2026-11-21T14:05" in local time, as <input type="datetime-local"> wants it.
export function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

// The plan with its window where the charts are now: a sliding range moves with the clock, and
// stands still at `frozenAt` (while paused).
export function windowOf(p, frozenAt, now) {
  if (!p.sliding) return p;
  const end = frozenAt ?? now;
  return { ...p, start: end - p.span, end };
}

// The newest buckets of a bucketed plan again, from the newest one held: live readings fall in
// them, and only the server can average them in.
export function tailPlan(p, newest, now) {
  return { ...p, start: newest, end: now, limit: Math.ceil((now - newest) / p.interval) + 2 };
}

// The query for the rows on screen: live readings may have grown a raw range past the limit it
// was loaded with (`longest`: the most points a chart holds).
export function csvPlan(shown, longest) {
  return shown.interval ? { ...shown } : { ...shown, limit: Math.max(shown.limit, longest) };
}
