// A device view's alert history: the device's alerts over the view's range (at least the last 7
// days), newest first, from GET /api/alerts, kept current by the live channel's alert messages.
// Each row: severity, rule, metric, value, state, when it started and resolved, its acknowledgement;
// one still firing has the admin's Acknowledge and Silence. Everything from the server goes in as text.

import { ackLabel, alertValue, historyQuery, historyWindow, overlaps, upsertAlert } from "./alerts.js";
import { alertActions } from "./alertactions.js";
import { el } from "./dom.js";

const COLUMNS = ["Severity", "Rule", "Metric", "Value", "State", "Started", "Resolved", "Acknowledged", ""];

export function makeAlertHistory(ctx, deviceId) {
  const section = el("section", "alert-history");
  const info = el("p", "muted history-info");
  info.setAttribute("aria-live", "polite");
  const table = el("table", "history");
  const head = el("tr");
  for (const name of COLUMNS) head.append(el("th", "", name));
  const body = el("tbody");
  table.append(el("thead"), body);
  table.tHead.append(head);
  section.append(el("h2", "", "Alerts"), info, table);
  const h = { ctx, deviceId, list: [], window: null, sliding: false, seq: 0, info, table, body };

  return {
    element: section,
    // `shown`: the range on screen ({start, end, sliding}).
    load: (shown) => load(h, shown),
    // An alert from the live channel, or the answer to an acknowledgement.
    onAlert(a) {
      if (a.device !== deviceId || !h.window) return;
      const window = h.sliding ? { start: h.window.start, end: Infinity } : h.window;
      if (!overlaps(a, window)) return;
      h.list = upsertAlert(h.list, a);
      draw(h);
    },
  };
}

async function load(h, shown) {
  const seq = ++h.seq;
  h.window = historyWindow(shown);
  h.sliding = Boolean(shown.sliding);
  h.info.textContent = "Loading alerts…";
  h.info.classList.remove("error");
  try {
    const answer = await h.ctx.api.alerts(historyQuery(h.deviceId, h.window));
    if (seq !== h.seq) return;
    h.list = [];
    for (const a of answer.alerts) h.list = upsertAlert(h.list, a);
    draw(h);
  } catch (err) {
    if (seq !== h.seq) return;
    h.info.textContent = `Could not load the alerts: ${err.message}`;
    h.info.classList.add("error");
  }
}

function draw(h) {
  const time = (ms) => (ms === null || ms === undefined ? "" : new Date(ms).toLocaleString());
  const from = new Date(h.window.start).toLocaleString();
  h.info.textContent = h.list.length ? `Since ${from}:` : `No alerts since ${from}.`;
  h.table.hidden = h.list.length === 0;
  const now = Date.now();
  h.body.replaceChildren(
    ...h.list.map((a) => {
      const tr = el("tr", "alert");
      tr.dataset.alert = String(a.id);
      tr.dataset.severity = a.severity;
      tr.dataset.state = a.state;
      const actions = el("td");
      if (a.state === "firing") actions.append(alertActions(h.ctx, a, (answer) => h.ctx.onAlertChanged(answer)));
      tr.append(
        cell("sev-cell", el("span", "sev", a.severity)),
        el("td", "alert-rule", a.rule_name || a.rule),
        el("td", "alert-metric", a.metric || "no data"),
        el("td", "alert-value", alertValue(a)),
        el("td", "alert-state", a.state),
        el("td", "alert-since", time(a.since)),
        el("td", "alert-resolved", time(a.resolved_at)),
        el("td", "alert-ack", ackLabel(a, now, time)),
        actions,
      );
      return tr;
    }),
  );
}

function cell(className, child) {
  const td = el("td", className);
  td.append(child);
  return td;
}
