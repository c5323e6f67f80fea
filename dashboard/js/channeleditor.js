// The admin's notification channels: the list (GET /api/channels) with Test and Delete, and a form
// to add a webhook (name, URL, secret) or an email (name, recipients). A test sends a sample alert
// at once and shows what the receiver answered; a refusal (400, or 409 for a channel rules still
// name) is shown in the server's words. `onChanged(channels)` hears the list after each load.

import { button, el } from "./dom.js";
import { formValues, inputField, selectField } from "./formfields.js";
import { channelBody, describeChannel, testOutcome } from "./ruleform.js";

export function makeChannelEditor(ctx, confirm, onChanged) {
  const section = el("section", "panel channels");
  const list = el("ul", "channel-list");
  const c = { ctx, confirm, onChanged, list, ...channelForm() };
  section.append(el("h2", "", "Notification channels"), list, c.form);
  c.form.elements.namedItem("type").addEventListener("change", () => showType(c.form));
  c.form.addEventListener("submit", (event) => {
    event.preventDefault();
    add(c);
  });
  showType(c.form);
  return { element: section, load: () => load(c) };
}

function channelForm() {
  const form = el("form", "channel-form");
  form.noValidate = true;
  const grid = el("div", "form-grid");
  grid.append(
    selectField("Type", "type", ["webhook", "email"]),
    inputField("Name", "name", { maxLength: 100, placeholder: "ops" }),
    inputField("URL", "url", { type: "url", placeholder: "https://hooks.example.org/pulsewire" }),
    inputField("Secret (16+ characters, signs each request)", "secret", { type: "password" }),
    inputField("To (addresses, comma separated)", "to", { placeholder: "oncall@example.org" }),
  );
  const error = el("p", "error form-error");
  error.setAttribute("role", "alert");
  const submit = button("Add channel", "primary");
  submit.type = "submit";
  const buttons = el("div", "buttons");
  buttons.append(submit);
  form.append(el("h3", "", "New channel"), grid, error, buttons);
  return { form, error };
}

function showType(form) {
  const email = form.elements.namedItem("type").value === "email";
  form.querySelector(".field-url").hidden = email;
  form.querySelector(".field-secret").hidden = email;
  form.querySelector(".field-to").hidden = !email;
}

async function load(c) {
  try {
    const channels = await c.ctx.api.channels();
    drawChannels(c, channels);
    c.onChanged(channels);
  } catch (err) {
    c.list.replaceChildren(el("li", "error", `Could not list the channels: ${err.message}`));
  }
}

function drawChannels(c, channels) {
  const rows = channels.map((ch) => {
    const li = el("li", "channel");
    li.dataset.channel = ch.id;
    const test = button("Test");
    const remove = button("Delete", "danger");
    const outcome = el("span", "channel-outcome");
    outcome.setAttribute("aria-live", "polite");
    const text = el("span", "channel-text");
    text.append(el("strong", "channel-name", ch.name), el("span", "muted channel-what", describeChannel(ch)));
    li.append(text, test, remove, outcome);
    test.addEventListener("click", () => testChannel(c, ch, outcome));
    remove.addEventListener("click", () => removeChannel(c, ch, outcome));
    return li;
  });
  c.list.replaceChildren(...(rows.length ? rows : [el("li", "muted", "No channels yet.")]));
}

function say(outcome, text, ok) {
  outcome.textContent = text;
  outcome.classList.toggle("error", !ok);
  outcome.classList.toggle("ok", ok);
}

async function testChannel(c, ch, outcome) {
  outcome.classList.remove("error", "ok");
  outcome.textContent = "Sending a test…";
  try {
    const r = await c.ctx.api.testChannel(ch.id);
    say(outcome, testOutcome(r, ch.type), r.delivered);
  } catch (err) {
    say(outcome, `Test failed: ${err.message}`, false);
  }
}

async function removeChannel(c, ch, outcome) {
  if (!(await c.confirm(`Delete the channel ${ch.name}?`, "This cannot be undone."))) return;
  try {
    await c.ctx.api.deleteChannel(ch.id);
    await load(c);
  } catch (err) {
    say(outcome, `Could not delete: ${err.message}`, false);
  }
}

async function add(c) {
  c.error.textContent = "Adding…";
  try {
    await c.ctx.api.addChannel(channelBody(formValues(c.form)));
    const type = c.form.elements.namedItem("type");
    const kept = type.value; // the next channel is likely of the same type
    c.form.reset();
    type.value = kept;
    c.error.textContent = "";
    showType(c.form);
    await load(c);
  } catch (err) {
    c.error.textContent = err.message;
  }
}
