// The device view's charts, one per metric in name order, each a section with the metric's name,
// its latest value and a uPlot chart: built, drawn, resized and destroyed together.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { CHART_HEIGHT, chartOptions, makeMeasure } from "./chartoptions.js";
import { chartData } from "./chartseries.js";
import { el } from "./dom.js";
import { formatValue } from "./format.js";

// `options`: what every chart shares ({colors(), xRange, onZoom}, see chartOptions).
export function makeCharts(box, options) {
  const charts = new Map();
  const measure = makeMeasure();
  const width = () => Math.max(200, box.clientWidth - 2); // a section's border; it has no side padding (app.css)
  const resizer = new ResizeObserver(() => {
    for (const c of charts.values()) c.plot.setSize({ width: width(), height: CHART_HEIGHT });
  });
  resizer.observe(box);

  function add(metric, cs) {
    const c = makeChart(metric, cs, { ...options, colors: options.colors(), width: width(), measure });
    const later = [...charts.keys()].filter((m) => m > metric).sort()[0];
    box.insertBefore(c.section, later === undefined ? null : charts.get(later).section);
    charts.set(metric, c);
    return c;
  }

  function clear() {
    for (const c of charts.values()) c.plot.destroy();
    charts.clear();
    box.replaceChildren();
  }

  return {
    // The chart of a metric, made on first use (`cs`: its points, chartseries.js).
    get: (metric, cs) => charts.get(metric) ?? add(metric, cs),
    // Every chart made again (a new range, or new colours).
    rebuild(series) {
      clear();
      for (const metric of [...series.keys()].sort()) add(metric, series.get(metric));
    },
    clear,
    destroy() {
      resizer.disconnect();
      clear();
    },
  };
}

function makeChart(metric, cs, options) {
  const section = el("section", "chart");
  section.dataset.metric = metric;
  const h = el("h2");
  const value = el("span", "value");
  h.append(el("span", "", metric), value);
  const box = el("div", "plot");
  section.append(h, box);
  const plot = new uPlot(chartOptions({ metric, banded: cs.low !== null, ...options }), chartData(cs), box);
  // The element keeps its plot, so what a chart drew (ticks, band) can be read back.
  box.plot = plot;
  return {
    section,
    plot,
    drawn: false,
    showLatest(latest) {
      value.textContent = latest ? formatValue(metric, latest.value) : "";
    },
    draw(points) {
      plot.setData(chartData(points));
      this.drawn = true;
      const { ts } = points.line;
      const n = ts.length;
      section.dataset.points = String(n);
      section.setAttribute("aria-label", n ? `${metric}: ${n} points from ${when(ts[0])} to ${when(ts[n - 1])}` : `${metric}: no points in this range`);
    },
  };
}

function when(ts) {
  return new Date(ts).toLocaleString();
}
