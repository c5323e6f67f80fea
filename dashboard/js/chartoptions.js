// The uPlot options of one metric's chart: scales, axes, the series and the drag-to-zoom hook.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { formatValue } from "./format.js";

export const CHART_HEIGHT = 200;

// `colors`: the theme's chart colours. `xRange()`: the window on screen, [start, end] in ms.
// `onZoom(start, end)`: a span was dragged across the chart.
export function chartOptions({ metric, width, colors, xRange, onZoom }) {
  return {
    width,
    height: CHART_HEIGHT,
    ms: 1,
    cursor: { drag: { x: true, y: false, setScale: false } },
    legend: { show: true, live: true },
    scales: { x: { time: true, range: () => xRange() }, y: { range: valueRange } },
    axes: axesOptions(colors),
    series: seriesOptions(metric, colors),
    hooks: { setSelect: [zoomOnDrag(onZoom)] },
  };
}

// A flat line sits mid-chart with a little room, not on an axis from zero.
function valueRange(u, min, max) {
  if (min !== max) return uPlot.rangeNum(min, max, 0.1, true);
  return [min - (Math.abs(min) * 0.01 || 1), max + (Math.abs(max) * 0.01 || 1)];
}

function axesOptions(colors) {
  const axis = { stroke: colors.muted, grid: { stroke: colors.grid, width: 1 }, ticks: { stroke: colors.grid, width: 1 } };
  return [axis, { ...axis, size: 64 }];
}

function seriesOptions(metric, colors) {
  return [
    { label: "time", value: (u, v) => (v == null ? "–" : new Date(v).toLocaleString()) },
    {
      label: metric,
      stroke: colors.accent,
      fill: colors.fill,
      width: 1.5,
      value: (u, v) => (v == null ? "–" : formatValue(metric, v)),
    },
  ];
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
