// The device view's heading: the device's name and status, and a line of facts (id, last seen,
// firmware, sampling interval).

import { el } from "./dom.js";
import { formatAgo, formatDuration } from "./format.js";
import { cardStep, stepText } from "./rollouts.js";

export function makeDeviceHead(deviceId, rollouts) {
  const head = el("div", "device-head");
  const title = el("h1", "name", deviceId);
  const status = el("span", "status");
  const facts = el("p", "facts muted");
  const update = el("p", "rollout-step");
  update.hidden = true;
  head.append(el("span", "dot"), title, status);
  return {
    elements: [head, facts, update],
    // `d`: the store's device, or undefined while (or if) the store does not know it.
    render(d, now) {
      const name = d ? d.name : deviceId;
      title.textContent = name;
      document.title = `${name} · Pulsewire`;
      head.classList.toggle("offline", !d || !d.online);
      status.textContent = !d ? "unknown device" : d.online ? "online" : "offline";
      facts.textContent = deviceFacts(deviceId, d, now).join(" · ");
      const step = cardStep(rollouts, deviceId, now);
      update.hidden = !step;
      if (!step) return;
      update.dataset.step = step.step;
      const canary = step.canary ? ", a canary" : "";
      update.textContent = `Update to ${step.version} (rollout ${step.rollout}${canary}): ${stepText(step)}`;
    },
  };
}

function deviceFacts(deviceId, d, now) {
  const parts = [`id ${deviceId}`];
  if (d) {
    parts.push(`last seen ${formatAgo(d.lastSeen, now)}`);
    if (d.fw) parts.push(`firmware ${d.fw}`);
    if (d.intervalMs) parts.push(`sampling every ${formatDuration(d.intervalMs)}`);
  }
  return parts;
}
