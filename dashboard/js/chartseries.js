// The points of one chart: its line and, for a range drawn from buckets, the min..max band
// around it, as parallel arrays (the shape uPlot draws). Pure.
//
// The band's edges are series of their own with the line's capacity; every point goes into all
// three at the same ts, so they hold the same timestamps in the same places.

import { clear, insert, makeSeries, plotValue, trimBefore } from "./series.js";

export function makeChartSeries(capacity, banded) {
  return {
    line: makeSeries(capacity),
    low: banded ? makeSeries(capacity) : null,
    high: banded ? makeSeries(capacity) : null,
  };
}

const parts = (cs) => (cs.low ? [cs.line, cs.low, cs.high] : [cs.line]);

// Points as the HTTP API answers: {ts, value} for raw readings; {ts, avg, min, max} per bucket,
// drawn as the average's line inside the min..max band.
export function addPoints(cs, points) {
  for (const p of points) {
    if (!cs.low) {
      insert(cs.line, p.ts, plotValue(p.value));
      continue;
    }
    insert(cs.line, p.ts, plotValue(p.avg));
    insert(cs.low, p.ts, plotValue(p.min));
    insert(cs.high, p.ts, plotValue(p.max));
  }
}

// A live reading, for a raw range (bucketed ones fetch their newest buckets instead).
export function addReading(cs, ts, value) {
  if (cs.low) throw new Error("live readings go into raw charts only");
  insert(cs.line, ts, value);
}

// [ts, line] or [ts, line, min, max]: uPlot's data.
export function chartData(cs) {
  return [cs.line.ts, ...parts(cs).map((s) => s.values)];
}

export function trimChartSeries(cs, t) {
  for (const s of parts(cs)) trimBefore(s, t);
}

export function clearChartSeries(cs) {
  for (const s of parts(cs)) clear(s);
}
