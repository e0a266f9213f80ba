// What the user wrote and automation or an edit replaced (issue 15): the notice that says what
// happened to the summary, the summary's previous versions with "Restore", and the user's
// removed pinned facts with "Pin again". Nothing the user wrote disappears without a trace here.

import { formatTime, h, langOf } from "./dom.js";

// memory.notice, with a button to dismiss it.
export function noticeNote(memory, onDismiss) {
  if (!memory.notice) return null;
  return h("div", { class: "stale-note memory-notice", id: "memory-notice", role: "status" },
    h("p", {}, memory.notice, " ",
      h("button", { class: "btn btn-link btn-small", type: "button", id: "memory-notice-dismiss",
        onclick: (e) => onDismiss(e.currentTarget) }, "Dismiss")));
}

// memory.summary_versions (newest first), each restorable; open when a notice points at them.
export function summaryVersions(memory, onRestore) {
  const versions = memory.summary_versions ?? [];
  if (!versions.length) return null;
  const rows = versions.map((v, i) => h("li", { class: "part-msg", dataset: { version: i } },
    h("div", { class: "part-msg-meta" },
      v.edited ? h("span", { class: "tag" }, "yours") : h("span", { class: "tag" }, "summarizer"),
      h("span", { class: "muted small" }, `${v.reason} · ${formatTime(v.replaced_at)}`),
      h("button", { class: "btn btn-link btn-small", type: "button",
        onclick: (e) => onRestore(i, e.currentTarget) }, "Restore")),
    h("p", { class: "part-msg-text stale-stored", lang: langOf(v.text) }, v.text)));
  return h("details", { class: "memory-versions", id: "memory-summary-versions",
    open: Boolean(memory.notice) },
    h("summary", {}, `Previous versions (${versions.length})`),
    h("ul", { class: "part-messages" }, rows));
}

// memory.pinned_removed (newest first): facts of the user's that were unpinned or replaced.
export function removedFacts(memory, onRestore) {
  const removed = memory.pinned_removed ?? [];
  if (!removed.length) return null;
  return h("details", { class: "memory-versions", id: "pinned-removed" },
    h("summary", {}, `Removed facts (${removed.length})`),
    h("ul", { class: "part-messages" }, removed.map((r) =>
      h("li", { class: "part-msg", dataset: { id: r.fact.id } },
        h("div", { class: "part-msg-meta" },
          h("span", { class: "muted small" }, `removed ${formatTime(r.removed_at)}`),
          h("button", { class: "btn btn-link btn-small", type: "button",
            onclick: (e) => onRestore(r.fact.id, e.currentTarget) }, "Pin again")),
        h("p", { class: "part-msg-text", lang: langOf(r.fact.text) }, r.fact.text)))));
}
