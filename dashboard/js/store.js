// What the page knows about every device, fed by the live channel and the HTTP API. Pure: each
// apply* function changes the state and says which device changed; drawing happens elsewhere.

import { insertLatestPerBucket, makeSeries, plotValue, trimBefore } from "./series.js";

export const SPARK_WINDOW = 10 * 60 * 1000;
// Sparklines keep the newest reading per 5 s: 120 points for the window, at any reading rate.
export const SPARK_BUCKET = 5000;
export const SPARK_POINTS = SPARK_WINDOW / SPARK_BUCKET + 8;

export function makeStore() {
  return { devices: new Map() };
}

function device(store, id) {
  let d = store.devices.get(id);
  if (!d) {
    d = { id, name: id, online: false, lastSeen: null, fw: null, intervalMs: null, latest: {}, spark: new Map() };
    store.devices.set(id, d);
  }
  return d;
}

function setLatest(d, metric, ts, value) {
  const old = d.latest[metric];
  if (!old || ts >= old.ts) d.latest[metric] = { ts, value };
}

function spark(d, metric) {
  let s = d.spark.get(metric);
  if (!s) {
    s = makeSeries(SPARK_POINTS);
    d.spark.set(metric, s);
  }
  return s;
}

// {"type":"snapshot"}: the whole truth at (re)connect; devices no longer listed were removed.
export function applySnapshot(store, msg) {
  const seen = new Set();
  for (const item of msg.devices) {
    const d = device(store, item.id);
    seen.add(item.id);
    d.name = item.name || item.id;
    d.online = Boolean(item.online);
    d.lastSeen = item.last_seen ?? null;
    for (const [metric, point] of Object.entries(item.latest || {})) {
      setLatest(d, metric, point.ts, point.value);
      insertLatestPerBucket(spark(d, metric), point.ts, plotValue(point.value), SPARK_BUCKET);
    }
  }
  keepOnly(store, seen);
  return [...store.devices.keys()];
}

// A full listing is the truth: devices it does not name were removed.
function keepOnly(store, ids) {
  for (const id of [...store.devices.keys()]) if (!ids.has(id)) store.devices.delete(id);
}

// {"type":"telemetry"}: readings just committed. `now` is when they arrived.
export function applyTelemetry(store, msg, now) {
  const d = device(store, msg.device);
  for (const reading of msg.data) {
    for (const [metric, value] of Object.entries(reading.values)) {
      setLatest(d, metric, reading.ts, value);
      insertLatestPerBucket(spark(d, metric), reading.ts, plotValue(value), SPARK_BUCKET);
    }
  }
  d.online = true;
  d.lastSeen = now;
  return d.id;
}

// {"type":"status"}
export function applyStatus(store, msg) {
  const d = device(store, msg.device);
  d.online = Boolean(msg.online);
  if (msg.ts) d.lastSeen = Math.max(d.lastSeen ?? 0, msg.ts);
  return d.id;
}

// GET /api/devices: names, firmware and interval; new devices appear, removed ones go.
export function applyDeviceList(store, list) {
  const seen = new Set();
  for (const item of list) {
    const d = device(store, item.id);
    seen.add(item.id);
    d.name = item.name || item.id;
    d.fw = item.fw ?? null;
    d.intervalMs = item.interval_ms ?? null;
    if (item.last_seen && (!d.lastSeen || item.last_seen > d.lastSeen)) d.lastSeen = item.last_seen;
    d.online = Boolean(item.online);
  }
  keepOnly(store, seen);
}

export function removeDevice(store, id) {
  store.devices.delete(id);
}

// GET /api/devices/{id}/telemetry: what the live channel did not bring (before the page opened, or
// while its socket was down). Bucket averages (`aggregated`) draw the sparkline but are not a
// device's latest value.
export function applyHistory(store, id, answer, aggregated = false) {
  const d = store.devices.get(id);
  if (!d) return null;
  for (const [metric, points] of Object.entries(answer)) {
    const s = spark(d, metric);
    for (const p of points) {
      insertLatestPerBucket(s, p.ts, plotValue(p.value), SPARK_BUCKET);
      if (!aggregated) setLatest(d, metric, p.ts, p.value);
    }
  }
  return id;
}

// The newest reading the page holds for a device: a refill asks the server for what came after.
export function newestTs(d) {
  let newest = null;
  for (const s of d.spark.values()) {
    const t = s.ts.length ? s.ts[s.ts.length - 1] : null;
    if (t !== null && (newest === null || t > newest)) newest = t;
  }
  return newest;
}

export function trimSparks(d, now) {
  for (const s of d.spark.values()) trimBefore(s, now - SPARK_WINDOW);
}

export function sortedDevices(store) {
  return [...store.devices.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}
