// Labelled form fields built in one line each, for the rule and channel forms.

import { el } from "./dom.js";

// A labelled <input>; `attrs` are set as its properties (type, placeholder, min, step...).
export function inputField(label, name, attrs = {}) {
  const input = el("input");
  input.name = name;
  input.autocomplete = "off";
  Object.assign(input, attrs);
  return labelled(label, input);
}

// A labelled <select> of `options`: values, or [value, text] pairs.
export function selectField(label, name, options) {
  const select = el("select");
  select.name = name;
  for (const o of options) {
    const [value, text] = Array.isArray(o) ? o : [o, o];
    const option = el("option", "", text);
    option.value = value;
    select.append(option);
  }
  return labelled(label, select);
}

function labelled(text, control) {
  const label = el("label", `field field-${control.name}`);
  label.append(el("span", "", text), control);
  return label;
}

// The form's values by field name, as text.
export function formValues(form) {
  const out = {};
  for (const c of form.elements) if (c.name && c.type !== "checkbox") out[c.name] = c.value;
  return out;
}

// Every named field of the form set from `values` (by name; fields without a value are left).
export function setFormValues(form, values) {
  for (const c of form.elements) if (c.name && c.type !== "checkbox" && c.name in values) c.value = values[c.name];
}
