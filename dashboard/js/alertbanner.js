// The banner of alerts firing now, under the page's header on every view: newest first, each with
// its severity, rule, device, metric, value and how long ago it started; folded to a few rows when
// many fire. Everything from the server goes in as text. Rows are built once per version of an
// alert; every second only the "started ... ago" texts change.

import { ackLabel, alertValue, bannerRows, firingNewestFirst } from "./alerts.js";
import { alertActions } from "./alertactions.js";
import { button, el } from "./dom.js";
import { formatAgo, formatCount } from "./format.js";

export function makeAlertBanner(section, ctx, onAcked) {
  const title = el("h2", "alert-title");
  const list = el("ul", "alert-list");
  const more = button("", "link alert-more");
  section.replaceChildren(title, list, more);
  const b = { ctx, list, rows: new Map(), expanded: false, onAcked };
  more.addEventListener("click", () => {
    b.expanded = !b.expanded;
    render();
  });

  function render() {
    const all = firingNewestFirst(ctx.alerts);
    section.hidden = all.length === 0;
    title.textContent = all.length === 1 ? "1 alert firing" : `${formatCount(all.length)} alerts firing`;
    const { shown, more: folded } = bannerRows(all, b.expanded);
    more.hidden = !folded && !b.expanded;
    more.textContent = folded ? `Show ${formatCount(folded)} more` : "Show fewer";
    more.setAttribute("aria-expanded", String(b.expanded));
    const nodes = shown.map((a) => rowOf(b, a).li);
    for (const id of [...b.rows.keys()]) if (!shown.some((a) => a.id === id)) b.rows.delete(id);
    const current = [...list.children];
    if (nodes.length !== current.length || nodes.some((n, i) => n !== current[i])) list.replaceChildren(...nodes);
    tick(Date.now());
  }

  function tick(now) {
    for (const r of b.rows.values()) {
      const text = `started ${formatAgo(r.alert.since, now)}`;
      if (r.since.textContent !== text) r.since.textContent = text;
      const ack = ackLabel(r.alert, now, (ms) => new Date(ms).toLocaleString());
      if (r.ack.textContent !== ack) r.ack.textContent = ack;
    }
  }

  return { render, tick };
}

function rowOf(b, a) {
  const known = b.rows.get(a.id);
  if (known && known.alert === a) return known;
  const li = el("li", "alert");
  li.dataset.alert = String(a.id);
  li.dataset.severity = a.severity;
  const device = el("a", "alert-device", a.device);
  device.href = `#/device/${encodeURIComponent(a.device)}`;
  const since = el("span", "alert-since muted");
  since.title = new Date(a.since).toLocaleString();
  const ack = el("span", "alert-ack muted");
  li.append(
    el("span", "sev", a.severity),
    el("strong", "alert-rule", a.rule_name || a.rule),
    device,
    el("span", "alert-metric", a.metric || "no data"),
    el("span", "alert-value", alertValue(a)),
    since,
    ack,
    alertActions(b.ctx, a, b.onAcked),
  );
  const r = { li, alert: a, since, ack };
  b.rows.set(a.id, r);
  return r;
}
