// Firmware rollouts as the page knows them, fed by the HTTP API (GET /api/rollouts and
// /api/rollouts/{id}) and the live channel's `rollout` messages. Pure: each apply* function changes
// the state and says which devices changed; drawing happens elsewhere.
//
// What is newer wins, by `updated_ms`: a live message that arrives while a listing is on its way is
// newer than the listing, so the listing does not undo it.

export const STEPS = ["queued", "downloading", "installed", "trial", "confirmed", "failed", "rolled_back"];
const ACTIVE = new Set(["running", "paused", "halted"]);

export function makeRollouts() {
  // rollouts: id -> {summary, devices: Map(device id -> step) | null (not loaded)};
  // latest: device id -> its step in the newest rollout that moved it, with that rollout's id and version.
  return { rollouts: new Map(), latest: new Map() };
}

function entry(state, summary) {
  let r = state.rollouts.get(summary.id);
  if (!r) {
    r = { summary, devices: null };
    state.rollouts.set(summary.id, r);
  } else if (summary.updated_ms >= r.summary.updated_ms) {
    r.summary = summary;
  }
  return r;
}

function applyStep(state, r, step) {
  if (r.devices === null) r.devices = new Map();
  const old = r.devices.get(step.device);
  if (!old || step.updated_ms >= old.updated_ms) r.devices.set(step.device, step);
  const held = state.latest.get(step.device);
  if (held && held.updated_ms > step.updated_ms) return null;
  state.latest.set(step.device, { ...step, rollout: r.summary.id, version: r.summary.version });
  return step.device;
}

// GET /api/rollouts: the latest rollouts' summaries (devices come with each rollout's own answer).
export function applyRolloutList(state, list) {
  for (const summary of list) entry(state, summary);
}

// GET /api/rollouts/{id}: a rollout and every device's step. Returns the devices whose step changed.
export function applyRolloutDetail(state, detail) {
  const { devices, ...summary } = detail;
  const r = entry(state, summary);
  const changed = [];
  for (const step of devices || []) {
    const id = applyStep(state, r, step);
    if (id !== null) changed.push(id);
  }
  return changed;
}

// {"type":"rollout"}: the rollout's summary, and the device that moved (or null when the rollout's
// own state changed). Returns the device that changed, or null.
export function applyRolloutMessage(state, msg) {
  const r = entry(state, msg.rollout);
  return msg.device ? applyStep(state, r, msg.device) : null;
}

// Newest first, as GET /api/rollouts lists them.
export function rolloutsNewestFirst(state) {
  return [...state.rollouts.values()].sort(
    (a, b) => b.summary.created_ms - a.summary.created_ms || b.summary.id.localeCompare(a.summary.id),
  );
}

export function isActive(summary) {
  return ACTIVE.has(summary.state);
}

// The buttons a rollout in this state takes (the server answers 409 to any other).
export function rolloutActions(summary) {
  if (summary.state === "running") return ["pause", "abort"];
  if (summary.state === "paused" || summary.state === "halted") return ["resume", "abort"];
  return [];
}

// A device's step in words, with the reason when there is one: "rolled back: ImportError: ...".
export function stepText(step) {
  const words = step.step.replace("_", " ");
  return step.reason ? `${words}: ${step.reason}` : words;
}

// "1 confirmed · 1 rolled back · 8 queued": the steps that have devices, in the order devices go
// through them.
export function countsText(counts) {
  const parts = [];
  for (const s of [...STEPS].reverse()) if (counts[s]) parts.push(`${counts[s]} ${s.replace("_", " ")}`);
  return parts.length ? parts.join(" · ") : "no devices";
}

// The step a device's card shows: its step in the newest rollout that moved it, while that rollout
// is active or the step is newer than `since` ms ago (a finished update stays in sight a while).
export function cardStep(state, deviceId, now, since = 10 * 60 * 1000) {
  const step = state.latest.get(deviceId);
  if (!step) return null;
  const r = state.rollouts.get(step.rollout);
  if (r && isActive(r.summary)) return step;
  return now - step.updated_ms <= since ? step : null;
}

// The start form's fields (text) to the body of POST /api/rollouts, or {error} for what the page can
// tell without asking the server. `all` (a checkbox) means every registered device.
export function rolloutBody({ version, devices, all, canary }) {
  const v = (version || "").trim();
  if (!v) return { error: "Choose a release." };
  let ids = "*";
  if (!all) {
    ids = (devices || "").split(/[\s,]+/).filter(Boolean);
    if (!ids.length) return { error: "Name the devices (ids separated by commas), or choose every device." };
  }
  const text = String(canary ?? "").trim();
  const percent = text === "" ? 0 : Number(text);
  if (!Number.isInteger(percent) || percent < 0 || percent > 100) {
    return { error: "The canary share is a whole percent from 0 to 100." };
  }
  return { body: { version: v, devices: ids, canary_percent: percent } };
}
