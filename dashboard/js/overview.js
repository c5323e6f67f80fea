// The overview: one card per device with its status, last contact, alerts firing, latest values
// and a sparkline per metric. Cards are built once and then only their changed parts are touched.

import { deviceSummary } from "./alerts.js";
import { button, el } from "./dom.js";
import { formatAgo, formatValue } from "./format.js";
import { cardStep, stepText } from "./rollouts.js";
import { SPARK_WINDOW, sortedDevices, trimSparks } from "./store.js";
import { describeSparkline, drawSparkline } from "./sparkline.js";

// Sparklines are redrawn at most this often per card (the values beside them, every frame).
const SPARK_REDRAW_MS = 250;

// Writing the same text again still costs a layout; only changes are written.
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function mountOverview(root, ctx) {
  const o = { ctx, cards: new Map(), ...layout(root, ctx) };
  return {
    // `ids`: devices that changed since the last frame; null: everything.
    render(ids) {
      const now = Date.now();
      const color = ctx.theme.colors().accent;
      const joinedOrLeft = ids === null || ids.some((id) => !o.cards.has(id) || !ctx.store.devices.has(id));
      if (joinedOrLeft) arrange(o);
      for (const id of ids === null ? ctx.store.devices.keys() : ids) {
        const d = ctx.store.devices.get(id);
        if (d) drawCard(cardOf(o, d), d, now, color, ctx);
      }
      showCounts(o);
    },
    destroy() {},
  };
}

function layout(root, ctx) {
  root.replaceChildren();
  const head = el("div", "overview-head");
  const title = el("h1", "", "Devices");
  const count = el("span", "muted count");
  const add = button("Add device", "admin-only");
  add.addEventListener("click", () => ctx.admin.openAddDevice());
  head.append(title, count, add);
  const grid = el("div", "grid");
  grid.setAttribute("aria-live", "off");
  const empty = el("div", "empty");
  empty.innerHTML =
    "<p><strong>No devices yet.</strong></p>" +
    "<p>Register one with <code>pulsewire device add ID</code> (or <em>Add device</em> with the admin key), " +
    "flash it with <code>pulsewire flash</code>, or start simulated ones with <code>pulsewire serve --simulate 3</code>.</p>";
  root.append(head, empty, grid);
  return { grid, empty, count };
}

function cardOf(o, d) {
  let c = o.cards.get(d.id);
  if (c) return c;
  const a = el("a", "card");
  a.href = `#/device/${encodeURIComponent(d.id)}`;
  a.dataset.device = d.id;
  const top = el("div", "card-top");
  const name = el("h2", "name");
  const status = el("span", "status");
  const badge = el("span", "alert-badge");
  badge.hidden = true;
  badge.setAttribute("role", "img");
  top.append(el("span", "dot"), name, badge, status);
  const seen = el("p", "seen muted");
  const fw = el("span", "fw-version");
  const step = el("span", "rollout-step");
  const firmware = el("p", "firmware muted");
  firmware.append(fw, step);
  const list = el("ul", "metrics");
  a.append(top, seen, firmware, list);
  c = { a, name, status, badge, seen, fw, step, list, rows: new Map(), drawnAt: -Infinity };
  o.cards.set(d.id, c);
  return c;
}

function rowOf(c, metric) {
  let r = c.rows.get(metric);
  if (r) return r;
  const li = el("li");
  li.dataset.metric = metric;
  const name = el("span", "metric", metric);
  name.title = metric; // a long name is cut on the card
  const value = el("span", "value");
  const canvas = el("canvas", "spark");
  canvas.setAttribute("role", "img");
  li.append(name, value, canvas);
  r = { li, value, canvas, drawn: false };
  c.rows.set(metric, r);
  const order = [...c.rows.keys()].sort();
  c.list.replaceChildren(...order.map((m) => c.rows.get(m).li));
  return r;
}

function drawCard(c, d, now, color, ctx) {
  setText(c.name, d.name);
  drawBadge(c.badge, deviceSummary(ctx.alerts, d.id));
  drawFirmware(c, d, cardStep(ctx.rollouts, d.id, now));
  c.a.classList.toggle("offline", !d.online);
  setText(c.status, d.online ? "online" : "offline");
  setText(c.seen, `last seen ${formatAgo(d.lastSeen, now)}`);
  // Values change every frame at high rates; the sparklines, drawn over ten minutes, need not.
  const slow = now - c.drawnAt >= SPARK_REDRAW_MS;
  if (slow) {
    c.drawnAt = now;
    c.seen.title = d.lastSeen ? new Date(d.lastSeen).toLocaleString() : "";
    trimSparks(d, now);
  }
  for (const [metric, point] of Object.entries(d.latest)) {
    const r = rowOf(c, metric);
    setText(r.value, formatValue(metric, point.value));
    const s = d.spark.get(metric);
    if (!s || (!slow && r.drawn)) continue;
    r.drawn = true;
    r.value.title = new Date(point.ts).toLocaleString();
    drawRowSparkline(r, metric, s, now, color);
  }
}

// The version the device runs and, while it is in a rollout, its step there.
function drawFirmware(c, d, step) {
  setText(c.fw, d.fw ? `firmware ${d.fw}` : "firmware unknown");
  const text = step ? `→ ${step.version}: ${stepText(step)}` : "";
  setText(c.step, text);
  c.step.hidden = !step;
  if (step && c.step.dataset.step !== step.step) c.step.dataset.step = step.step;
  if (c.step.title !== text) c.step.title = text; // a long reason is cut on the card
}

// While alerts fire on the device: how many, in the colour of the worst.
function drawBadge(badge, summary) {
  badge.hidden = !summary;
  if (!summary) return;
  if (badge.dataset.severity !== summary.worst) badge.dataset.severity = summary.worst;
  setText(badge, String(summary.count));
  const label = `${summary.count} ${summary.count === 1 ? "alert" : "alerts"} firing, worst ${summary.worst}`;
  if (badge.title !== label) {
    badge.title = label;
    badge.setAttribute("aria-label", label);
  }
}

function drawRowSparkline(r, metric, s, now, color) {
  // A device seen for a minute fills the width with that minute, not a sliver of ten.
  const from = s.ts.length > 1 ? Math.max(now - SPARK_WINDOW, s.ts[0]) : now - SPARK_WINDOW;
  drawSparkline(r.canvas, s, from, now, color);
  const label = describeSparkline(metric, s);
  if (r.canvas.getAttribute("aria-label") !== label) r.canvas.setAttribute("aria-label", label);
}

// Cards in name order; cards of devices that are gone are dropped.
function arrange(o) {
  const devices = sortedDevices(o.ctx.store);
  for (const id of [...o.cards.keys()]) {
    if (!o.ctx.store.devices.has(id)) {
      o.cards.get(id).a.remove();
      o.cards.delete(id);
    }
  }
  const nodes = devices.map((d) => cardOf(o, d).a);
  const current = [...o.grid.children];
  if (nodes.length !== current.length || nodes.some((n, i) => n !== current[i])) o.grid.replaceChildren(...nodes);
  o.empty.hidden = devices.length > 0;
}

function showCounts(o) {
  let online = 0;
  for (const d of o.ctx.store.devices.values()) if (d.online) online += 1;
  const total = o.ctx.store.devices.size;
  o.count.textContent = total ? `${online} of ${total} online` : "";
}
