// The HTTP API (docs/protocol.md section 3). Every failure becomes an ApiError whose message is
// the server's own `detail`, ready to show.

import { readResolution } from "./resolution.js";
import { apiUrl } from "./urls.js";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function detailText(detail) {
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail.map((e) => `${(e.loc || []).filter((p) => p !== "body").join(".")}: ${e.msg}`).join("; ");
  }
  return JSON.stringify(detail);
}

const enc = encodeURIComponent;

// `keys.read()` and `keys.admin()` return the keys held in memory (or null); `keys.adminRefused`
// hears when the server no longer takes the admin key (it was changed on the server). Paths are
// relative to `base`, the page's URL (urls.js).
export function makeApi(keys, base) {
  // The answer's body and headers.
  async function request(method, path, { body, admin = false, adminKey = null } = {}) {
    const headers = {};
    const key = adminKey || (admin ? keys.admin() : keys.read());
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let resp;
    try {
      resp = await fetch(apiUrl(base, path), { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, "The server cannot be reached.");
    }
    const text = await resp.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!resp.ok) {
      const why = data && data.detail !== undefined ? detailText(data.detail) : text || resp.statusText;
      if (admin && (resp.status === 401 || resp.status === 403)) keys.adminRefused(why);
      throw new ApiError(resp.status, why);
    }
    return { data, headers: resp.headers };
  }
  const call = async (...args) => (await request(...args)).data;
  const telemetryPath = (id, params) => `api/devices/${enc(id)}/telemetry?${params}`;

  return {
    devices: () => call("GET", "api/devices"),
    telemetry: (id, params) => call("GET", telemetryPath(id, params)),
    // The same readings, with which stored resolutions served them: {readings, served} (resolution.js).
    async telemetryServed(id, params) {
      const { data, headers } = await request("GET", telemetryPath(id, params));
      return { readings: data, served: readResolution((name) => headers.get(name)) };
    },
    // A plain link (the browser streams it to disk); a read key can only travel in the query.
    csvHref(id, params) {
      const q = new URLSearchParams(params);
      const key = keys.read();
      if (key) q.set("key", key);
      return apiUrl(base, `api/devices/${enc(id)}/telemetry.csv?${q}`);
    },
    checkAdmin: (adminKey) => call("GET", "api/admin/check", { adminKey }),
    addDevice: (id, name) => call("POST", "api/devices", { admin: true, body: name ? { id, name } : { id } }),
    rotateToken: (id) => call("POST", `api/devices/${enc(id)}/token`, { admin: true }),
    removeDevice: (id, purge) => call("DELETE", `api/devices/${enc(id)}?purge=${purge ? "true" : "false"}`, { admin: true }),
    command: (id, name, args) => call("POST", `api/devices/${enc(id)}/commands?wait=10`, { admin: true, body: { name, args } }),
    ...alertCalls(call),
    ...fleetCalls(call),
  };
}

// Releases and rollouts (docs/protocol.md, "Releases and rollouts"); `call` is makeApi's.
function fleetCalls(call) {
  return {
    releases: () => call("GET", "api/releases"),
    rollouts: () => call("GET", "api/rollouts"),
    rollout: (id) => call("GET", `api/rollouts/${enc(id)}`),
    startRollout: (body) => call("POST", "api/rollouts", { admin: true, body }),
    // `action`: pause, resume or abort.
    controlRollout: (id, action) => call("POST", `api/rollouts/${enc(id)}/${action}`, { admin: true }),
  };
}

// Alerts, rules and channels (docs/protocol.md, alerts); `call` is makeApi's.
function alertCalls(call) {
  const admin = true;
  return {
    // Firing now or history, as {"alerts": [...]}.
    alerts: (params) => call("GET", `api/alerts?${params}`),
    ackAlert: (id, until = null) => call("POST", `api/alerts/${enc(id)}/ack`, { admin, body: until === null ? {} : { until } }),
    rules: () => call("GET", "api/rules"),
    saveRule: (id, body) => (id ? call("PUT", `api/rules/${enc(id)}`, { admin, body }) : call("POST", "api/rules", { admin, body })),
    deleteRule: (id) => call("DELETE", `api/rules/${enc(id)}`, { admin }),
    channels: () => call("GET", "api/channels", { admin }),
    addChannel: (body) => call("POST", "api/channels", { admin, body }),
    deleteChannel: (id) => call("DELETE", `api/channels/${enc(id)}`, { admin }),
    testChannel: (id) => call("POST", `api/channels/${enc(id)}/test`, { admin }),
  };
}
