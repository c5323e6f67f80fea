// The admin's alert rules: the list (GET /api/rules) with Edit and Delete, and one form to add a
// rule or change one. The server checks what is sent; its refusal (a 400's detail) is shown next to
// the form, word for word. Names, devices and metrics from the server go in as text.

import { button, el } from "./dom.js";
import { formValues, inputField, selectField, setFormValues } from "./formfields.js";
import { BANDS, COMPARISONS, KINDS, describeRule, ruleBody, ruleFields } from "./ruleform.js";
import { SEVERITIES } from "./alerts.js";

const EMPTY = {
  name: "", kind: "threshold", device: "*", metric: "", op: ">", value: "", low: "", high: "",
  for_s: "0", repeat_s: "0", severity: "warning",
};

export function makeRuleEditor(ctx, confirm) {
  const section = el("section", "panel rules");
  const list = el("ul", "rule-list");
  const r = { ctx, confirm, list, editing: null, channels: [], ...ruleForm() };
  section.append(el("h2", "", "Rules"), list, r.form);
  r.form.addEventListener("submit", (event) => {
    event.preventDefault();
    save(r);
  });
  r.form.elements.namedItem("kind").addEventListener("change", () => showCondition(r.form));
  r.form.elements.namedItem("op").addEventListener("change", () => showCondition(r.form));
  r.cancel.addEventListener("click", () => edit(r, null));
  edit(r, null);
  return {
    element: section,
    load: () => load(r),
    // The channels a rule may name: one checkbox each.
    setChannels(channels) {
      r.channels = channels;
      drawChannels(r, checkedChannels(r));
    },
  };
}

function ruleForm() {
  const form = el("form", "rule-form");
  form.noValidate = true; // the server's detail says what is wrong, in the same words as the API
  const title = el("h3");
  const grid = el("div", "form-grid");
  grid.append(
    inputField("Name", "name", { maxLength: 100, placeholder: "freezer warm" }),
    selectField("Kind", "kind", KINDS.map((k) => [k, k.replace("_", " ")])),
    inputField("Device", "device", { placeholder: "a device id, or * for every device" }),
    inputField("Metric", "metric", { placeholder: "temperature" }),
    selectField("Condition", "op", [...COMPARISONS, ...BANDS]),
    inputField("Value", "value", { type: "number", step: "any" }),
    inputField("Low", "low", { type: "number", step: "any" }),
    inputField("High", "high", { type: "number", step: "any" }),
    inputField("For (s)", "for_s", { type: "number", min: "0", step: "1" }),
    inputField("Repeat every (s, 0: once)", "repeat_s", { type: "number", min: "0", step: "1" }),
    selectField("Severity", "severity", SEVERITIES),
  );
  const channelBox = el("fieldset", "rule-channels");
  const error = el("p", "error form-error");
  error.setAttribute("role", "alert");
  const save = button("Save rule", "primary");
  save.type = "submit";
  const cancel = button("Cancel");
  const buttons = el("div", "buttons");
  buttons.append(cancel, save);
  form.append(title, grid, channelBox, error, buttons);
  return { form, title, channelBox, error, cancel };
}

// Comparisons take one value, bands a low and a high; a no_data rule has no condition.
function showCondition(form) {
  const kind = form.elements.namedItem("kind").value;
  const band = BANDS.includes(form.elements.namedItem("op").value);
  const show = { op: kind === "threshold", value: kind === "threshold" && !band, low: kind === "threshold" && band };
  show.high = show.low;
  for (const [name, on] of Object.entries(show)) form.querySelector(`.field-${name}`).hidden = !on;
}

function checkedChannels(r) {
  return [...r.channelBox.querySelectorAll("input:checked")].map((c) => c.value);
}

function drawChannels(r, checked) {
  const boxes = r.channels.map((ch) => {
    const label = el("label", "option");
    const box = el("input");
    box.type = "checkbox";
    box.value = ch.id;
    box.checked = checked.includes(ch.id);
    label.append(box, el("span", "", ` ${ch.name} (${ch.type})`));
    return label;
  });
  const none = el("span", "muted", "No channels yet: the rule's alerts show on the dashboard only.");
  r.channelBox.replaceChildren(el("legend", "", "Notify"), ...(boxes.length ? boxes : [none]));
}

// `rule`: the stored rule to change, or null for a new one.
function edit(r, rule) {
  r.editing = rule;
  r.title.textContent = rule ? "Edit rule" : "New rule";
  r.cancel.hidden = !rule;
  r.error.textContent = "";
  setFormValues(r.form, rule ? ruleFields(rule) : EMPTY);
  drawChannels(r, rule ? rule.channels : []);
  showCondition(r.form);
  if (rule) r.form.elements.namedItem("name").focus();
}

async function load(r) {
  try {
    drawRules(r, await r.ctx.api.rules());
  } catch (err) {
    r.list.replaceChildren(el("li", "error", `Could not list the rules: ${err.message}`));
  }
}

function drawRules(r, rules) {
  const rows = rules.map((rule) => {
    const li = el("li", "rule");
    li.dataset.rule = rule.id;
    li.dataset.severity = rule.severity;
    const change = button("Edit");
    change.addEventListener("click", () => edit(r, rule));
    const remove = button("Delete", "danger");
    remove.addEventListener("click", () => removeRule(r, rule));
    const text = el("span", "rule-text");
    text.append(el("strong", "rule-name", rule.name), el("span", "muted rule-what", describeRule(rule)));
    li.append(el("span", "sev", rule.severity), text, change, remove);
    return li;
  });
  r.list.replaceChildren(...(rows.length ? rows : [el("li", "muted", "No rules yet.")]));
}

async function save(r) {
  const body = ruleBody(formValues(r.form), checkedChannels(r));
  r.error.textContent = "Saving…";
  try {
    await r.ctx.api.saveRule(r.editing ? r.editing.id : null, body);
    edit(r, null);
    await load(r);
  } catch (err) {
    r.error.textContent = err.message;
  }
}

async function removeRule(r, rule) {
  if (!(await r.confirm(`Delete the rule ${rule.name}?`, "This cannot be undone."))) return;
  try {
    await r.ctx.api.deleteRule(rule.id);
    if (r.editing && r.editing.id === rule.id) edit(r, null);
    await load(r);
  } catch (err) {
    r.error.textContent = `Could not delete ${rule.name}: ${err.message}`;
  }
}
