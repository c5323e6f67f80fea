// The alerts page (#/alerts): the admin's rule editor and notification channels. Without the admin
// key it says so and offers to unlock; with it, rules and channels are loaded (again when the key
// comes back). The rules' channel checkboxes follow the channel list.

import { button, el } from "./dom.js";
import { makeChannelEditor } from "./channeleditor.js";
import { makeRuleEditor } from "./ruleeditor.js";

export function mountAlertsView(root, ctx) {
  document.title = "Alerts · Pulsewire";
  const back = el("a", "back", "← All devices");
  back.href = "#/";
  const locked = el("p", "empty locked");
  const unlock = button("Admin", "link");
  unlock.addEventListener("click", () => ctx.admin.openUnlock());
  locked.append("Rules and channels are changed with the admin key: ", unlock, ".");
  const rules = makeRuleEditor(ctx, ctx.admin.confirm);
  const channels = makeChannelEditor(ctx, ctx.admin.confirm, (list) => rules.setChannels(list));
  const panels = el("div", "admin-only alert-admin");
  panels.append(rules.element, channels.element);
  root.replaceChildren(back, el("h1", "", "Alert rules"), locked, panels);

  function adminChanged() {
    locked.hidden = ctx.admin.active();
    if (!ctx.admin.active()) return;
    rules.load();
    channels.load();
  }
  adminChanged();
  return {
    render() {},
    tick() {},
    adminChanged,
    destroy() {},
  };
}
