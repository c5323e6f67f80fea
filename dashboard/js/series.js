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
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s.ts[mid] < ts) lo = mid + 1;
      else hi = mid;
    }
    if (s.ts[lo] === ts) {
      s.values[lo] = value;
      return;
    }
    s.ts.splice(lo, 0, ts);
    s.values.splice(lo, 0, value);
  }
  if (s.ts.length > slack(s)) dropFirst(s, s.ts.length - s.capacity);
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
