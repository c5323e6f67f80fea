// What the page knows about alerts: the set firing now, kept by the live channel's alert messages
// and the HTTP API's list, and what each view shows of it. Pure: no DOM, so it is tested under Node.
// An alert is the JSON of docs/protocol.md (alerts): id, rule_name, severity, device, metric,
// state, since, value, resolved_at, acked, silenced_until.

import { formatNumber, formatValue } from "./format.js";

export const SEVERITIES = ["info", "warning", "critical"];
// The history in a device view covers at least this much (its range when longer).
export const HISTORY_SPAN = 7 * 86400000;
// Silence choices, in hours.
export const SILENCE_HOURS = [1, 8, 24];

export function makeAlerts() {
  // sync: while a list from the HTTP API is on its way, the ids live messages touched meanwhile.
  return { firing: new Map(), sync: null };
}

export function severityRank(severity) {
  return SEVERITIES.indexOf(severity);
}

// A live message {"type":"alert","event":...,"alert":{...}} (firing, repeat, resolved or ack):
// the device whose alerts changed, or null when the message is not an alert.
export function applyAlertMessage(state, msg) {
  const a = msg && msg.alert;
  if (!a || a.id === undefined) return null;
  if (state.sync) state.sync.add(a.id);
  if (msg.event === "resolved" || a.state === "resolved") state.firing.delete(a.id);
  else state.firing.set(a.id, a);
  return a.device;
}

// Before asking the HTTP API for the alerts firing now; the answer goes to endSync with the token.
export function beginSync(state) {
  state.sync = new Set();
  return state.sync;
}

// The alerts firing now, from the HTTP API, replace the set; what live messages said since the
// question was sent is newer and stays. Returns the devices whose alerts changed; an answer to an
// older question (a newer one was sent since) changes nothing.
export function endSync(state, token, alerts) {
  if (state.sync !== token) return [];
  state.sync = null;
  const before = new Map(state.firing);
  const next = new Map();
  for (const a of alerts) if (a.state !== "resolved" && !token.has(a.id)) next.set(a.id, a);
  for (const id of token) if (before.has(id)) next.set(id, before.get(id));
  state.firing = next;
  const changed = new Set();
  for (const [id, a] of before) if (next.get(id) !== a) changed.add(a.device);
  for (const [id, a] of next) if (before.get(id) !== a) changed.add(a.device);
  return [...changed];
}

// Newest first: the latest episode start on top (the id breaks ties, newer ids being larger).
export function byNewest(alerts) {
  return [...alerts].sort((x, y) => y.since - x.since || (y.id > x.id ? 1 : y.id < x.id ? -1 : 0));
}

export function firingNewestFirst(state) {
  return byNewest(state.firing.values());
}

// A device's firing alerts: how many, and the worst severity; null when none fires.
export function deviceSummary(state, deviceId) {
  let count = 0;
  let worst = null;
  for (const a of state.firing.values()) {
    if (a.device !== deviceId) continue;
    count += 1;
    if (worst === null || severityRank(a.severity) > severityRank(worst)) worst = a.severity;
  }
  return count ? { count, worst } : null;
}

// The banner shows `limit` rows unless expanded; `more` is how many are folded away.
export function bannerRows(list, expanded, limit = 3) {
  // Folding away a single row would save no room: the "show more" button takes its place.
  if (expanded || list.length <= limit + 1) return { shown: list, more: 0 };
  return { shown: list.slice(0, limit), more: list.length - limit };
}

// The span a device view's history covers: its range, or the last 7 days up to the range's end
// when the range is shorter.
export function historyWindow({ start, end }) {
  return { start: Math.min(start, end - HISTORY_SPAN), end };
}

export function historyQuery(deviceId, window) {
  return new URLSearchParams({ device: deviceId, start: String(window.start), end: String(window.end) });
}

// A history list (newest first) with `alert` put in its place, a newer version replacing the old.
export function upsertAlert(list, alert) {
  return byNewest([...list.filter((a) => a.id !== alert.id), alert]);
}

// Whether an alert overlaps a window: it started before the end and had not resolved by the start.
export function overlaps(alert, { start, end }) {
  return alert.since <= end && (alert.resolved_at === null || alert.resolved_at === undefined || alert.resolved_at >= start);
}

// The acknowledgement, in words: "" when none, "acknowledged", or "silenced until <time>" while
// a silence lasts (`time` writes a moment).
export function ackLabel(alert, now, time) {
  if (alert.silenced_until && alert.silenced_until > now) return `silenced until ${time(alert.silenced_until)}`;
  return alert.acked ? "acknowledged" : "";
}

// When a silence of `hours` from now ends: the `until` of POST /api/alerts/{id}/ack.
export function silenceUntil(hours, now) {
  return now + hours * 3600000;
}

// The value that fired, with the metric's unit when there is one ("" for none: no data).
export function alertValue(a) {
  if (a.value === null || a.value === undefined) return "";
  return a.metric ? formatValue(a.metric, a.value) : formatNumber(a.value);
}
