// The admin's actions on one alert: acknowledge it (no more reminders of this episode), or silence
// its rule on its device for 1, 8 or 24 hours. Shown only while the admin key is held (admin-only).
// `onDone(alert)` gets the server's answer, the alert as it now is.

import { SILENCE_HOURS, silenceUntil } from "./alerts.js";
import { button, el } from "./dom.js";

export function alertActions(ctx, alert, onDone) {
  const box = el("span", "admin-only alert-actions");
  const ack = button("Acknowledge");
  const hours = el("select");
  hours.setAttribute("aria-label", "Silence for");
  for (const h of SILENCE_HOURS) {
    const option = el("option", "", `${h} h`);
    option.value = String(h);
    hours.append(option);
  }
  const silence = button("Silence");
  const status = el("span", "action-status");
  status.setAttribute("aria-live", "polite");
  ack.hidden = Boolean(alert.acked);
  box.append(ack, hours, silence, status);

  async function send(until) {
    status.textContent = "…";
    status.classList.remove("error");
    try {
      const answer = await ctx.api.ackAlert(alert.id, until);
      status.textContent = "";
      onDone(answer);
    } catch (err) {
      status.textContent = err.message;
      status.classList.add("error");
    }
  }
  ack.addEventListener("click", () => send(null));
  silence.addEventListener("click", () => send(silenceUntil(Number(hours.value), Date.now())));
  return box;
}
