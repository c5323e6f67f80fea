// The line under the range buttons: what the charts show (raw readings or the server's bucket
// averages, how many) and whether they follow the clock. Pure.

import { formatCount, formatDuration } from "./format.js";

// `charts`: each chart's points ({ts, capacity}); `rawCap`: the most points a raw chart keeps.
export function describeRange(p, charts, paused, rawCap) {
  if (!charts.length) return "No readings stored for this device yet.";
  let total = 0;
  for (const s of charts) total += s.ts.length;
  const what = p.interval
    ? `${formatCount(total)} points, ${formatDuration(p.interval)} averages computed by the server`
    : `${formatCount(total)} readings`;
  const live = !p.sliding ? "fixed range" : paused ? "paused" : "live";
  const full = !p.interval && charts.some((s) => s.ts.length >= s.capacity);
  const cap = full ? ` · the newest ${formatCount(rawCap)} per chart (pick a longer range for all of it)` : "";
  return `${what}${cap} · ${live}`;
}
