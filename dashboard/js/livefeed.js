// Live readings for a device view: taken out of a live-channel message, and held while the view
// is paused, to be drawn on resume. Past a limit nothing more is held: the range is loaded again
// instead. Pure.

import { plotValue } from "./series.js";

// [metric, ts, value to draw] for every value of a telemetry message.
export function readingsOf(msg) {
  const out = [];
  for (const reading of msg.data) {
    for (const [metric, value] of Object.entries(reading.values)) out.push([metric, reading.ts, plotValue(value)]);
  }
  return out;
}

export function makeHold(limit) {
  return { items: [], limit };
}

// Once more than `limit` readings came, the hold keeps none (items is null).
export function hold(h, reading) {
  if (h.items === null) return;
  h.items.push(reading);
  if (h.items.length > h.limit) h.items = null;
}

// What was held (null: too many; load the range again), and the hold starts empty.
export function release(h) {
  const items = h.items;
  h.items = [];
  return items;
}
