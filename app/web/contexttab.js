// The inspector panel: which tab shows, whether it is open (narrow screens), and the Context tab,
// the Context a reply was given.

import { api } from "./api.js";
import { clear } from "./dom.js";
import { guard } from "./errors.js";
import { renderContext } from "./inspector.js";
import { forget } from "./memorytab.js";
import { $, state } from "./state.js";

export function resetContext() {
  $("context-empty").hidden = false;
  clear($("context-view")).hidden = true;
}

// Show the Context of reply `messageId`; `reveal` brings the tab (and the panel) into view.
export async function showContext(messageId, reveal = false) {
  const session = state.session;
  if (!session) return;
  if (reveal) {
    selectTab("context");
    setInspectorOpen(true);
  }
  const ctx = await guard(() => api.context(session.id, messageId));
  if (!ctx || state.session?.id !== session.id) return;
  $("context-empty").hidden = true;
  const view = $("context-view");
  view.hidden = false;
  renderContext(view, ctx, { messageId, onForget: forget, sessionId: session.id });
  for (const node of document.querySelectorAll(".msg.selected")) node.classList.remove("selected");
  document.querySelector(`.msg[data-id="${CSS.escape(String(messageId))}"]`)
    ?.classList.add("selected");
}

export function selectTab(name) {
  for (const tab of ["context", "memory", "lore"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
}

export function setInspectorOpen(open) {
  document.body.classList.toggle("inspector-open", open);
  $("toggle-inspector").setAttribute("aria-expanded", String(open));
}
