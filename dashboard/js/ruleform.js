// Alert rules and notification channels between their forms and the HTTP API's bodies
// (docs/protocol.md, alerts), and in words for their lists. Pure: no DOM, so it is tested under Node.
// The server checks every body and says what is wrong (a 400's detail, shown by the form); these
// functions only carry what was typed, so its words are what the admin reads.

import { formatDuration } from "./format.js";

export const COMPARISONS = [">", ">=", "<", "<="];
export const BANDS = ["outside", "inside"];
export const KINDS = ["threshold", "no_data"];

// A number field's text as a number; empty or not a number: null, which the server refuses by name.
function number(text) {
  const t = String(text ?? "").trim();
  const n = Number(t);
  return t === "" || !Number.isFinite(n) ? null : n;
}

// A duration field: empty means 0 (at once; notify once), as in the API.
function seconds(text) {
  return String(text ?? "").trim() === "" ? 0 : number(text);
}

// `f`: the form's values as text ({name, kind, device, metric, op, value, low, high, for_s,
// repeat_s, severity}) and `channels`, the ids ticked.
export function ruleBody(f, channels) {
  const metric = String(f.metric ?? "").trim();
  const body = {
    name: String(f.name ?? "").trim(),
    kind: f.kind,
    device: String(f.device ?? "").trim(),
    metric: metric === "" && f.kind === "no_data" ? null : metric,
    for_s: seconds(f.for_s),
    repeat_s: seconds(f.repeat_s),
    severity: f.severity,
    channels: [...channels],
  };
  if (f.kind !== "threshold") return body;
  body.op = f.op;
  if (BANDS.includes(f.op)) {
    body.low = number(f.low);
    body.high = number(f.high);
  } else {
    body.value = number(f.value);
  }
  return body;
}

// A stored rule as the form's values (the inverse of ruleBody).
export function ruleFields(rule) {
  const text = (v) => (v === null || v === undefined ? "" : String(v));
  return {
    name: rule.name,
    kind: rule.kind,
    device: rule.device,
    metric: text(rule.metric),
    op: rule.op || ">",
    value: text(rule.value),
    low: text(rule.low),
    high: text(rule.high),
    for_s: text(rule.for_s),
    repeat_s: text(rule.repeat_s),
    severity: rule.severity,
  };
}

// "temperature > -10 for 5 min on freezer-1, again every 1 h"
export function describeRule(rule) {
  const where = rule.device === "*" ? "on every device" : `on ${rule.device}`;
  let what;
  if (rule.kind === "no_data") what = rule.metric ? `no ${rule.metric}` : "no data";
  else if (BANDS.includes(rule.op)) what = `${rule.metric} ${rule.op} ${rule.low}..${rule.high}`;
  else what = `${rule.metric} ${rule.op} ${rule.value}`;
  const parts = [rule.for_s ? `${what} for ${formatDuration(rule.for_s * 1000)}` : what, where];
  if (rule.repeat_s) parts.push(`again every ${formatDuration(rule.repeat_s * 1000)}`);
  return parts.join(", ");
}

// `f`: {type, name, url, secret, to}; `to` holds addresses apart by commas, spaces or lines.
export function channelBody(f) {
  const name = String(f.name ?? "").trim();
  if (f.type === "email") {
    const to = String(f.to ?? "").split(/[\s,;]+/).filter(Boolean);
    return { name, type: "email", to };
  }
  return { name, type: "webhook", url: String(f.url ?? "").trim(), secret: String(f.secret ?? "") };
}

export function describeChannel(ch) {
  return ch.type === "email" ? `email to ${(ch.to || []).join(", ")}` : `webhook ${ch.url}`;
}

// The answer of POST /api/channels/{id}/test ({delivered, status, detail}) in words; the status is
// the receiver's: an HTTP status for a webhook, an SMTP reply code for an email.
export function testOutcome(r, type) {
  const protocol = type === "email" ? "SMTP" : "HTTP";
  const status = r.status === null || r.status === undefined ? "" : ` (${protocol} ${r.status})`;
  const detail = r.detail ? `: ${r.detail}` : "";
  return r.delivered ? `Delivered${status}${detail}` : `Not delivered${status}${detail}`;
}
