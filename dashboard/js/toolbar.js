// The controls above a device's charts: the range buttons, the custom range form, pause/resume
// and the CSV link.

import { button, el } from "./dom.js";
import { RANGES, customRange, toLocalInput } from "./ranges.js";

// `onChoose(range)`: a range was picked. `onPause()`: the pause button was pressed.
// `customStart()`: {start, end, custom} to fill the custom form with. `csvHref()`: the link for
// the rows on screen now, or null while nothing is loaded.
export function makeToolbar({ onChoose, onPause, customStart, csvHref }) {
  const bar = el("div", "toolbar");
  const custom = customForm(onChoose);
  const picker = rangePicker((r) => (r.id === "custom" ? custom.toggle(customStart()) : onChoose(r)));
  const pause = button("Pause", "pause");
  pause.addEventListener("click", onPause);
  const csv = el("a", "csv button", "Download CSV");
  csv.setAttribute("download", "");
  // The link is built when clicked, so a sliding range downloads the window on screen at that moment.
  csv.addEventListener("click", () => {
    const href = csvHref();
    if (href) csv.href = href;
  });
  bar.append(picker.element, pause, csv);
  return {
    elements: [bar, custom.form],
    markRange: picker.mark,
    hideCustom: custom.hide,
    showPaused(paused) {
      pause.textContent = paused ? "Resume" : "Pause";
      pause.setAttribute("aria-pressed", String(paused));
    },
  };
}

function rangePicker(onPick) {
  const element = el("div", "ranges");
  element.setAttribute("role", "group");
  element.setAttribute("aria-label", "Time range");
  const buttons = new Map();
  for (const r of [...RANGES, { id: "custom", label: "Custom…" }]) {
    const b = button(r.label);
    b.dataset.range = r.id;
    b.addEventListener("click", () => onPick(r));
    buttons.set(r.id, b);
    element.append(b);
  }
  return {
    element,
    mark(rangeId) {
      for (const [id, b] of buttons) b.setAttribute("aria-pressed", String(id === rangeId));
    },
  };
}

function dateInput(name, label) {
  const input = el("input");
  input.type = "datetime-local";
  input.name = name;
  input.setAttribute("aria-label", label);
  return input;
}

function customForm(onChoose) {
  const form = el("form", "custom");
  form.hidden = true;
  const startInput = dateInput("start", "Start");
  const endInput = dateInput("end", "End (empty: now)");
  const apply = el("button", "", "Show");
  apply.type = "submit";
  const error = el("span", "error");
  form.append(el("label", "", "From"), startInput, el("label", "", "to"), endInput, apply, error);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    try {
      onChoose(customRange(startInput.value, endInput.value, Date.now()));
      error.textContent = "";
    } catch (err) {
      error.textContent = err.message;
    }
  });
  return {
    form,
    hide() {
      form.hidden = true;
    },
    // Opens with the window on screen (its end left empty, "now", unless the range is custom).
    toggle({ start, end, custom }) {
      form.hidden = !form.hidden;
      if (form.hidden) return;
      startInput.value = toLocalInput(start);
      endInput.value = custom ? toLocalInput(end) : "";
      startInput.focus();
    },
  };
}
