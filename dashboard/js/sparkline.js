// A small trend line on a canvas: cheap enough to redraw every frame for every device.

import { formatValue } from "./format.js";
import { stats } from "./series.js";

// The canvas's CSS size is fixed (app.css, .spark): reading it back would force a layout per card.
export const SPARK_CSS_WIDTH = 84;
export const SPARK_CSS_HEIGHT = 24;

export function drawSparkline(canvas, series, t0, t1, color) {
  const ratio = window.devicePixelRatio || 1;
  const w = Math.round(SPARK_CSS_WIDTH * ratio);
  const h = Math.round(SPARK_CSS_HEIGHT * ratio);
  if (canvas.width !== w || canvas.height !== h) {
    canvas.width = w;
    canvas.height = h;
  }
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, w, h);
  const { min, max } = stats(series);
  if (min === null) return;
  const pad = 2 * ratio;
  const spanY = max - min;
  const spanT = t1 - t0 || 1;
  const x = (t) => ((t - t0) / spanT) * (w - 2 * pad) + pad;
  // A flat line is drawn across the middle, not along the bottom edge.
  const y = max === min ? () => h / 2 : (v) => h - pad - ((v - min) / spanY) * (h - 2 * pad);
  ctx.strokeStyle = color;
  ctx.lineWidth = 1.5 * ratio;
  ctx.lineJoin = "round";
  ctx.beginPath();
  let drawing = false;
  const { ts, values } = series;
  for (let i = 0; i < ts.length; i++) {
    const v = values[i];
    if (v === null || ts[i] < t0) {
      drawing = false;
      continue;
    }
    if (drawing) ctx.lineTo(x(ts[i]), y(v));
    else ctx.moveTo(x(ts[i]), y(v));
    drawing = true;
  }
  ctx.stroke();
  if (ts.length === 1 || (ts.length && values[ts.length - 1] !== null)) {
    const last = ts.length - 1;
    ctx.fillStyle = color;
    ctx.beginPath();
    ctx.arc(x(ts[last]), y(values[last]), 2 * ratio, 0, 2 * Math.PI);
    ctx.fill();
  }
}

// What the sparkline shows, for screen readers (and for anyone checking what is drawn).
export function describeSparkline(metric, series) {
  const { count, min, max } = stats(series);
  if (!count) return `${metric}, last 10 minutes: no readings`;
  const range = min === max ? formatValue(metric, min) : `${formatValue(metric, min)} to ${formatValue(metric, max)}`;
  return `${metric}, last 10 minutes: ${count} ${count === 1 ? "point" : "points"}, ${range}`;
}
