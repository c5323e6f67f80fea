// alerts.js: the set of alerts firing, fed by live messages and the HTTP API's list, and what the
// banner, the cards and a device's history show of it.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  HISTORY_SPAN, SEVERITIES, SILENCE_HOURS, ackLabel, alertValue, applyAlertMessage, bannerRows, beginSync, byNewest,
  deviceSummary, endSync, firingNewestFirst, historyQuery, historyWindow, makeAlerts, overlaps, severityRank,
  silenceUntil, upsertAlert,
} from "../../../dashboard/js/alerts.js";

const alert = (id, over = {}) => ({
  id, rule: "r_1", rule_name: "freezer warm", severity: "warning", device: "freezer-1", metric: "temperature",
  state: "firing", since: 1000 * id, value: -4.5, ts: 1000 * id, resolved_at: null, acked: false, acked_at: null,
  silenced_until: null, ...over,
});
const msg = (event, a) => ({ type: "alert", event, alert: a });

test("severities in rising order", () => {
  assert.deepEqual(SEVERITIES, ["info", "warning", "critical"]);
  assert.ok(severityRank("critical") > severityRank("warning") && severityRank("warning") > severityRank("info"));
});

test("applyAlertMessage: firing and repeat put an alert in, ack updates it, resolved takes it out", () => {
  const s = makeAlerts();
  assert.equal(applyAlertMessage(s, msg("firing", alert(1))), "freezer-1");
  applyAlertMessage(s, msg("repeat", alert(1, { value: -3 })));
  assert.equal(s.firing.get(1).value, -3);
  applyAlertMessage(s, msg("ack", alert(1, { acked: true })));
  assert.equal(s.firing.get(1).acked, true);
  assert.equal(applyAlertMessage(s, msg("resolved", alert(1, { state: "resolved", resolved_at: 9 }))), "freezer-1");
  assert.equal(s.firing.size, 0);
  // Not an alert message: nothing changes.
  assert.equal(applyAlertMessage(s, { type: "alert" }), null);
  assert.equal(applyAlertMessage(s, null), null);
});

test("endSync: the API's list replaces the set, live news during the question wins", () => {
  const s = makeAlerts();
  applyAlertMessage(s, msg("firing", alert(1)));
  applyAlertMessage(s, msg("firing", alert(2, { device: "other" })));
  const token = beginSync(s);
  // While the question is out: 3 fires and 4 resolves (the answer, older, still lists 4 as firing).
  applyAlertMessage(s, msg("firing", alert(3, { device: "d3" })));
  applyAlertMessage(s, msg("resolved", alert(4, { device: "d4", state: "resolved" })));
  const changed = endSync(s, token, [alert(1), alert(4, { device: "d4" }), alert(5, { device: "d5" })]);
  assert.deepEqual([...s.firing.keys()].sort(), [1, 3, 5]);
  // 1 is a new version (the API's), 2 resolved while the page was away, 5 is new; 3 and 4 untouched.
  assert.deepEqual(changed.sort(), ["d5", "freezer-1", "other"]);
  assert.equal(s.sync, null);
});

test("endSync: an answer to an older question changes nothing", () => {
  const s = makeAlerts();
  const old = beginSync(s);
  const fresh = beginSync(s);
  assert.deepEqual(endSync(s, old, [alert(1)]), []);
  assert.equal(s.firing.size, 0);
  endSync(s, fresh, [alert(1)]);
  assert.equal(s.firing.size, 1);
});

test("firingNewestFirst and byNewest: the latest start on top, ids break ties", () => {
  const s = makeAlerts();
  for (const a of [alert(2), alert(3, { since: 500 }), alert(1), alert(4, { since: 2000 })]) applyAlertMessage(s, msg("firing", a));
  assert.deepEqual(firingNewestFirst(s).map((a) => a.id), [4, 2, 1, 3]);
  assert.deepEqual(byNewest([alert(1, { since: 5 }), alert(2, { since: 5 })]).map((a) => a.id), [2, 1]);
});

test("deviceSummary: the count and the worst severity of a device's firing alerts", () => {
  const s = makeAlerts();
  assert.equal(deviceSummary(s, "freezer-1"), null);
  applyAlertMessage(s, msg("firing", alert(1, { severity: "info" })));
  applyAlertMessage(s, msg("firing", alert(2, { severity: "critical" })));
  applyAlertMessage(s, msg("firing", alert(3, { severity: "warning" })));
  applyAlertMessage(s, msg("firing", alert(4, { device: "other", severity: "info" })));
  assert.deepEqual(deviceSummary(s, "freezer-1"), { count: 3, worst: "critical" });
  assert.deepEqual(deviceSummary(s, "other"), { count: 1, worst: "info" });
});

test("bannerRows: a few rows, the rest folded; one extra row is shown rather than folded", () => {
  const list = [1, 2, 3, 4, 5, 6].map((id) => alert(id));
  assert.deepEqual(bannerRows(list, false, 3).shown.map((a) => a.id), [1, 2, 3]);
  assert.equal(bannerRows(list, false, 3).more, 3);
  assert.deepEqual(bannerRows(list, true, 3), { shown: list, more: 0 });
  assert.deepEqual(bannerRows(list.slice(0, 4), false, 3), { shown: list.slice(0, 4), more: 0 });
  assert.equal(bannerRows(list, false).shown.length, 3);
});

test("historyWindow and historyQuery: the range, or the 7 days up to its end when shorter", () => {
  assert.equal(HISTORY_SPAN, 7 * 86400000);
  const end = 100 * 86400000;
  assert.deepEqual(historyWindow({ start: end - 3600000, end }), { start: end - HISTORY_SPAN, end });
  assert.deepEqual(historyWindow({ start: end - 30 * 86400000, end }), { start: end - 30 * 86400000, end });
  const q = historyQuery("freezer/1", { start: 5, end: 9 });
  assert.equal(q.toString(), "device=freezer%2F1&start=5&end=9");
});

test("upsertAlert: a newer version replaces the old one, in newest-first order", () => {
  let list = [];
  list = upsertAlert(list, alert(1));
  list = upsertAlert(list, alert(2));
  list = upsertAlert(list, alert(1, { state: "resolved", resolved_at: 5000 }));
  assert.deepEqual(list.map((a) => [a.id, a.state]), [[2, "firing"], [1, "resolved"]]);
});

test("overlaps: started before the end and not resolved before the start", () => {
  const w = { start: 100, end: 200 };
  assert.ok(overlaps(alert(1, { since: 50, resolved_at: null }), w));
  assert.ok(overlaps(alert(1, { since: 50, resolved_at: 150 }), w));
  assert.ok(!overlaps(alert(1, { since: 50, resolved_at: 90 }), w));
  assert.ok(!overlaps(alert(1, { since: 250 }), w));
  assert.ok(overlaps(alert(1, { since: 250 }), { start: 100, end: Infinity }));
});

test("ackLabel: acknowledged, silenced until a time while the silence lasts", () => {
  const time = (ms) => `t${ms}`;
  assert.equal(ackLabel(alert(1), 0, time), "");
  assert.equal(ackLabel(alert(1, { acked: true }), 0, time), "acknowledged");
  assert.equal(ackLabel(alert(1, { acked: true, silenced_until: 50 }), 10, time), "silenced until t50");
  assert.equal(ackLabel(alert(1, { acked: true, silenced_until: 50 }), 60, time), "acknowledged");
});

test("silenceUntil: 1, 8 or 24 hours from now", () => {
  assert.deepEqual(SILENCE_HOURS, [1, 8, 24]);
  assert.equal(silenceUntil(8, 1000), 1000 + 8 * 3600000);
});

test("alertValue: with the metric's unit, bare without a metric, empty without a value", () => {
  assert.equal(alertValue(alert(1, { value: -4.5 })), "-4.5 °C");
  assert.equal(alertValue(alert(1, { metric: null, value: 3 })), "3");
  assert.equal(alertValue(alert(1, { metric: null, value: null })), "");
});
