// Light, dark, or whatever the system prefers; the choice is remembered in this browser.
// Charts draw on canvas, so they read their colours from the CSS variables here.

const KEY = "pulsewire.theme";
const MODES = ["auto", "light", "dark"];
const LABELS = { auto: "Theme: as the system (click for light)", light: "Theme: light (click for dark)", dark: "Theme: dark (click for the system's)" };
const ICONS = { auto: "◐", light: "☀", dark: "☾" };

export function makeTheme() {
  const listeners = new Set();
  const media = window.matchMedia("(prefers-color-scheme: dark)");
  let mode = MODES.includes(localStorage.getItem(KEY)) ? localStorage.getItem(KEY) : "auto";
  let cache = null;

  function apply() {
    if (mode === "auto") delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = mode;
    cache = null;
    for (const fn of listeners) fn();
  }

  media.addEventListener("change", () => mode === "auto" && apply());
  apply();

  return {
    mode: () => mode,
    label: () => LABELS[mode],
    icon: () => ICONS[mode],
    cycle() {
      mode = MODES[(MODES.indexOf(mode) + 1) % MODES.length];
      localStorage.setItem(KEY, mode);
      apply();
    },
    colors() {
      if (!cache) {
        const style = getComputedStyle(document.documentElement);
        const read = (name) => style.getPropertyValue(name).trim();
        cache = { accent: read("--accent"), fill: read("--fill"), band: read("--band"), muted: read("--muted"), grid: read("--grid") };
      }
      return cache;
    },
    onChange(fn) {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  };
}
