// The Memory tab's content: the strategy and its params, the summary, pinned facts and the
// memories she can recall. What the user types goes into `drafts` (kept by memorytab.js across
// re-draws), so a re-draw shows the unsaved text instead of the stored one, and says so when
// the stored value changed underneath it.

import { clear, formatTime, h, langOf } from "./dom.js";
import { contextMessage } from "./inspector.js";
import { noticeNote, removedFacts, summaryVersions } from "./memoryhistory.js";
import { renderStrategyEditor } from "./strategy.js";

const MAX_ITEMS = 50;

// memory: {summary, pinned: [{id, text, source}], items?: [...], ...} as GET .../memory has it.
// drafts: {strategy, summary: {text, base} | null, pinned: {rows, base} | null, newFact}; `base`
// is the stored value when the edit began. stored: the session's memory params as stored.
// history: {onRestoreSummary(i, button), onRestorePinned(id, button), onDismissNotice(button)}
// for the kept versions of what the user wrote (memoryhistory.js).
export function renderMemory(container, memory, { drafts, stored, onSaveSummary, onSavePinned,
  onSaveStrategy, onForget, onDiscard, relationship, onRememberAlways, onForgetRelationship,
  history = {} }) {
  clear(container);
  const blocks = [
    onSaveStrategy && drafts.strategy ? strategyBlock(stored, drafts, onSaveStrategy) : null,
    summaryBlock(memory, drafts, onSaveSummary, onDiscard, history),
    pinnedBlock(memory, drafts, onSavePinned, onDiscard, history),
    // the recall list before what she knows across conversations: it is this chat's memory
    itemsBlock(memory, onForget),
    relationship && onRememberAlways
      ? relationshipBlock(relationship, onRememberAlways, onForgetRelationship) : null,
  ];
  container.append(...blocks.filter(Boolean));
}

export function renderMemoryEmpty(container) {
  clear(container).append(h("p", { class: "empty-note" }, "No conversation selected."));
}

function summaryBlock(memory, drafts, onSave, onDiscard, history) {
  const stored = memory.summary ?? "";
  if (drafts.summary?.text === stored) drafts.summary = null; // the edit and the store agree
  const draft = drafts.summary;
  // no summary yet: a smaller box, so the rest of the memory shows without scrolling
  const summary = h("textarea", { class: "memory-summary", rows: (draft?.text ?? stored) ? 6 : 3,
    id: "memory-summary",
    placeholder: "No summary yet — it is written after turns are pruned from the window.",
    lang: langOf(draft?.text ?? stored) }, draft?.text ?? stored);
  const unsaved = unsavedTag(Boolean(draft));
  summary.addEventListener("input", () => {
    const text = summary.value;
    drafts.summary = text === stored ? null : { text, base: drafts.summary?.base ?? stored };
    unsaved.hidden = !drafts.summary;
  });
  return h("section", { class: "memory-block", id: "memory-summary-block" },
    h("div", { class: "block-head" }, h("h3", {}, "Summary ", unsaved,
      memory.summary_edited ? h("span", { class: "tag", id: "memory-summary-yours",
        title: "Written by you: forgetting a message keeps it" }, "yours") : null),
      memory.summary_covers?.length
        ? h("span", { class: "muted small" }, `covers ${memory.summary_covers.length} messages`)
        : null),
    history.onDismissNotice ? noticeNote(memory, history.onDismissNotice) : null,
    draft && draft.base !== stored
      ? staleNote("memory-summary-stale", "The stored summary changed while you were editing.",
        stored, () => onDiscard("summary"))
      : null,
    summary,
    h("div", { class: "block-actions" },
      h("button", { class: "btn btn-small", type: "button", id: "memory-summary-save",
        onclick: (e) => onSave(summary.value, e.currentTarget) }, "Save summary")),
    history.onRestoreSummary ? summaryVersions(memory, history.onRestoreSummary) : null);
}

const pinnedOf = (memory) =>
  (memory.pinned ?? []).map((f) => (typeof f === "string" ? { text: f } : f));
const userRows = (memory) => pinnedOf(memory).filter((f) => !f.source || f.source === "user")
  .map((f) => ({ id: f.id ?? null, text: f.text }));

// The user's pinned facts as stored, as one comparable value (a pinned draft's `base`).
export const pinnedKey = (memory) => JSON.stringify(userRows(memory));

function pinnedBlock(memory, drafts, onSave, onDiscard, history) {
  const fixed = pinnedOf(memory).filter((f) => f.source && f.source !== "user");
  const storedRows = userRows(memory);
  const storedKey = pinnedKey(memory);
  if (drafts.pinned && JSON.stringify(drafts.pinned.rows) === storedKey) drafts.pinned = null;
  const draft = drafts.pinned;
  const unsaved = unsavedTag(Boolean(draft || drafts.newFact));
  const list = h("ul", { class: "pinned-list", id: "pinned-list" });
  const rows = () => [...list.querySelectorAll("li")]
    .map((li) => ({ id: li.dataset.id || null, text: li.querySelector("input").value }));
  const sync = () => {
    const now = rows();
    drafts.pinned = JSON.stringify(now) === storedKey ? null
      : { rows: now, base: drafts.pinned?.base ?? storedKey };
    unsaved.hidden = !drafts.pinned && !drafts.newFact;
  };
  const row = (fact, i) => pinnedRow(fact, `pin-${i}`, sync);
  list.append(...(draft?.rows ?? storedRows).map(row));
  list.addEventListener("input", sync);

  const addInput = h("input", { type: "text", placeholder: "Pin a fact she should never forget",
    "aria-label": "New pinned fact", dataset: { key: "pin-new" }, value: drafts.newFact ?? "" });
  addInput.addEventListener("input", () => {
    drafts.newFact = addInput.value;
    unsaved.hidden = !drafts.pinned && !drafts.newFact;
  });
  const addFact = () => {
    const text = addInput.value.trim();
    if (!text) return;
    list.append(row({ text }, list.children.length));
    addInput.value = drafts.newFact = "";
    sync();
  };
  addInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addFact();
    }
  });
  const collect = () => rows().map((f) => ({ id: f.id ?? undefined, text: f.text.trim() }))
    .filter((f) => f.text);

  return h("section", { class: "memory-block", id: "memory-pinned-block" },
    h("div", { class: "block-head" }, h("h3", {}, "Pinned facts ", unsaved)),
    draft && draft.base !== storedKey
      ? staleNote("memory-pinned-stale", "The stored pinned facts changed while you were editing.",
        storedRows.map((f) => f.text).join("\n"), () => onDiscard("pinned"))
      : null,
    fixed.length
      // the persona's own facts, a line each (a click shows one whole): they cannot be edited
      // here, and at full length they push the recall list off the screen
      ? h("ul", { class: "pinned-fixed" }, fixed.map((f) =>
        h("li", { lang: langOf(f.text), title: f.text,
          onclick: (e) => e.currentTarget.classList.toggle("whole") },
        h("span", { class: "tag" }, f.source), " ", f.text)))
      : null,
    list,
    h("div", { class: "pin-add" }, addInput,
      h("button", { class: "btn btn-small", type: "button", onclick: addFact }, "Add")),
    h("div", { class: "block-actions" },
      h("button", { class: "btn btn-small", type: "button", id: "memory-pinned-save",
        onclick: (e) => onSave(collect(), e.currentTarget) }, "Save pinned facts")),
    history.onRestorePinned ? removedFacts(memory, history.onRestorePinned) : null);
}

function pinnedRow(fact, key, onChange) {
  const input = h("input", { type: "text", value: fact.text, "aria-label": "Pinned fact",
    lang: langOf(fact.text), dataset: { key } });
  const row = h("li", { dataset: fact.id ? { id: fact.id } : {} }, input,
    h("button", { class: "btn btn-icon btn-small", type: "button", "aria-label": "Unpin",
      title: "Unpin", onclick: () => (row.remove(), onChange()) }, "×"));
  return row;
}

function unsavedTag(shown) {
  return h("span", { class: "tag tag-unsaved", hidden: !shown,
    title: "Edited here and not saved yet" }, "unsaved");
}

// An unsaved edit whose stored value moved on: say so, show the stored text, offer to take it.
function staleNote(id, text, storedText, onDiscard) {
  return h("div", { class: "stale-note", id, role: "status" },
    h("p", {}, text, " Saving replaces it with yours. ",
      h("button", { class: "btn btn-link btn-small", type: "button", onclick: onDiscard },
        "Discard my edit")),
    h("details", {}, h("summary", {}, "Stored now"),
      h("p", { class: "stale-stored", lang: langOf(storedText) }, storedText || "(empty)")));
}

// What she remembers of the user in every conversation: facts to remember always (added here)
// and a gist of each earlier conversation, each with where it came from and a forget button.
function relationshipBlock(rel, onAdd, onForget) {
  const input = h("input", { type: "text", id: "remember-always",
    placeholder: "Something she should remember in every conversation",
    "aria-label": "Remember always" });
  const add = (e) => {
    const text = input.value.trim();
    if (text) onAdd(text, e.currentTarget);
  };
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      add({ currentTarget: input });
    }
  });
  const forgetButton = (path) => h("button", { class: "btn btn-link btn-small", type: "button",
    title: "She forgets this in every conversation",
    onclick: (e) => onForget(path, e.currentTarget) }, "forget");
  const facts = (rel.facts ?? []).map((f) => h("li", { class: "part-msg" },
    h("div", { class: "part-msg-meta" }, h("span", { class: "tag" }, "always"),
      f.created_at ? h("span", { class: "muted small" }, formatTime(f.created_at)) : null,
      forgetButton(`facts/${encodeURIComponent(f.id)}`)),
    h("p", { class: "part-msg-text", lang: langOf(f.text) }, f.text)));
  const gists = (rel.gists ?? []).filter((g) => g.text).reverse().map((g) =>
    h("li", { class: "part-msg" },
      h("div", { class: "part-msg-meta" },
        h("span", { class: "tag tag-earlier", title: g.session_id }, g.title || "a conversation"),
        h("span", { class: "muted small" }, formatTime(g.ended_at)),
        forgetButton(`gists/${encodeURIComponent(g.session_id)}`)),
      h("p", { class: "part-msg-text", lang: langOf(g.text) }, g.text)));
  return h("section", { class: "memory-block", id: "memory-relationship" },
    h("div", { class: "block-head" }, h("h3", {}, "What she knows of you"),
      h("span", { class: "muted small" },
        `${(rel.sessions ?? []).length} conversation(s) with her`)),
    facts.length || gists.length
      ? h("ul", { class: "part-messages" }, ...facts, ...gists)
      : h("p", { class: "empty-note" }, "Nothing from other conversations yet."),
    h("div", { class: "pin-add" }, input,
      h("button", { class: "btn btn-small", type: "button", id: "remember-always-add",
        onclick: add }, "Remember always")));
}

function itemsBlock(memory, onForget) {
  // every stored message the vector memory may recall; newest first, capped for sanity
  const items = [...(memory.recalled ?? memory.items ?? [])].reverse();
  const shown = items.slice(0, MAX_ITEMS);
  return h("section", { class: "memory-block", id: "memory-items" },
    h("div", { class: "block-head" }, h("h3", {}, "Memories she can recall"),
      h("span", { class: "muted small" },
        (items.length > shown.length ? `newest ${shown.length} of ${items.length}` :
          `${items.length}`) + (memory.indexing ? ` (indexing ${memory.indexing} more…)` : ""))),
    memory.index_unavailable
      ? h("p", { class: "stale-note", id: "memory-index-unavailable", role: "status" },
        `Recall is paused: ${memory.index_unavailable}. Turns go on without it and are ` +
        "indexed once it is back.")
      : null,
    shown.length
      ? h("ul", { class: "part-messages" }, shown.map((m) => contextMessage(m, onForget)))
      : memory.index_unavailable ? null : h("p", { class: "empty-note" }, "Nothing stored yet."),
    memory.forgotten?.length
      ? h("p", { class: "muted small" }, `${memory.forgotten.length} message(s) forgotten.`)
      : null);
}

// The session's strategy and its params, as stored; saving sends only what the user changed.
// Folded by default (its many fields would push the memory itself below the fold): the head
// says what is stored; it stays open across re-draws once opened, and while it holds an edit.
function strategyBlock(stored, drafts, onSave) {
  const draft = drafts.strategy;
  const select = h("select", { id: "memory-strategy", "aria-label": "Memory strategy" });
  const params = h("div", { class: "param-grid", id: "memory-params" });
  const help = h("p", { class: "muted small" });
  const error = h("p", { class: "form-error", id: "memory-strategy-error", role: "alert",
    hidden: true });
  const note = h("p", { class: "muted small", id: "memory-strategy-note", role: "status",
    hidden: true });
  renderStrategyEditor({ select, paramsBox: params, help, draft, stored });
  // a message about the last save stops applying once the user edits again
  const stale = () => (error.hidden = note.hidden = true);
  const block = h("details", { class: "memory-block strategy-block", id: "memory-strategy-block",
    oninput: stale, onchange: stale },
    h("summary", { class: "block-head" }, h("h3", {}, "Strategy"),
      h("span", { class: "muted small" }, `stored: ${describe(stored)}`)),
    h("div", { class: "strategy-row" }, select), help, params, error, note,
    h("div", { class: "block-actions" },
      h("button", { class: "btn btn-small", type: "button", id: "memory-strategy-save",
        onclick: (e) => onSave(e.currentTarget, { error, note }) }, "Save strategy")));
  block.open = Boolean(drafts.strategyOpen || draft.dirty);
  block.addEventListener("toggle", () => (drafts.strategyOpen = block.open));
  return block;
}

function describe(stored) {
  const params = Object.entries(stored ?? {}).filter(([k, v]) => k !== "strategy" && v != null);
  const text = params.map(([k, v]) => `${k} ${v}`).join(", ");
  return `${stored?.strategy ?? "?"}${text ? ` (${text})` : " (defaults)"}`;
}
