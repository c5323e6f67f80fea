// A bounded, time-ordered series of points in two parallel arrays (the shape uPlot draws).
// Inserting keeps it sorted and keyed by ts (a reading sent twice is kept once); past its
// capacity the oldest points go. Pure.

export function makeSeries(capacity) {
  return { ts: [], values: [], capacity };
}

// Points beyond capacity are dropped in chunks of a quarter, so trimming costs O(1) per insert.
function slack(s) {
  return s.capacity + Math.max(1, s.capacity >> 2);
}

export function insert(s, ts, value) {
  const n = s.ts.length;
  if (n === 0 || ts > s.ts[n - 1]) {
    s.ts.push(ts);
    s.values.push(value);
  } else {
    const lo = lowerBound(s, ts);
    if (s.ts[lo] === ts) {
      s.values[lo] = value;
      return;
    }
    s.ts.splice(lo, 0, ts);
    s.values.splice(lo, 0, value);
  }
  if (s.ts.length > slack(s)) dropFirst(s, s.ts.length - s.capacity);
}

// One point per bucket of `width` ms: the newest reading in it. A sparkline 84 px wide needs no
// more, whatever the rate, so its window holds a fixed number of points.
export function insertLatestPerBucket(s, ts, value, width) {
  const n = s.ts.length;
  const bucket = Math.floor(ts / width);
  if (n && Math.floor(s.ts[n - 1] / width) === bucket) {
    if (ts >= s.ts[n - 1]) {
      s.ts[n - 1] = ts;
      s.values[n - 1] = value;
    }
    return;
  }
  if (n === 0 || ts > s.ts[n - 1]) {
    insert(s, ts, value);
    return;
  }
  const at = lowerBound(s, ts);
  if (at < n && Math.floor(s.ts[at] / width) === bucket) {
    if (s.ts[at] === ts) s.values[at] = value; // a newer reading of the bucket is already there
    return;
  }
  if (at > 0 && Math.floor(s.ts[at - 1] / width) === bucket) {
    s.ts[at - 1] = ts;
    s.values[at - 1] = value;
    return;
  }
  insert(s, ts, value);
}

function lowerBound(s, ts) {
  let lo = 0;
  let hi = s.ts.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (s.ts[mid] < ts) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function dropFirst(s, count) {
  s.ts.splice(0, count);
  s.values.splice(0, count);
}

// Drop points older than `t`.
export function trimBefore(s, t) {
  let i = 0;
  while (i < s.ts.length && s.ts[i] < t) i++;
  if (i) dropFirst(s, i);
}

export function lastTs(s) {
  return s.ts.length ? s.ts[s.ts.length - 1] : null;
}

export function clear(s) {
  s.ts.length = 0;
  s.values.length = 0;
}

// The number to draw: booleans as 1/0, anything else missing as null (a gap).
export function plotValue(value) {
  if (typeof value === "boolean") return value ? 1 : 0;
  return typeof value === "number" && Number.isFinite(value) ? value : null;
}

export function stats(s) {
  let min = Infinity;
  let max = -Infinity;
  for (const v of s.values) {
    if (v === null) continue;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { count: s.ts.length, min: min === Infinity ? null : min, max: max === -Infinity ? null : max };
}
