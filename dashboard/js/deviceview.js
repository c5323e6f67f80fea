// One device: a chart per metric over a chosen time range, history from the HTTP API and live
// readings on top, pause/resume, CSV of what is shown, the device's alerts, and the admin's actions
// on the device.
// This module holds the view's state and its loading; the parts it puts together have a module each.

import { makeAlertHistory } from "./alerthistory.js";
import { makeCharts } from "./charts.js";
import { addPoints, addReading, makeChartSeries, trimChartSeries } from "./chartseries.js";
import { makeDeviceAdmin } from "./deviceadmin.js";
import { makeDeviceHead } from "./devicehead.js";
import { el } from "./dom.js";
import { hold, makeHold, readingsOf, release } from "./livefeed.js";
import { describeRange } from "./rangeinfo.js";
import { csvPlan, plan, queryParams, rangeFromQuery, tailPlan, truncated, windowOf } from "./ranges.js";
import { makeToolbar } from "./toolbar.js";

// Points kept per metric for a raw range; at high rates the newest are kept and the view says so.
const LIVE_POINTS = 20000;
// Long ranges are drawn from buckets; their newest buckets are fetched again at most this often.
const TAIL_REFRESH_MS = 5000;

export function mountDeviceView(root, ctx, deviceId, query) {
  const v = {
    ctx,
    deviceId,
    range: rangeFromQuery(query, Date.now()),
    current: null, // the plan the charts show
    served: null, // which stored resolutions served it, when the server says (resolution.js)
    paused: false,
    frozenAt: null, // while paused: where a sliding window stands still
    loadSeq: 0,
    tailBusy: false,
    lastTail: 0,
    held: makeHold(LIVE_POINTS), // live readings that came while paused
    series: new Map(), // metric -> its chart's points (chartseries.js)
  };
  Object.assign(v, layout(v, root)); // the view's parts: head, toolbar, info, charts, alerts, admin
  const unTheme = ctx.theme.onChange(() => v.current && rebuild(v));
  v.head.render(ctx.store.devices.get(deviceId), Date.now());
  load(v);

  return {
    render(ids) {
      if (ids !== null && !ids.includes(deviceId)) return;
      v.head.render(ctx.store.devices.get(deviceId), Date.now());
      render(v);
    },
    // Every second: the window slides, "last seen" ages, and long ranges refresh their newest buckets.
    tick() {
      v.head.render(ctx.store.devices.get(deviceId), Date.now());
      if (!v.current || !v.current.sliding || v.paused) return;
      if (v.current.interval && Date.now() - v.lastTail >= TAIL_REFRESH_MS) refreshTail(v);
      render(v);
    },
    onTelemetry: (msg) => takeLive(v, msg),
    onAlert: (alert) => v.alertHistory.onAlert(alert),
    // The live socket came back: what it missed is loaded again from the HTTP API.
    onReconnect() {
      if (v.current && v.current.sliding) load(v);
    },
    adminChanged: () => v.admin.adminChanged(),
    destroy() {
      v.loadSeq += 1;
      unTheme();
      v.charts.destroy();
    },
  };
}

function layout(v, root) {
  const { ctx, deviceId } = v;
  const back = el("a", "back", "← All devices");
  back.href = "#/";
  const head = makeDeviceHead(deviceId, ctx.rollouts);
  const toolbar = makeToolbar({
    onChoose: (r) => choose(v, r),
    onPause: () => setPaused(v, !v.paused),
    customStart: () => ({ ...(v.current ? shownWindow(v) : plan(v.range, Date.now())), custom: v.range.id === "custom" }),
    csvHref: () => (v.current ? ctx.api.csvHref(deviceId, queryParams(csvPlan(shownWindow(v), longest(v)))) : null),
  });
  const info = el("p", "range-info muted");
  info.setAttribute("aria-live", "polite");
  const chartsBox = el("div", "charts");
  const charts = makeCharts(chartsBox, {
    colors: () => ctx.theme.colors(),
    xRange: () => (v.current ? startAndEnd(shownWindow(v)) : [0, 1]),
    onZoom: (start, end) => choose(v, { id: "custom", label: "custom", start, end, span: end - start }),
  });
  const alertHistory = makeAlertHistory(ctx, deviceId);
  const admin = makeDeviceAdmin(ctx, deviceId);
  root.replaceChildren(back, ...head.elements, ...toolbar.elements, info, chartsBox, alertHistory.element, admin.element);
  return { head, toolbar, info, charts, alertHistory, admin };
}

const startAndEnd = ({ start, end }) => [start, end];

function shownWindow(v) {
  return windowOf(v.current, v.frozenAt, Date.now());
}

function longest(v) {
  return Math.max(0, ...[...v.series.values()].map((cs) => cs.line.ts.length));
}

function choose(v, r) {
  v.range = r;
  if (r.id !== "custom") v.toolbar.hideCustom();
  const q = r.id === "custom" ? `start=${r.start}&end=${r.end}` : `range=${r.id}`;
  history.replaceState(null, "", `#/device/${encodeURIComponent(v.deviceId)}?${q}`);
  load(v);
}

// A raw range that comes back full holds more readings than a chart draws: buckets draw it instead.
async function fetchRange(api, deviceId, range) {
  let p = plan(range, Date.now());
  let got = await api.telemetryServed(deviceId, queryParams(p));
  if (truncated(p, got.readings)) {
    p = plan(range, Date.now(), true);
    got = await api.telemetryServed(deviceId, queryParams(p));
  }
  return { p, answer: got.readings, served: got.served };
}

async function load(v) {
  const seq = ++v.loadSeq;
  v.toolbar.markRange(v.range.id);
  v.info.textContent = "Loading…";
  v.info.classList.remove("error");
  v.alertHistory.load(plan(v.range, Date.now()));
  try {
    const { p, answer, served } = await fetchRange(v.ctx.api, v.deviceId, v.range);
    if (seq === v.loadSeq) show(v, p, answer, served);
  } catch (err) {
    if (seq !== v.loadSeq) return;
    v.info.textContent = `Could not load this range: ${err.message}`;
    v.info.classList.add("error");
    if (err.status === 404) v.charts.clear();
  }
}

// Bucketed ranges come with each bucket's min and max: a band around the line.
function seriesFor(p) {
  return p.interval ? makeChartSeries(p.limit + 16, true) : makeChartSeries(LIVE_POINTS, false);
}

function show(v, p, answer, served) {
  v.current = p;
  v.served = served;
  v.frozenAt = v.paused && p.sliding ? p.end : null;
  v.held = makeHold(LIVE_POINTS);
  // Metrics shown before keep their (now empty) chart.
  v.series = new Map([...v.series.keys()].map((metric) => [metric, seriesFor(p)]));
  for (const [metric, points] of Object.entries(answer)) {
    if (!v.series.has(metric)) v.series.set(metric, seriesFor(p));
    addPoints(v.series.get(metric), points);
  }
  v.lastTail = Date.now();
  describe(v);
  rebuild(v);
}

function rebuild(v) {
  v.charts.rebuild(v.series);
  render(v);
}

function render(v) {
  if (!v.current) return;
  const from = shownWindow(v).start - (v.current.interval || 0);
  const d = v.ctx.store.devices.get(v.deviceId);
  for (const [metric, cs] of v.series) {
    const chart = v.charts.get(metric, cs);
    chart.showLatest(d && d.latest[metric]);
    if (v.paused && chart.drawn) continue; // the header keeps up; the chart holds still
    if (v.current.sliding) trimChartSeries(cs, from);
    chart.draw(cs);
  }
  describe(v);
}

function describe(v) {
  if (!v.current) return;
  const charts = [...v.series.values()].map((cs) => cs.line);
  const text = describeRange(v.current, charts, v.paused, LIVE_POINTS, v.served);
  if (v.info.textContent !== text) v.info.textContent = text;
}

function setPaused(v, paused) {
  v.paused = paused;
  if (!paused) {
    // Readings that came while paused go in now; too many of them, and the range is loaded afresh.
    const held = release(v.held);
    if (held === null) load(v);
    else for (const [metric, ts, value] of held) insertLive(v, metric, ts, value);
  }
  v.toolbar.showPaused(paused);
  v.frozenAt = paused && v.current && v.current.sliding ? Date.now() : null;
  if (!paused) render(v);
  describe(v);
}

// Long ranges pick live readings up through refreshTail; a fixed range takes none.
function takeLive(v, msg) {
  if (msg.device !== v.deviceId || !v.current || !v.current.sliding || v.current.interval) return;
  for (const reading of readingsOf(msg)) {
    if (v.paused) hold(v.held, reading);
    else insertLive(v, ...reading);
  }
}

function insertLive(v, metric, ts, value) {
  if (!v.series.has(metric)) v.series.set(metric, makeChartSeries(LIVE_POINTS, false));
  addReading(v.series.get(metric), ts, value);
}

// Newest buckets of a long range, fetched again: the live stream brings raw readings, and the
// buckets they fall in are averaged by the server. What served these few (raw readings, mostly)
// says nothing of the range, so the line under the buttons keeps what served the load.
async function refreshTail(v) {
  if (v.tailBusy || !v.current || !v.current.interval) return;
  v.tailBusy = true;
  v.lastTail = Date.now();
  const p = v.current;
  let newest = p.start;
  for (const { line } of v.series.values()) if (line.ts.length) newest = Math.max(newest, line.ts[line.ts.length - 1]);
  try {
    const answer = await v.ctx.api.telemetry(v.deviceId, queryParams(tailPlan(p, newest, Date.now())));
    if (p !== v.current) return;
    for (const [metric, points] of Object.entries(answer)) {
      if (!v.series.has(metric)) v.series.set(metric, seriesFor(p));
      addPoints(v.series.get(metric), points);
    }
    v.ctx.mark(v.deviceId);
  } catch (err) {
    console.warn(`refreshing the newest buckets failed: ${err.message}`);
  } finally {
    v.tailBusy = false;
  }
}
