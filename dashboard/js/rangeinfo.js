// The line under the range buttons: what the charts show (raw readings or the server's bucket
// averages, how many, and from which stored resolution) and whether they follow the clock. Pure.

import { formatCount, formatDuration } from "./format.js";
import { describeResolution } from "./resolution.js";

// `charts`: each chart's points ({ts, capacity}); `rawCap`: the most points a raw chart keeps;
// `served`: what served the answer (resolution.js), null when the server did not say.
export function describeRange(p, charts, paused, rawCap, served = null) {
  if (!charts.length) return "No readings stored for this device yet.";
  let total = 0;
  for (const s of charts) total += s.ts.length;
  const { source, note } = describeResolution(p.interval ? served : null);
  const what = p.interval
    ? `${formatCount(total)} points, ${formatDuration(p.interval)} averages computed by the server${source}`
    : `${formatCount(total)} readings`;
  const live = !p.sliding ? "fixed range" : paused ? "paused" : "live";
  const full = !p.interval && charts.some((s) => s.ts.length >= s.capacity);
  const cap = full ? ` · the newest ${formatCount(rawCap)} per chart (pick a longer range for all of it)` : "";
  return `${what}${cap}${note ? ` · ${note}` : ""} · ${live}`;
}
