// The page: wires the live channel, the HTTP API, the state, the alert banner and the views together.

import { makeAdmin } from "./admin.js";
import { mountAlertsView } from "./alertsview.js";
import { makeAlertBanner } from "./alertbanner.js";
import { applyAlertMessage, beginSync, endSync, makeAlerts } from "./alerts.js";
import { ApiError, makeApi } from "./api.js";
import { mountDeviceView } from "./deviceview.js";
import { mountFleetView } from "./fleetview.js";
import { frameScheduler } from "./frame.js";
import { keepLive } from "./live.js";
import { mountOverview } from "./overview.js";
import { applyRolloutDetail, applyRolloutList, applyRolloutMessage, isActive, makeRollouts } from "./rollouts.js";
import {
  SPARK_BUCKET, SPARK_POINTS, SPARK_WINDOW, applyDeviceList, applyHistory, applySnapshot, applyStatus, applyTelemetry,
  makeStore, newestTs, removeDevice,
} from "./store.js";
import { makeTheme } from "./theme.js";
import { liveUrl } from "./urls.js";

const DEVICE_LIST_REFRESH_MS = 30000;
const REFILL_PARALLEL = 4;
const ALL = "*";
const BANNER = "alerts"; // a frame key of its own: the banner is drawn apart from the views
// After a device's update moves it to another version, the device list (its `fw`) is read again:
// the server stores `fw` with its next group commit, so not at once.
const FW_REFRESH_MS = 1000;
const FW_MOVES = new Set(["trial", "confirmed", "rolled_back"]);

const $ = (id) => document.getElementById(id);

// A read key may come in the address (?key=) for a wall display; otherwise it is asked for.
let readKey = new URLSearchParams(location.search).get("key");
let view = null;
let live = null;
let connected = false;
let down = null;
let fwRefresh = null;

const theme = makeTheme();
const store = makeStore();
const keys = {
  read: () => readKey,
  admin: () => admin.key(),
  adminRefused: (why) => admin.lock(`Admin actions are off: ${why}`),
};
const api = makeApi(keys, document.baseURI);
const admin = makeAdmin({
  api,
  onChange(message, addedId) {
    $("admin-toggle").textContent = admin.active() ? "Lock admin" : "Admin";
    $("admin-toggle").setAttribute("aria-pressed", String(admin.active()));
    notify(message);
    if (addedId) refreshDevices();
    view?.adminChanged?.();
  },
});
const mark = frameScheduler((keys) => {
  if (keys.includes(BANNER) || keys.includes(ALL)) banner.render();
  const devices = keys.filter((k) => k !== BANNER);
  if (devices.length) view?.render(devices.includes(ALL) ? null : devices);
});
const alerts = makeAlerts();
const rollouts = makeRollouts();
const ctx = {
  api, store, admin, theme, mark, alerts, rollouts,
  // An alert changed here (the answer to an acknowledgement): as if the live channel said so.
  onAlertChanged: (alert) => takeAlert({ type: "alert", event: "ack", alert }),
  onRemoved(id) {
    removeDevice(store, id);
    location.hash = "#/";
  },
};

const banner = makeAlertBanner($("alert-banner"), ctx, ctx.onAlertChanged);

function notify(message) {
  const box = $("notice");
  box.textContent = message || "";
  box.hidden = !message;
}

// Connection indicator

function showConnection() {
  const conn = $("conn");
  const text = $("conn-text");
  if (connected) {
    conn.dataset.state = "live";
    text.textContent = "Live";
    conn.title = "Connected to the live channel";
  } else if (down) {
    conn.dataset.state = "down";
    const left = Math.max(0, Math.ceil((down.at - Date.now()) / 1000));
    text.textContent = left ? `Reconnecting in ${left} s` : "Reconnecting…";
    conn.title = `Live channel down: ${down.reason} (attempt ${down.attempt})`;
  } else {
    conn.dataset.state = "connecting";
    text.textContent = "Connecting…";
  }
  $("conn-retry").hidden = connected || !down;
}

function startLive() {
  let first = true;
  live = keepLive({
    url: () => liveUrl(document.baseURI, readKey),
    onOpen() {
      connected = true;
      down = null;
      showConnection();
    },
    onDown({ reason, retryIn, attempt }) {
      connected = false;
      down = { reason, at: Date.now() + retryIn, attempt };
      showConnection();
    },
    onMessage(msg) {
      if (msg.type === "telemetry") {
        mark(applyTelemetry(store, msg, Date.now()));
        view?.onTelemetry?.(msg);
      } else if (msg.type === "status") {
        mark(applyStatus(store, msg));
      } else if (msg.type === "snapshot") {
        const known = new Map([...store.devices.values()].map((d) => [d.id, newestTs(d)]));
        applySnapshot(store, msg);
        mark(ALL);
        refill(known);
        syncAlerts();
        syncRollouts();
        if (!first) view?.onReconnect?.();
        first = false;
      } else if (msg.type === "alert") {
        takeAlert(msg);
      } else if (msg.type === "rollout") {
        takeRollout(msg);
      } else if (msg.type === "error") {
        console.warn(`live channel: ${msg.code}: ${msg.detail}`);
      }
    },
  });
}

// Readings committed while the page was not listening (before it opened, or while the socket was
// down) come from the HTTP API: for each device, everything after the newest reading already held.
async function refill(known) {
  const now = Date.now();
  const jobs = [];
  for (const d of store.devices.values()) {
    const held = known.get(d.id);
    const from = Math.max(now - SPARK_WINDOW, held === undefined || held === null ? -Infinity : held + 1);
    const newest = newestTs(d);
    if (newest === null || newest < from) continue;
    // Averages per sparkline bucket, computed by the server: the whole gap in one small answer.
    const q = new URLSearchParams({
      start: String(from), interval: String(SPARK_BUCKET), agg: "avg", order: "desc", limit: String(SPARK_POINTS),
    });
    jobs.push(async () => {
      try {
        if (applyHistory(store, d.id, await api.telemetry(d.id, q), true)) mark(d.id);
      } catch (err) {
        console.warn(`refilling ${d.id} failed: ${err.message}`);
      }
    });
  }
  const workers = Array.from({ length: REFILL_PARALLEL }, async () => {
    while (jobs.length) await jobs.shift()();
  });
  await Promise.all(workers);
}

// Alerts: the set firing now comes from the HTTP API on every (re)connect, as one list (live
// messages that arrive meanwhile are newer and win); then each live message changes it.
function takeAlert(msg) {
  const device = applyAlertMessage(alerts, msg);
  if (device === null) return;
  mark(BANNER);
  mark(device);
  view?.onAlert?.(msg.alert);
}

async function syncAlerts() {
  const token = beginSync(alerts);
  try {
    const answer = await api.alerts(new URLSearchParams({ state: "firing" }));
    for (const device of endSync(alerts, token, answer.alerts)) mark(device);
    mark(BANNER);
  } catch (err) {
    console.warn(`listing the alerts firing failed: ${err.message}`);
  }
}

// Rollouts: the active ones' steps come from the HTTP API on every (re)connect (newer steps, from
// live messages meanwhile, win); then each live `rollout` message moves one device or the rollout.
function takeRollout(msg) {
  const device = applyRolloutMessage(rollouts, msg);
  mark(device === null ? ALL : device);
  if (device !== null && FW_MOVES.has(msg.device.step) && fwRefresh === null) {
    fwRefresh = setTimeout(() => {
      fwRefresh = null;
      refreshDevices();
    }, FW_REFRESH_MS);
  }
  view?.onRollout?.(msg);
}

async function syncRollouts() {
  try {
    const list = await api.rollouts();
    applyRolloutList(rollouts, list);
    const details = await Promise.all(list.filter(isActive).map((r) => api.rollout(r.id)));
    for (const d of details) for (const device of applyRolloutDetail(rollouts, d)) mark(device);
  } catch (err) {
    console.warn(`listing the rollouts failed: ${err.message}`);
  }
}

async function refreshDevices() {
  try {
    applyDeviceList(store, await api.devices());
    mark(ALL);
    return true;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      askReadKey(readKey ? "The server refused this read key." : "This server needs a read key to show its devices.");
    } else {
      notify(`Could not list the devices: ${err.message}`);
    }
    return false;
  }
}

function askReadKey(message) {
  const dialog = $("key-dialog");
  dialog.querySelector(".error").textContent = message;
  if (!dialog.open) dialog.showModal();
}

// Without the key there is nothing to show: the dialog stays until one is given.
$("key-dialog").addEventListener("cancel", (event) => event.preventDefault());
$("key-dialog").querySelector("form").addEventListener("submit", async (event) => {
  event.preventDefault();
  readKey = $("read-key").value.trim() || null;
  $("read-key").value = "";
  $("key-dialog").close();
  if (await refreshDevices()) {
    if (live) live.retry();
    else startLive();
  }
});

// Views

function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  view?.destroy();
  const root = $("view");
  const match = path.match(/^\/device\/(.+)$/);
  if (path === "/alerts") {
    view = mountAlertsView(root, ctx);
  } else if (path === "/firmware") {
    view = mountFleetView(root, ctx);
  } else if (match) {
    view = mountDeviceView(root, ctx, decodeURIComponent(match[1]), new URLSearchParams(query || ""));
  } else {
    document.title = "Pulsewire";
    view = mountOverview(root, ctx);
  }
  view.render(null);
  window.scrollTo(0, 0);
}

// Wiring

$("admin-toggle").addEventListener("click", () => (admin.active() ? admin.lock("Admin actions are locked.") : admin.openUnlock()));
$("theme-toggle").addEventListener("click", () => {
  theme.cycle();
  showTheme();
  mark(ALL);
});
function showTheme() {
  $("theme-toggle").textContent = theme.icon();
  $("theme-toggle").title = theme.label();
  $("theme-toggle").setAttribute("aria-label", theme.label());
}
showTheme();
$("conn-retry").addEventListener("click", () => live?.retry());
$("notice").addEventListener("click", () => notify(""));
window.addEventListener("hashchange", route);

setInterval(() => {
  showConnection();
  banner.tick(Date.now());
  if (view?.tick) view.tick();
  else mark(ALL);
}, 1000);
setInterval(refreshDevices, DEVICE_LIST_REFRESH_MS);

route();
showConnection();
if (await refreshDevices()) startLive();
