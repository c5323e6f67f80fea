// One device: a chart per metric over a chosen time range, history from the HTTP API and live
// readings on top, pause/resume, CSV of what is shown, and the admin's actions on the device.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { button, el } from "./dom.js";
import { formatAgo, formatCount, formatDuration, formatValue } from "./format.js";
import { DEFAULT_RANGE, RANGES, customRange, plan, queryParams, rangeById, truncated } from "./ranges.js";
import { clear, insert, makeSeries, plotValue, trimBefore } from "./series.js";

// Points kept per metric for a raw range; at high rates the newest are kept and the view says so.
const LIVE_POINTS = 20000;
// Long ranges are drawn from buckets; their newest buckets are fetched again at most this often.
const TAIL_REFRESH_MS = 5000;
const CHART_HEIGHT = 200;

// "2026-11-21T14:05" in local time, as <input type="datetime-local"> wants it.
function localInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 16);
}

export function rangeFromQuery(query, now) {
  if (query.get("start")) {
    const start = Number(query.get("start"));
    const end = Number(query.get("end")) || now;
    if (Number.isFinite(start) && start < end) return { id: "custom", label: "custom", start, end, span: end - start };
  }
  return rangeById(query.get("range")) || rangeById(DEFAULT_RANGE);
}

export function mountDeviceView(root, ctx, deviceId, query) {
  const { api, store, admin, theme } = ctx;
  let range = rangeFromQuery(query, Date.now());
  let current = null; // the plan the charts show
  let paused = false;
  let frozenAt = null;
  let loadSeq = 0;
  let tailBusy = false;
  let pending = []; // live readings that came while paused; null once too many to keep
  let lastTail = 0;
  const series = new Map();
  const charts = new Map();

  // Layout
  root.replaceChildren();
  const back = el("a", "back", "← All devices");
  back.href = "#/";
  const head = el("div", "device-head");
  const dot = el("span", "dot");
  const title = el("h1", "name", deviceId);
  const status = el("span", "status");
  const facts = el("p", "facts muted");
  head.append(dot, title, status);

  const toolbar = el("div", "toolbar");
  const picker = el("div", "ranges");
  picker.setAttribute("role", "group");
  picker.setAttribute("aria-label", "Time range");
  const rangeButtons = new Map();
  for (const r of [...RANGES, { id: "custom", label: "Custom…" }]) {
    const b = button(r.label);
    b.dataset.range = r.id;
    b.addEventListener("click", () => (r.id === "custom" ? openCustom() : choose(r)));
    rangeButtons.set(r.id, b);
    picker.append(b);
  }
  const pauseButton = button("Pause", "pause");
  pauseButton.addEventListener("click", () => setPaused(!paused));
  const csv = el("a", "csv button", "Download CSV");
  csv.setAttribute("download", "");
  // The link is built when clicked, so a sliding range downloads the window on screen at that moment.
  csv.addEventListener("click", () => {
    if (!current) return;
    const shown = { ...windowPlan() };
    // Live readings may have grown a raw range past the limit it was loaded with.
    if (!shown.interval) shown.limit = Math.max(shown.limit, ...[...series.values()].map((s) => s.ts.length));
    csv.href = api.csvHref(deviceId, queryParams(shown));
  });
  toolbar.append(picker, pauseButton, csv);

  const custom = el("form", "custom");
  custom.hidden = true;
  const startInput = el("input");
  startInput.type = "datetime-local";
  startInput.name = "start";
  startInput.setAttribute("aria-label", "Start");
  const endInput = el("input");
  endInput.type = "datetime-local";
  endInput.name = "end";
  endInput.setAttribute("aria-label", "End (empty: now)");
  const apply = el("button", "", "Show");
  apply.type = "submit";
  const customError = el("span", "error");
  custom.append(el("label", "", "From"), startInput, el("label", "", "to"), endInput, apply, customError);
  custom.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      choose(customRange(startInput.value, endInput.value, Date.now()));
      customError.textContent = "";
    } catch (err) {
      customError.textContent = err.message;
    }
  });

  const info = el("p", "range-info muted");
  info.setAttribute("aria-live", "polite");
  const chartsBox = el("div", "charts");

  const actions = el("section", "admin-only device-admin");
  actions.append(el("h2", "", "Admin"));
  const actionRow = el("div", "actions");
  const intervalInput = el("input");
  intervalInput.type = "number";
  intervalInput.min = "0.1";
  intervalInput.step = "any";
  intervalInput.name = "interval";
  intervalInput.setAttribute("aria-label", "Sampling interval in seconds");
  const setInterval_ = button("Set sampling interval");
  const reboot = button("Reboot");
  const rotate = button("Rotate token");
  const remove = button("Remove device", "danger");
  const intervalBox = el("span", "inline");
  intervalBox.append(intervalInput, el("span", "muted", "s"), setInterval_);
  actionRow.append(intervalBox, reboot, rotate, remove);
  const actionStatus = el("p", "action-status muted");
  actionStatus.setAttribute("aria-live", "polite");
  actions.append(actionRow, actionStatus);

  root.append(back, head, facts, toolbar, custom, info, chartsBox, actions);

  // Admin actions
  async function act(label, fn) {
    actionStatus.textContent = `${label}…`;
    actionStatus.classList.remove("error");
    try {
      actionStatus.textContent = await fn();
    } catch (err) {
      actionStatus.textContent = `${label} failed: ${err.message}`;
      actionStatus.classList.add("error");
    }
  }
  setInterval_.addEventListener("click", () => {
    const seconds = Number(intervalInput.value);
    if (!(seconds > 0)) {
      actionStatus.textContent = "Give the sampling interval in seconds, for example 5.";
      actionStatus.classList.add("error");
      return;
    }
    act("Setting the interval", async () => {
      const r = await api.command(deviceId, "set_interval", { ms: Math.round(seconds * 1000) });
      return describeCommand(r, "Interval set");
    });
  });
  reboot.addEventListener("click", async () => {
    if (!(await admin.confirm(`Reboot ${deviceId}?`, "It stops sending for a few seconds while it restarts."))) return;
    act("Rebooting", async () => describeCommand(await api.command(deviceId, "reboot", {}), "Reboot sent"));
  });
  rotate.addEventListener("click", async () => {
    const ok = await admin.confirm(
      `Rotate the token of ${deviceId}?`,
      "The old token stops working at once: the device is disconnected until it has the new one.",
    );
    if (!ok) return;
    act("Rotating the token", async () => {
      const r = await api.rotateToken(deviceId);
      admin.showToken(r.id, r.token, "New token");
      return "Token rotated. The old token no longer works.";
    });
  });
  remove.addEventListener("click", async () => {
    const choice = await admin.confirm(
      `Remove ${deviceId}?`,
      "Its token stops working at once.",
      "Also delete its stored readings",
    );
    if (!choice) return;
    act("Removing", async () => {
      const r = await api.removeDevice(deviceId, choice.checked);
      ctx.onRemoved(deviceId);
      return `Removed${r.purged_readings ? `, with ${formatCount(r.purged_readings)} readings` : ""}.`;
    });
  });

  function describeCommand(r, done) {
    if (r.ok === false) return `The device refused: ${r.detail || "no reason given"}`;
    if (r.status === "queued") return `${done}: the device gets it when it next connects.`;
    return `${done}.`;
  }

  // Range and loading
  function openCustom() {
    custom.hidden = !custom.hidden;
    if (!custom.hidden) {
      const w = current ? windowPlan() : plan(range, Date.now());
      startInput.value = localInput(w.start);
      endInput.value = range.id === "custom" ? localInput(w.end) : "";
      startInput.focus();
    }
  }

  function choose(r) {
    range = r;
    if (r.id !== "custom") custom.hidden = true;
    const q = r.id === "custom" ? `start=${r.start}&end=${r.end}` : `range=${r.id}`;
    history.replaceState(null, "", `#/device/${encodeURIComponent(deviceId)}?${q}`);
    load();
  }

  function markRange() {
    for (const [id, b] of rangeButtons) b.setAttribute("aria-pressed", String(id === range.id));
  }

  // The plan with its window where the charts are now (a sliding range moves with the clock).
  function windowPlan() {
    if (!current.sliding) return current;
    const end = frozenAt ?? Date.now();
    return { ...current, start: end - current.span, end };
  }

  async function load() {
    const seq = ++loadSeq;
    markRange();
    info.textContent = "Loading…";
    info.classList.remove("error");
    let p = plan(range, Date.now());
    try {
      let answer = await api.telemetry(deviceId, queryParams(p));
      if (truncated(p, answer)) {
        p = plan(range, Date.now(), true);
        answer = await api.telemetry(deviceId, queryParams(p));
      }
      if (seq !== loadSeq) return;
      current = p;
      frozenAt = paused && p.sliding ? p.end : null;
      pending = [];
      const capacity = p.interval ? p.limit + 16 : LIVE_POINTS;
      for (const s of series.values()) clear(s);
      for (const [metric, points] of Object.entries(answer)) {
        let s = series.get(metric);
        if (!s) series.set(metric, (s = makeSeries(capacity)));
        s.capacity = capacity;
        for (const pt of points) insert(s, pt.ts, plotValue(pt.value));
      }
      lastTail = Date.now();
      describe();
      rebuildCharts();
    } catch (err) {
      if (seq !== loadSeq) return;
      info.textContent = `Could not load this range: ${err.message}`;
      info.classList.add("error");
      if (err.status === 404) {
        chartsBox.replaceChildren();
        charts.clear();
      }
    }
  }

  function describe() {
    if (!current) return;
    let total = 0;
    for (const s of series.values()) total += s.ts.length;
    const what = current.interval
      ? `${formatCount(total)} points, ${formatDuration(current.interval)} averages computed by the server`
      : `${formatCount(total)} readings`;
    const live = !current.sliding ? "fixed range" : paused ? "paused" : "live";
    const full = !current.interval && [...series.values()].some((s) => s.ts.length >= s.capacity);
    const cap = full ? ` · the newest ${formatCount(LIVE_POINTS)} per chart (pick a longer range for all of it)` : "";
    const text = series.size ? `${what}${cap} · ${live}` : "No readings stored for this device yet.";
    if (info.textContent !== text) info.textContent = text;
  }

  // Charts
  function chartOptions(metric, width) {
    const c = theme.colors();
    const axis = { stroke: c.muted, grid: { stroke: c.grid, width: 1 }, ticks: { stroke: c.grid, width: 1 } };
    return {
      width,
      height: CHART_HEIGHT,
      ms: 1,
      cursor: { drag: { x: true, y: false, setScale: false } },
      legend: { show: true, live: true },
      scales: {
        x: { time: true, range: () => (current ? [windowPlan().start, windowPlan().end] : [0, 1]) },
        // A flat line sits mid-chart with a little room, not on an axis from zero.
        y: {
          range: (u, min, max) => (min === max ? [min - (Math.abs(min) * 0.01 || 1), max + (Math.abs(max) * 0.01 || 1)] : uPlot.rangeNum(min, max, 0.1, true)),
        },
      },
      axes: [axis, { ...axis, size: 64 }],
      series: [
        { label: "time", value: (u, v) => (v == null ? "–" : new Date(v).toLocaleString()) },
        {
          label: metric,
          stroke: c.accent,
          fill: c.fill,
          width: 1.5,
          value: (u, v) => (v == null ? "–" : formatValue(metric, v)),
        },
      ],
      hooks: {
        // Dragging across a chart zooms to that span, loaded at the finer resolution it allows.
        setSelect: [
          (u) => {
            if (u.select.width < 5) return;
            const a = Math.round(u.posToVal(u.select.left, "x"));
            const b = Math.round(u.posToVal(u.select.left + u.select.width, "x"));
            u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
            if (b > a) choose({ id: "custom", label: "custom", start: a, end: b, span: b - a });
          },
        ],
      },
    };
  }

  function chartWidth() {
    return Math.max(200, chartsBox.clientWidth - 2);
  }

  function rebuildCharts() {
    for (const c of charts.values()) c.plot.destroy();
    charts.clear();
    chartsBox.replaceChildren();
    for (const metric of [...series.keys()].sort()) addChart(metric);
    render();
  }

  function addChart(metric) {
    const section = el("section", "chart");
    section.dataset.metric = metric;
    const h = el("h2");
    const name = el("span", "", metric);
    const value = el("span", "value");
    h.append(name, value);
    const box = el("div", "plot");
    section.append(h, box);
    const sorted = [...series.keys()].sort();
    const after = sorted.slice(sorted.indexOf(metric) + 1).map((m) => charts.get(m)?.section).find(Boolean);
    chartsBox.insertBefore(section, after || null);
    const s = series.get(metric);
    const plot = new uPlot(chartOptions(metric, chartWidth()), [s.ts, s.values], box);
    charts.set(metric, { section, value, plot });
  }

  function render() {
    if (!current) return;
    const w = windowPlan();
    const d = store.devices.get(deviceId);
    for (const [metric, s] of series) {
      if (!charts.has(metric)) addChart(metric);
      const c = charts.get(metric);
      const latest = d && d.latest[metric];
      c.value.textContent = latest ? formatValue(metric, latest.value) : "";
      if (paused && c.drawn) continue;
      if (current.sliding) trimBefore(s, w.start - (current.interval || 0));
      c.plot.setData([s.ts, s.values]);
      c.drawn = true;
      const n = s.ts.length;
      c.section.setAttribute(
        "aria-label",
        n ? `${metric}: ${n} points from ${new Date(s.ts[0]).toLocaleString()} to ${new Date(s.ts[n - 1]).toLocaleString()}` : `${metric}: no points in this range`,
      );
      c.section.dataset.points = String(n);
    }
    describe();
  }

  function insertLive(metric, ts, value) {
    let s = series.get(metric);
    if (!s) series.set(metric, (s = makeSeries(LIVE_POINTS)));
    insert(s, ts, value);
  }

  function renderHead() {
    const d = store.devices.get(deviceId);
    const now = Date.now();
    title.textContent = d ? d.name : deviceId;
    document.title = `${d ? d.name : deviceId} · Pulsewire`;
    head.classList.toggle("offline", !d || !d.online);
    status.textContent = !d ? "unknown device" : d.online ? "online" : "offline";
    const parts = [`id ${deviceId}`];
    if (d) {
      parts.push(`last seen ${formatAgo(d.lastSeen, now)}`);
      if (d.fw) parts.push(`firmware ${d.fw}`);
      if (d.intervalMs) parts.push(`sampling every ${formatDuration(d.intervalMs)}`);
    }
    facts.textContent = parts.join(" · ");
  }

  function setPaused(value) {
    paused = value;
    if (!paused) {
      // Readings that came while paused go in now; too many of them, and the range is loaded afresh.
      const held = pending;
      pending = [];
      if (held === null) {
        load();
      } else {
        for (const [metric, ts, v] of held) insertLive(metric, ts, v);
      }
    }
    pauseButton.textContent = paused ? "Resume" : "Pause";
    pauseButton.setAttribute("aria-pressed", String(paused));
    frozenAt = paused && current && current.sliding ? Date.now() : null;
    if (!paused) render();
    describe();
  }

  // Newest buckets of a long range, fetched again: the live stream brings raw readings, and the
  // buckets they fall in are averaged by the server.
  async function refreshTail() {
    if (tailBusy || !current || !current.interval) return;
    tailBusy = true;
    lastTail = Date.now();
    const p = current;
    let newest = p.start;
    for (const s of series.values()) if (s.ts.length) newest = Math.max(newest, s.ts[s.ts.length - 1]);
    const tail = { ...p, start: newest, end: Date.now(), limit: Math.ceil((Date.now() - newest) / p.interval) + 2 };
    try {
      const answer = await api.telemetry(deviceId, queryParams(tail));
      if (p !== current) return;
      for (const [metric, points] of Object.entries(answer)) {
        let s = series.get(metric);
        if (!s) series.set(metric, (s = makeSeries(p.limit + 16)));
        for (const pt of points) insert(s, pt.ts, plotValue(pt.value));
      }
      ctx.mark(deviceId);
    } catch (err) {
      console.warn(`refreshing the newest buckets failed: ${err.message}`);
    } finally {
      tailBusy = false;
    }
  }

  const ro = new ResizeObserver(() => {
    const width = chartWidth();
    for (const c of charts.values()) c.plot.setSize({ width, height: CHART_HEIGHT });
  });
  ro.observe(chartsBox);
  const unTheme = theme.onChange(() => current && rebuildCharts());

  renderHead();
  load();

  return {
    render(ids) {
      if (ids !== null && !ids.includes(deviceId)) return;
      renderHead();
      render();
    },
    // Every second: the window slides, "last seen" ages, and long ranges refresh their newest buckets.
    tick() {
      renderHead();
      if (current && current.sliding && !paused) {
        if (current.interval && Date.now() - lastTail >= TAIL_REFRESH_MS) refreshTail();
        render();
      }
    },
    onTelemetry(msg) {
      if (msg.device !== deviceId || !current || !current.sliding) return;
      if (current.interval) return; // long ranges pick live readings up through refreshTail
      for (const reading of msg.data) {
        for (const [metric, value] of Object.entries(reading.values)) {
          if (!paused) insertLive(metric, reading.ts, plotValue(value));
          else if (pending !== null) pending.push([metric, reading.ts, plotValue(value)]);
        }
      }
      if (pending !== null && pending.length > LIVE_POINTS) pending = null;
    },
    // The live socket came back: what it missed is loaded again from the HTTP API.
    onReconnect() {
      if (current && current.sliding) load();
    },
    adminChanged() {
      const d = store.devices.get(deviceId);
      if (d && d.intervalMs && !intervalInput.value) intervalInput.value = String(d.intervalMs / 1000);
    },
    destroy() {
      loadSeq += 1;
      ro.disconnect();
      unTheme();
      for (const c of charts.values()) c.plot.destroy();
    },
  };
}
