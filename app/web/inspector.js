// The memory inspector: the Context a reply was given (parts as a stacked bar of the budget) and
// the session's editable memory (summary, pinned facts, recalled items to forget).

import { clear, formatTime, h, langOf, preview } from "./dom.js";
import { renderStrategyEditor } from "./strategy.js";

export const PART_KINDS = ["persona", "pinned", "summary", "recent", "recalled", "new"];

const PART_LABELS = {
  persona: "Persona",
  pinned: "Pinned facts",
  summary: "Summary",
  recalled: "Recalled",
  recent: "Recent turns",
  new: "New message",
};

const fmt = (n) => Number(n ?? 0).toLocaleString();

// ctx: {id, budget, total_tokens, parts: [{kind, tokens, messages, covers?}]}
export function renderContext(container, ctx, { messageId, onForget } = {}) {
  clear(container);
  const budget = Math.max(1, Number(ctx.budget) || 1);
  const parts = ctx.parts ?? [];
  const partSum = parts.reduce((sum, p) => sum + (Number(p.tokens) || 0), 0);
  const total = Number(ctx.total_tokens) || partSum;
  const overhead = Math.max(0, total - partSum);
  const pct = (n) => `${Math.min(100, (n / budget) * 100).toFixed(2)}%`;

  const bar = h(
    "div",
    { class: "ctx-bar", role: "img", "aria-label": `${fmt(total)} of ${fmt(budget)} tokens` },
    parts
      .filter((p) => p.tokens > 0)
      .map((p) =>
        h("span", {
          class: `seg kind-${p.kind}`,
          style: { width: pct(p.tokens) },
          title: `${PART_LABELS[p.kind] ?? p.kind}: ${fmt(p.tokens)} tokens`,
        }),
      ),
    overhead > 0
      ? h("span", { class: "seg kind-overhead", style: { width: pct(overhead) },
        title: `Template overhead: ${fmt(overhead)} tokens` })
      : null,
  );

  container.append(
    h("div", { class: "ctx-head" },
      h("div", {},
        h("strong", {}, messageId ? `Reply #${messageId}` : "Context"),
        ctx.id ? h("span", { class: "muted small" }, ` · ${ctx.id}`) : null),
      h("div", { class: "ctx-total", "data-testid": "context-total" },
        h("strong", {}, fmt(total)), ` / ${fmt(budget)} tokens`,
        h("span", { class: "muted" }, ` (${Math.round((total / budget) * 100)}%)`))),
    bar,
    h("ol", { class: "ctx-parts" },
      parts.map((part) => partRow(part, onForget)),
      overhead > 0
        ? h("li", { class: "ctx-part" },
          h("div", { class: "part-line" },
            h("span", { class: "swatch kind-overhead" }),
            h("span", { class: "part-kind" }, "Template overhead"),
            h("span", { class: "part-tokens" }, `${fmt(overhead)} tok`)))
        : null),
  );
}

function partRow(part, onForget) {
  const messages = part.messages ?? [];
  const label = PART_LABELS[part.kind] ?? part.kind;
  const count = messages.length === 1 ? "1 message" : `${messages.length} messages`;
  return h("li", { class: "ctx-part", dataset: { kind: part.kind } },
    h("details", {},
      h("summary", { class: "part-line" },
        h("span", { class: `swatch kind-${part.kind}` }),
        h("span", { class: "part-kind" }, label),
        h("span", { class: "muted small" }, count),
        h("span", { class: "part-tokens" }, `${fmt(part.tokens)} tok`)),
      part.covers?.length
        ? h("p", { class: "muted small" }, `Summarizes messages ${coverRange(part.covers)}`)
        : null,
      h("ul", { class: "part-messages" },
        messages.map((m) => contextMessage(m, part.kind === "recalled" ? onForget : null)))));
}

function coverRange(ids) {
  const sorted = [...ids].sort((a, b) => a - b);
  return sorted.length > 3 ? `#${sorted[0]}–#${sorted.at(-1)} (${sorted.length})` :
    sorted.map((id) => `#${id}`).join(", ");
}

function contextMessage(m, onForget) {
  return h("li", { class: "part-msg" },
    h("div", { class: "part-msg-meta" },
      h("span", { class: `role role-${m.role}` }, m.role),
      m.id != null ? h("span", { class: "muted small" }, `#${m.id}`) : null,
      m.created_at ? h("span", { class: "muted small" }, formatTime(m.created_at)) : null,
      onForget && m.id != null
        ? h("button", { class: "btn btn-link btn-small", type: "button",
          title: "Remove this message from memory",
          onclick: (e) => onForget(m.id, e.currentTarget) }, "forget")
        : null),
    h("p", { class: "part-msg-text", lang: langOf(m.content) }, preview(m.content, 600)));
}

// memory: {summary, pinned: [{id, text, source}], recalled?: [...], ...}
// stored: the session's memory as GET /v1/sessions/{id} has it ({strategy, ...params});
// draft: the strategy editor's draft (strategy.js), kept by the caller across re-renders.
export function renderMemory(container, memory, { onSaveSummary, onSavePinned, onForget,
  stored, draft, onSaveStrategy }) {
  clear(container);
  const summary = h("textarea", { class: "memory-summary", rows: 6, id: "memory-summary",
    placeholder: "No summary yet — it is written after turns are pruned from the window.",
    lang: langOf(memory.summary) }, memory.summary ?? "");
  const pinned = (memory.pinned ?? []).map((f) => (typeof f === "string" ? { text: f } : f));
  const editable = pinned.filter((f) => !f.source || f.source === "user");
  const fixed = pinned.filter((f) => f.source && f.source !== "user");
  const list = h("ul", { class: "pinned-list", id: "pinned-list" },
    editable.map((f) => pinnedRow(f)));
  const addInput = h("input", { type: "text", placeholder: "Pin a fact she should never forget",
    "aria-label": "New pinned fact" });
  const addFact = () => {
    const text = addInput.value.trim();
    if (!text) return;
    list.append(pinnedRow({ text }));
    addInput.value = "";
  };
  addInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      addFact();
    }
  });
  const collectPinned = () => [...list.querySelectorAll("li")]
    .map((li) => ({ id: li.dataset.id || undefined, text: li.querySelector("input").value.trim() }))
    .filter((f) => f.text);

  // items: every stored message the vector memory may recall; newest first, capped for sanity
  const items = [...(memory.recalled ?? memory.items ?? [])].reverse();
  const shown = items.slice(0, MAX_ITEMS);
  const blocks = [
    onSaveStrategy && draft ? strategyBlock(stored, draft, onSaveStrategy) : null,
    h("section", { class: "memory-block" },
      h("div", { class: "block-head" }, h("h3", {}, "Summary"),
        memory.summary_covers?.length
          ? h("span", { class: "muted small" }, `covers ${memory.summary_covers.length} messages`)
          : null),
      summary,
      h("div", { class: "block-actions" },
        h("button", { class: "btn btn-small", type: "button",
          onclick: (e) => onSaveSummary(summary.value, e.currentTarget) }, "Save summary"))),
    h("section", { class: "memory-block" },
      h("div", { class: "block-head" }, h("h3", {}, "Pinned facts")),
      fixed.length
        ? h("ul", { class: "pinned-fixed" }, fixed.map((f) =>
          h("li", { lang: langOf(f.text) }, h("span", { class: "tag" }, f.source), " ", f.text)))
        : null,
      list,
      h("div", { class: "pin-add" }, addInput,
        h("button", { class: "btn btn-small", type: "button", onclick: addFact }, "Add")),
      h("div", { class: "block-actions" },
        h("button", { class: "btn btn-small", type: "button",
          onclick: (e) => onSavePinned(collectPinned(), e.currentTarget) }, "Save pinned facts"))),
    h("section", { class: "memory-block", id: "memory-items" },
      h("div", { class: "block-head" }, h("h3", {}, "Memories she can recall"),
        h("span", { class: "muted small" },
          items.length > shown.length ? `newest ${shown.length} of ${items.length}` :
            `${items.length}`)),
      shown.length
        ? h("ul", { class: "part-messages" }, shown.map((m) => contextMessage(m, onForget)))
        : h("p", { class: "empty-note" }, "Nothing stored yet."),
      memory.forgotten?.length
        ? h("p", { class: "muted small" }, `${memory.forgotten.length} message(s) forgotten.`)
        : null),
  ];
  container.append(...blocks.filter(Boolean));
}

const MAX_ITEMS = 50;

// The session's strategy and its params, as stored; saving sends only what the user changed.
function strategyBlock(stored, draft, onSave) {
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
  return h("section", { class: "memory-block", id: "memory-strategy-block", oninput: stale,
    onchange: stale },
    h("div", { class: "block-head" }, h("h3", {}, "Strategy"),
      h("span", { class: "muted small" }, `stored: ${describe(stored)}`)),
    h("div", { class: "strategy-row" }, select), help, params, error, note,
    h("div", { class: "block-actions" },
      h("button", { class: "btn btn-small", type: "button", id: "memory-strategy-save",
        onclick: (e) => onSave(e.currentTarget, { error, note }) }, "Save strategy")));
}

function describe(stored) {
  const params = Object.entries(stored ?? {}).filter(([k, v]) => k !== "strategy" && v != null);
  const text = params.map(([k, v]) => `${k} ${v}`).join(", ");
  return `${stored?.strategy ?? "?"}${text ? ` (${text})` : " (defaults)"}`;
}

function pinnedRow(fact) {
  const input = h("input", { type: "text", value: fact.text, "aria-label": "Pinned fact",
    lang: langOf(fact.text) });
  const row = h("li", { dataset: fact.id ? { id: fact.id } : {} }, input,
    h("button", { class: "btn btn-icon btn-small", type: "button", "aria-label": "Unpin",
      title: "Unpin", onclick: () => row.remove() }, "×"));
  return row;
}
