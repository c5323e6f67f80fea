// The admin's actions on one device: set the sampling interval, reboot, rotate the token, remove.
// The section is shown only while the admin key is held (the admin-only class); each action that
// cannot be undone asks first.

import { button, el } from "./dom.js";
import { formatCount } from "./format.js";

export function makeDeviceAdmin(ctx, deviceId) {
  const section = el("section", "admin-only device-admin");
  const intervalInput = numberInput();
  const setInterval_ = button("Set sampling interval");
  const reboot = button("Reboot");
  const rotate = button("Rotate token");
  const remove = button("Remove device", "danger");
  const intervalBox = el("span", "inline");
  intervalBox.append(intervalInput, el("span", "muted", "s"), setInterval_);
  const row = el("div", "actions");
  row.append(intervalBox, reboot, rotate, remove);
  const status = el("p", "action-status muted");
  status.setAttribute("aria-live", "polite");
  section.append(el("h2", "", "Admin"), row, status);

  const target = { ...ctx, deviceId, ...actor(status) };
  setInterval_.addEventListener("click", () => setSamplingInterval(target, intervalInput.value));
  reboot.addEventListener("click", () => rebootDevice(target));
  rotate.addEventListener("click", () => rotateToken(target));
  remove.addEventListener("click", () => removeDevice(target));

  return {
    element: section,
    // The admin key came or went: the interval field starts from the device's current interval.
    adminChanged() {
      const d = ctx.store.devices.get(deviceId);
      if (d && d.intervalMs && !intervalInput.value) intervalInput.value = String(d.intervalMs / 1000);
    },
  };
}

function numberInput() {
  const input = el("input");
  input.type = "number";
  input.min = "0.1";
  input.step = "any";
  input.name = "interval";
  input.setAttribute("aria-label", "Sampling interval in seconds");
  return input;
}

// `act` runs an action, saying in `status` that it runs, then how it ended; `refuse` says why
// an action cannot run.
function actor(status) {
  const say = (text, isError = false) => {
    status.textContent = text;
    status.classList.toggle("error", isError);
  };
  return {
    refuse: (why) => say(why, true),
    async act(label, fn) {
      say(`${label}…`);
      try {
        say(await fn());
      } catch (err) {
        say(`${label} failed: ${err.message}`, true);
      }
    },
  };
}

function describeCommand(r, done) {
  if (r.ok === false) return `The device refused: ${r.detail || "no reason given"}`;
  if (r.status === "queued") return `${done}: the device gets it when it next connects.`;
  return `${done}.`;
}

function setSamplingInterval({ api, deviceId, act, refuse }, text) {
  const seconds = Number(text);
  if (!(seconds > 0)) return refuse("Give the sampling interval in seconds, for example 5.");
  return act("Setting the interval", async () => {
    const r = await api.command(deviceId, "set_interval", { ms: Math.round(seconds * 1000) });
    return describeCommand(r, "Interval set");
  });
}

async function rebootDevice({ api, admin, deviceId, act }) {
  if (!(await admin.confirm(`Reboot ${deviceId}?`, "It stops sending for a few seconds while it restarts."))) return;
  act("Rebooting", async () => describeCommand(await api.command(deviceId, "reboot", {}), "Reboot sent"));
}

async function rotateToken({ api, admin, deviceId, act }) {
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
}

async function removeDevice({ api, admin, deviceId, act, onRemoved }) {
  const choice = await admin.confirm(`Remove ${deviceId}?`, "Its token stops working at once.", "Also delete its stored readings");
  if (!choice) return;
  act("Removing", async () => {
    const r = await api.removeDevice(deviceId, choice.checked);
    onRemoved(deviceId);
    return `Removed${r.purged_readings ? `, with ${formatCount(r.purged_readings)} readings` : ""}.`;
  });
}
