// The latest rollouts, newest first: each with its version, state (and why it halted), how many
// devices are at each step, Pause / Resume / Abort (admin key only; abort asked first), and a table
// of its devices' steps with their reasons. Drawn again whole when a rollout moves: there are at
// most a few dozen rows, and rollouts move a few times a second at most.

import { button, el } from "./dom.js";
import { countsText, rolloutActions, rolloutsNewestFirst, stepText } from "./rollouts.js";

const ACTION_WORDS = { pause: "Pause", resume: "Resume", abort: "Abort" };

export function makeRolloutList(ctx, onChanged) {
  const section = el("section", "panel rollouts");
  const list = el("div", "rollout-list");
  const empty = el("p", "muted", "No rollouts yet.");
  section.append(el("h2", "", "Rollouts"), empty, list);
  let shown = null; // the ids the server listed last; live messages may add newer ones
  return {
    element: section,
    // `ids`: the rollouts the server listed (null: keep those, with any started since).
    render(ids) {
      if (ids !== null) shown = new Set(ids);
      if (shown === null) return; // not listed yet: the listing draws them
      const newest = shown.size ? Math.min(...[...shown].map((id) => created(ctx, id))) : -Infinity;
      const rollouts = rolloutsNewestFirst(ctx.rollouts).filter((r) => shown.has(r.summary.id) || r.summary.created_ms >= newest);
      empty.hidden = rollouts.length > 0;
      list.replaceChildren(...rollouts.map((r) => rolloutSection(ctx, r, onChanged)));
    },
  };
}

function created(ctx, id) {
  return ctx.rollouts.rollouts.get(id)?.summary.created_ms ?? -Infinity;
}

function rolloutSection(ctx, r, onChanged) {
  const s = r.summary;
  const box = el("article", "rollout");
  box.dataset.rollout = s.id;
  box.dataset.state = s.state;
  const head = el("div", "rollout-head");
  const title = el("h3", "", `${s.version}`);
  const state = el("span", "rollout-state", s.state);
  const canary = s.canary_percent ? ` · canary ${s.canary_percent}%` : "";
  const facts = el("span", "muted", `${s.id} · started ${new Date(s.created_ms).toLocaleString()}${canary}`);
  head.append(title, state, facts);
  const error = el("p", "error rollout-error");
  error.setAttribute("role", "alert");
  head.append(actionButtons(ctx, s, error, onChanged));
  box.append(head);
  if (s.reason) box.append(el("p", "rollout-reason", s.reason));
  box.append(el("p", "rollout-counts", countsText(s.counts)), error);
  if (r.devices && r.devices.size) box.append(deviceTable(r.devices));
  return box;
}

function actionButtons(ctx, s, error, onChanged) {
  const span = el("span", "admin-only rollout-actions");
  for (const action of rolloutActions(s)) {
    const b = button(ACTION_WORDS[action], action === "abort" ? "danger" : "");
    b.dataset.action = action;
    b.addEventListener("click", async () => {
      if (action === "abort") {
        const sure = await ctx.admin.confirm(
          `Abort rollout ${s.id}?`,
          `No device is sent ${s.version} any more. Devices already updating finish on their own.`,
        );
        if (!sure) return;
      }
      error.textContent = "";
      try {
        await ctx.api.controlRollout(s.id, action);
        onChanged();
      } catch (err) {
        error.textContent = err.message;
      }
    });
    span.append(b);
  }
  return span;
}

function deviceTable(devices) {
  const table = el("table", "history rollout-devices");
  const head = el("tr");
  for (const h of ["device", "step", "attempts", "updated"]) head.append(el("th", "", h));
  const rows = [...devices.values()]
    .sort((a, b) => a.device.localeCompare(b.device))
    .map((d) => {
      const tr = el("tr");
      tr.dataset.device = d.device;
      const link = el("a", "", d.device);
      link.href = `#/device/${encodeURIComponent(d.device)}`;
      const who = el("td", "rollout-device");
      who.append(link);
      if (d.canary) who.append(el("span", "muted", " (canary)"));
      const step = el("td", "rollout-step", stepText(d));
      step.dataset.step = d.step;
      tr.append(who, step, el("td", "", String(d.attempts)), el("td", "", new Date(d.updated_ms).toLocaleTimeString()));
      return tr;
    });
  table.replaceChildren(head, ...rows);
  return table;
}
