// The firmware page (#/firmware): the stored releases, a form to start a rollout (admin key only)
// and the latest rollouts with each device's step. Lists are read again when the page opens, when
// the live channel reconnects and when the admin key comes; the live channel's `rollout` messages
// keep them current in between. Everything from the server goes in as text.

import { button, el } from "./dom.js";
import { inputField, selectField } from "./formfields.js";
import { formatValue } from "./format.js";
import { makeRolloutList } from "./rolloutlist.js";
import { applyRolloutDetail, applyRolloutList, isActive, rolloutBody } from "./rollouts.js";

export function mountFleetView(root, ctx) {
  document.title = "Firmware · Pulsewire";
  const back = el("a", "back", "← All devices");
  back.href = "#/";
  const releases = makeReleaseList();
  const start = makeStartForm(ctx, () => load());
  const rollouts = makeRolloutList(ctx, () => load());
  const error = el("p", "error fleet-error");
  error.setAttribute("role", "alert");
  root.replaceChildren(back, el("h1", "", "Firmware"), error, releases.element, start.element, rollouts.element);

  let loading = 0;
  async function load() {
    const mine = ++loading;
    try {
      const [list, summaries] = await Promise.all([ctx.api.releases(), ctx.api.rollouts()]);
      if (mine !== loading) return;
      releases.show(list);
      start.setReleases(list);
      applyRolloutList(ctx.rollouts, summaries);
      // Each rollout's devices; for those over, once (their steps no longer move).
      const wanted = summaries.filter((s) => isActive(s) || ctx.rollouts.rollouts.get(s.id)?.devices === null);
      for (const d of await Promise.all(wanted.map((s) => ctx.api.rollout(s.id)))) applyRolloutDetail(ctx.rollouts, d);
      if (mine !== loading) return;
      error.textContent = "";
      rollouts.render(summaries.map((s) => s.id));
    } catch (err) {
      error.textContent = `Could not list releases and rollouts: ${err.message}`;
    }
  }
  load();
  return {
    render() {},
    tick() {},
    onRollout: () => rollouts.render(null),
    onReconnect: load,
    adminChanged: load,
    destroy() {
      loading += 1;
    },
  };
}

function makeReleaseList() {
  const section = el("section", "panel releases");
  const table = el("table", "history release-table");
  const empty = el("p", "muted", "No releases yet: build one with pulsewire release build, then pulsewire release upload.");
  section.append(el("h2", "", "Releases"), empty, table);
  return {
    element: section,
    show(list) {
      empty.hidden = list.length > 0;
      table.hidden = list.length === 0;
      const head = el("tr");
      for (const h of ["version", "files", "size", "uploaded"]) head.append(el("th", "", h));
      const rows = [...list].reverse().map((r) => {
        const tr = el("tr");
        tr.dataset.version = r.version;
        tr.append(
          el("td", "release-version", r.version),
          el("td", "", String(r.files.length)),
          el("td", "", formatValue("size_bytes", r.size)), // a byte count, by its name (format.js)
          el("td", "", new Date(r.created_ms).toLocaleString()),
        );
        return tr;
      });
      table.replaceChildren(head, ...rows);
    },
  };
}

// Start a rollout: a release, the devices (ids, or every device) and the canaries' share. The
// server's refusal (400, 409) is shown under the form in its own words.
function makeStartForm(ctx, onStarted) {
  const section = el("section", "panel admin-only start-rollout");
  const form = el("form", "rollout-form");
  form.noValidate = true;
  const version = selectField("Release", "version", []);
  const all = el("label", "option");
  const allBox = el("input");
  allBox.type = "checkbox";
  allBox.name = "all";
  all.append(allBox, " every device");
  const grid = el("div", "form-grid");
  grid.append(
    version,
    inputField("Devices", "devices", { placeholder: "ids, separated by commas" }),
    inputField("Canary (%)", "canary", { type: "number", min: "0", max: "100", step: "1", value: "0" }),
  );
  const error = el("p", "error form-error");
  error.setAttribute("role", "alert");
  const buttons = el("div", "buttons");
  buttons.append(button("Start rollout", "primary"));
  buttons.lastChild.type = "submit";
  form.append(grid, all, error, buttons);
  section.append(el("h2", "", "Start a rollout"), form);
  allBox.addEventListener("change", () => (form.elements.devices.disabled = allBox.checked));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const f = form.elements;
    const { body, error: why } = rolloutBody({ version: f.version.value, devices: f.devices.value, all: allBox.checked, canary: f.canary.value });
    if (why) {
      error.textContent = why;
      return;
    }
    error.textContent = "Starting…";
    try {
      const started = await ctx.api.startRollout(body);
      applyRolloutDetail(ctx.rollouts, started);
      error.textContent = "";
      f.devices.value = "";
      onStarted();
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return {
    element: section,
    setReleases(list) {
      const select = form.elements.version;
      const chosen = select.value;
      select.replaceChildren(...[...list].reverse().map((r) => Object.assign(el("option", "", r.version), { value: r.version })));
      if (list.some((r) => r.version === chosen)) select.value = chosen;
    },
  };
}
