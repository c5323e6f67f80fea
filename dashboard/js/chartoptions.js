// The uPlot options of one metric's chart: scales, axes, the series and the drag-to-zoom hook.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { formatValue } from "./format.js";
import { pickTimeStep } from "./timeaxis.js";
import { axisSize, fillBaseline, tickLabels, tickSteps } from "./valueaxis.js";

export const CHART_HEIGHT = 200;
// Axes are drawn, and their labels measured, in this font (the page's, at 12 px).
const AXIS_FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
// Tick length and the gap between a tick and its label, in px; and a little spare on the far
// side of a value label, so its antialiased edge is never cut.
const TICK = 10;
const GAP = 5;
const SPARE = 2;

// A text's width in AXIS_FONT, in CSS px.
export function makeMeasure() {
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = AXIS_FONT;
  return (text) => ctx.measureText(text).width;
}

// `colors`: the theme's chart colours. `xRange()`: the window on screen, [start, end] in ms.
// `onZoom(start, end)`: a span was dragged across the chart. `measure`: from makeMeasure.
// `banded`: the data has min and max after the line (series 2 and 3), drawn as a band.
export function chartOptions({ metric, width, colors, xRange, onZoom, measure, banded }) {
  return {
    width,
    height: CHART_HEIGHT,
    ms: 1,
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { show: true, live: true },
    scales: { x: { time: true, range: () => xRange() }, y: { range: valueRange } },
    axes: [timeAxis(colors, measure), valueAxis(metric, colors, measure)],
    series: seriesOptions(metric, colors, banded),
    bands: banded ? [{ series: [3, 2], fill: colors.band }] : [],
    hooks: { setSelect: [zoomOnDrag(onZoom)], setCursor: [legendWhileHovering] },
  };
}

// A flat line sits mid-chart with a little room, not on an axis from zero.
function valueRange(u, min, max) {
  if (min !== max) return uPlot.rangeNum(min, max, 0.1, true);
  return [min - (Math.abs(min) * 0.01 || 1), max + (Math.abs(max) * 0.01 || 1)];
}

function axisLook(colors) {
  return {
    font: AXIS_FONT,
    stroke: colors.muted,
    gap: GAP,
    grid: { stroke: colors.grid, width: 1 },
    ticks: { stroke: colors.grid, width: 1, size: TICK },
  };
}

// Ticks at round local times, the finest whose labels keep apart at the chart's width. uPlot asks
// for the step (incrs), then the ticks (splits) and labels (values) of the same pick.
function timeAxis(colors, measure) {
  let picked = null;
  const roomAround = (u) => {
    const ratio = window.devicePixelRatio || 1;
    return { left: u.bbox.left / ratio, right: u.width - (u.bbox.left + u.bbox.width) / ratio };
  };
  return {
    ...axisLook(colors),
    space: 1,
    incrs: (u, axis, min, max, width) => [(picked = pickTimeStep(min, max, width, measure, roomAround(u))).step.ms],
    splits: () => picked.splits,
    values: () => picked.labels,
  };
}

// Labels with the metric's unit, the axis as wide as the widest of them.
function valueAxis(metric, colors, measure) {
  return {
    ...axisLook(colors),
    incrs: tickSteps(metric) ?? undefined,
    values: (u, ticks, axis, space, step) => tickLabels(metric, ticks, step),
    // Before its first labels uPlot asks with none: its own default width.
    size: (u, labels) => (labels ? axisSize(labels, measure, TICK + GAP + SPARE) : 50),
  };
}

// The line, shaded below; or, with a band, the average's line inside the min..max band (whose
// edges draw no line of their own).
function seriesOptions(metric, colors, banded) {
  const value = (u, v) => (v == null ? "–" : formatValue(metric, v));
  const time = { label: "time", value: (u, v) => (v == null ? "–" : new Date(v).toLocaleString()) };
  const line = { label: metric, stroke: colors.accent, width: 1.5, value };
  if (!banded) return [time, { ...line, fill: colors.fill, fillTo: (u) => fillBaseline(u.scales.y.min, u.scales.y.max) }];
  const edge = (label) => ({ label, stroke: colors.band, width: 0, points: { show: false }, value });
  return [time, { ...line, label: `${metric} avg` }, edge("min"), edge("max")];
}

// The legend says what is under the pointer; with nothing there it would only read "time: –",
// so it shows while the pointer is on a point (app.css hides it otherwise).
function legendWhileHovering(u) {
  u.root.classList.toggle("hovering", u.cursor.idx != null);
}

// Dragging across a chart zooms to that span, loaded at the finer resolution it allows.
function zoomOnDrag(onZoom) {
  return (u) => {
    if (u.select.width < 5) return;
    const a = Math.round(u.posToVal(u.select.left, "x"));
    const b = Math.round(u.posToVal(u.select.left + u.select.width, "x"));
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (b > a) onZoom(a, b);
  };
}
