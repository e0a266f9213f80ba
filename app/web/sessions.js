// The sessions sidebar: one row per conversation, with inline rename and a two-step delete.

import { clear, formatTime, h, langOf } from "./dom.js";

let confirming = null; // the id whose delete button asks "Delete?"

// describe(s) -> {title, meta}; onRename(s, title) and onDelete(s) return promises.
export function renderSessionList(list, sessions, { activeId, describe, onOpen, onRename,
  onDelete }) {
  const again = () => renderSessionList(list, sessions, { activeId, describe, onOpen, onRename,
    onDelete });
  clear(list);
  for (const s of sessions) {
    const { title, meta } = describe(s);
    const active = s.id === activeId;
    const deleting = confirming === s.id;
    const when = s.updated_at ?? s.created_at;
    const item = h("li", { class: `session${active ? " active" : ""}`, dataset: { id: s.id } },
      h("button", { class: "session-open", type: "button", "aria-current": active ? "page" : null,
        onclick: () => onOpen(s) },
        h("span", { class: "session-title", lang: langOf(title) }, title),
        h("span", { class: "session-meta" }, meta, when ? ` · ${formatTime(when)}` : "")),
      h("div", { class: "session-actions" },
        h("button", { class: "btn btn-icon btn-small", type: "button", title: "Rename",
          "aria-label": "Rename", onclick: () => rename(item, s, onRename, again) }, "✎"),
        h("button", { class: `btn btn-small ${deleting ? "btn-danger" : "btn-icon"}`,
          type: "button", title: "Delete", "aria-label": deleting ? "Confirm delete" : "Delete",
          onclick: () => remove(s, onDelete, again) }, deleting ? "Delete?" : "×")));
    list.append(item);
  }
}

function rename(item, s, onRename, again) {
  const input = h("input", { class: "rename-input", type: "text", value: s.title ?? "",
    maxlength: 200, "aria-label": "New title" });
  item.querySelector(".session-title").replaceWith(input);
  input.focus();
  input.select();
  let finished = false;
  const finish = async (save) => {
    if (finished) return;
    finished = true;
    const value = input.value.trim();
    if (save && value && value !== s.title) await onRename(s, value);
    again();
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") finish(true);
    if (e.key === "Escape") finish(false);
  });
  input.addEventListener("blur", () => finish(true));
}

async function remove(s, onDelete, again) {
  if (confirming !== s.id) {
    confirming = s.id;
    again();
    setTimeout(() => {
      if (confirming === s.id) {
        confirming = null;
        again();
      }
    }, 4000);
    return;
  }
  confirming = null;
  await onDelete(s);
}
