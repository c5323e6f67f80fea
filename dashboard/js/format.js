// Numbers, units and times as people read them. Pure: no DOM, so it is tested under Node.

// Units by metric name. A name matches whole ("rssi") or by its last word ("mcu_temperature",
// "greenhouse.humidity"); a suffix such as "_v" or "_hpa" names the unit outright.
const BY_NAME = {
  temperature: "°C", temp: "°C", humidity: "%", pressure: "hPa", rssi: "dBm", heap_free: "B",
  voltage: "V", battery: "%", co2: "ppm", lux: "lx", light: "lx", uptime: "s", dropped: "readings",
};
const BY_SUFFIX = {
  v: "V", mv: "mV", a: "A", ma: "mA", w: "W", c: "°C", f: "°F", pct: "%", percent: "%",
  hpa: "hPa", pa: "Pa", ppm: "ppm", lx: "lx", dbm: "dBm", s: "s", ms: "ms", b: "B", bytes: "B",
};

const NAMES_LONGEST_FIRST = Object.keys(BY_NAME).sort((a, b) => b.length - a.length);

export function unitFor(metric) {
  const name = metric.toLowerCase();
  if (name in BY_NAME) return BY_NAME[name];
  // "esp.heap_free", "board_heap_free", "node-7.battery": a known name after a prefix.
  for (const known of NAMES_LONGEST_FIRST) {
    if (name.endsWith(known) && "._-".includes(name[name.length - known.length - 1])) return BY_NAME[known];
  }
  const words = name.split(/[._-]/);
  const last = words[words.length - 1];
  if (words.length > 1 && last in BY_SUFFIX) return BY_SUFFIX[last];
  return BY_NAME[last] ?? "";
}

const formatters = new Map();
// `fixed`: always `digits` decimals ("3.90"); else at most that many ("3.9").
function formatter(locale, digits, fixed = false) {
  const key = `${locale}|${digits}|${fixed}`;
  let f = formatters.get(key);
  if (!f) {
    f = new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: fixed ? digits : 0 });
    formatters.set(key, f);
  }
  return f;
}

// Enough digits to see a change, never a wall of them: 3 below 10, 2 below 100, 1 below 1000, else 0.
export function formatNumber(value, locale = undefined) {
  if (typeof value === "boolean") return value ? "on" : "off";
  if (typeof value !== "number" || !Number.isFinite(value)) return "–";
  const a = Math.abs(value);
  const digits = a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;
  // A value that rounds to zero is shown as 0, not "-0".
  return formatter(locale, digits).format(a < 0.5 * 10 ** -digits ? 0 : value);
}

const BYTE_STEPS = [[1 << 30, "GB"], [1 << 20, "MB"], [1 << 10, "KB"]];

export function formatValue(metric, value, locale = undefined) {
  if (typeof value === "boolean") return value ? "on" : "off";
  const unit = unitFor(metric);
  if (unit === "B" && typeof value === "number" && Number.isFinite(value)) {
    for (const [size, name] of BYTE_STEPS) {
      // Chosen after rounding, so 1,048,575 bytes read "1 MB", not "1,024 KB".
      if (Math.abs(value) / size >= 0.9995) return `${formatNumber(value / size, locale)} ${name}`;
    }
  }
  return withUnit(formatNumber(value, locale), unit);
}

// A number's text with its unit after a space ("21.5 °C", "40 %"); without a unit, or for a
// missing value ("–"), the text alone.
export function withUnit(text, unit) {
  return !unit || text === "–" ? text : `${text} ${unit}`;
}

// Exactly `digits` decimals, so the labels of an axis line up ("3.90", "3.95", "4.00").
export function formatFixed(value, digits, locale = undefined) {
  return formatter(locale, digits, true).format(value);
}

export function formatAgo(ts, now) {
  if (ts === null || ts === undefined) return "never";
  const s = Math.round((now - ts) / 1000);
  if (s < 2) return "just now";
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function formatDuration(ms) {
  const units = [[86400000, "d"], [3600000, "h"], [60000, "min"], [1000, "s"]];
  for (const [size, name] of units) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${name}`;
  }
  return ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${ms} ms`;
}

export function formatCount(n, locale = undefined) {
  return formatter(locale, 0).format(n);
}
