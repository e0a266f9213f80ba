// The Lore tab: the lorebooks in force for the open session (its persona's own, then the books
// attached to it), their entries with an on/off switch (uploaded books; a persona's book is
// read-only here), attach/detach/upload, and a test box: type a message, see which entries
// it would fire now and why (POST .../lore/dry-run, budgets included).

import { api } from "./api.js";
import { clear, h, langOf, preview } from "./dom.js";
import { guard } from "./errors.js";
import { $, sessionPersona, state } from "./state.js";

let loads = 0;

export async function loadLore() {
  const ticket = ++loads;
  const view = $("lore-view");
  const session = state.session;
  if (!session) {
    clear(view).append(h("p", { class: "empty-note" }, "No conversation selected."));
    return;
  }
  const [inForce, mine, persona] = await Promise.all([
    guard(() => api.sessionLore(session.id)),
    guard(() => api.lorebooks()),
    guard(() => api.persona(sessionPersona(session))),
  ]);
  if (!inForce || ticket !== loads || state.session?.id !== session.id) return;
  const attached = inForce.books.filter((b) => b.source === "attached");
  const full = await Promise.all(attached.map((b) => guard(() => api.lorebook(b.id))));
  if (ticket !== loads || state.session?.id !== session.id) return;
  const books = inForce.books.map((b) => ({
    ...b,
    entries: b.source === "persona" ? persona?.character_book?.entries ?? []
      : full[attached.indexOf(b)]?.book?.entries ?? [],
  }));
  const others = (mine ?? []).filter((b) => !attached.some((a) => a.id === b.id));
  render(clear(view), session.id, books, others);
}

function render(view, sessionId, books, others) {
  view.append(
    h("section", { class: "memory-block", id: "lore-test" },
      h("h3", {}, "Test a message"),
      h("textarea", { id: "lore-test-input", rows: 2, placeholder: "용한테 가 보자…" }),
      h("button", { class: "btn btn-small", type: "button", id: "lore-test-run",
        onclick: () => runTest(sessionId) }, "What would fire?"),
      h("div", { id: "lore-test-result" })),
    h("section", { class: "memory-block", id: "lore-books" },
      h("h3", {}, "Books in force"),
      books.length ? null
        : h("p", { class: "empty-note" }, "No lorebook: attach or upload one below."),
      books.map((b) => bookBlock(sessionId, b))),
    h("section", { class: "memory-block", id: "lore-attach" },
      h("h3", {}, "Add a book"),
      others.length
        ? h("div", {},
          h("select", { id: "lore-attach-select" },
            others.map((b) => h("option", { value: b.id }, `${b.name} (${b.entries})`))),
          h("button", { class: "btn btn-small", type: "button", onclick: () =>
            attach(sessionId, $("lore-attach-select").value) }, "Attach"))
        : null,
      h("label", { class: "muted small" }, "Upload a lorebook (character_book JSON): ",
        h("input", { type: "file", accept: ".json,application/json", id: "lore-upload",
          onchange: (e) => upload(sessionId, e.target.files?.[0]) }))),
  );
}

function bookBlock(sessionId, book) {
  const editable = book.source === "attached";
  return h("div", { class: "lore-book", dataset: { book: book.id } },
    h("div", { class: "part-line" },
      h("strong", {}, book.name),
      h("span", { class: "tag" }, book.source === "persona" ? "persona's own" : "attached"),
      h("span", { class: "muted small" },
        `${book.entries.length} ${book.entries.length === 1 ? "entry" : "entries"}`),
      editable
        ? h("button", { class: "btn btn-link btn-small", type: "button",
          onclick: () => detach(sessionId, book.id) }, "detach")
        : null),
    h("ul", { class: "part-messages" },
      book.entries.map((e) => entryRow(book, e, editable))));
}

function entryRow(book, entry, editable) {
  const id = String(entry.id ?? "");
  const keys = (entry.keys ?? []).join(", ");
  return h("li", { class: "part-msg lore-entry", dataset: { entry: id } },
    h("div", { class: "part-msg-meta" },
      h("label", { class: "small" },
        h("input", { type: "checkbox", checked: entry.enabled !== false, disabled: !editable,
          title: editable ? "on: it may fire" : "a persona's book is edited with the persona",
          onchange: (e) => toggle(book.id, id, e.target.checked, e.target) }),
        " ", h("strong", {}, entry.name || entry.comment || keys || `#${id}`)),
      entry.constant ? h("span", { class: "tag" }, "constant") : null,
      h("span", { class: "muted small" }, keys),
      editable
        ? h("button", { class: "btn btn-link btn-small lore-edit", type: "button",
          onclick: (e) => openEditor(book.id, entry, e.target.closest(".lore-entry")) }, "edit")
        : null),
    h("p", { class: "part-msg-text", lang: langOf(entry.content ?? "") },
      preview(entry.content ?? "", 200)));
}

// Keys and text of one entry of an uploaded book, edited in place (PATCH keeps every other
// field of the entry as it is); the server's 422 (a bad regex key, a limit) is shown as is.
function openEditor(bookId, entry, row) {
  if (row.querySelector(".lore-editor")) return;
  const keys = h("input", { class: "lore-edit-keys", value: (entry.keys ?? []).join(", "),
    "aria-label": "keys, comma-separated" });
  const text = h("textarea", { class: "lore-edit-content", rows: 3,
    "aria-label": "entry text" }, entry.content ?? "");
  const form = h("div", { class: "lore-editor" },
    h("label", { class: "muted small" }, "Keys (comma-separated) ", keys),
    text,
    h("div", {},
      h("button", { class: "btn btn-small lore-edit-save", type: "button", onclick: async () => {
        const body = {
          keys: keys.value.split(",").map((k) => k.trim()).filter(Boolean),
          content: text.value,
        };
        if (await guard(() => api.patchLoreEntry(bookId, String(entry.id ?? ""), body))) {
          loadLore();
        }
      } }, "Save"),
      h("button", { class: "btn btn-link btn-small", type: "button",
        onclick: () => form.remove() }, "Cancel")));
  row.append(form);
  text.focus();
}

async function runTest(sessionId) {
  const content = $("lore-test-input").value;
  const out = clear($("lore-test-result"));
  if (!content.trim()) return;
  const run = await guard(() => api.loreDryRun(sessionId, content));
  if (!run || state.session?.id !== sessionId) return;
  const line = (f, dropped) => h("li", { class: "part-msg", dataset: { entry: f.entry } },
    h("strong", { class: "small" }, f.name || f.entry), " ",
    h("span", { class: dropped ? "muted small" : "small lore-why" }, f.why));
  out.append(
    run.fired.length || run.dropped.length
      ? h("ul", { class: "part-messages" },
        run.fired.map((f) => line(f, false)), run.dropped.map((f) => line(f, true)))
      : h("p", { class: "empty-note" }, "Nothing would fire."),
    run.fired.length ? h("p", { class: "muted small" }, `${run.tokens} tokens`) : null,
  );
}

async function toggle(bookId, entryId, enabled, box) {
  const ok = await guard(() => api.patchLoreEntry(bookId, entryId, { enabled }));
  if (!ok) box.checked = !enabled;
}

async function attach(sessionId, bookId) {
  if (bookId && (await guard(() => api.attachLore(sessionId, bookId)))) loadLore();
}

async function detach(sessionId, bookId) {
  if ((await guard(() => api.detachLore(sessionId, bookId))) !== undefined) loadLore();
}

async function upload(sessionId, file) {
  if (!file) return;
  const book = await guard(async () => api.createLorebook(JSON.parse(await file.text())));
  if (book) await attach(sessionId, book.id);
}
