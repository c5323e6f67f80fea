// Building page elements in one line each.

export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function button(text, className = "") {
  const b = el("button", className, text);
  b.type = "button";
  return b;
}
