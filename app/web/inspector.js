// The Context a reply was given, as the inspector shows it: its parts in prompt order as a
// stacked bar of the budget, then part by part with the messages each holds.

import { clear, formatTime, h, langOf, preview } from "./dom.js";

export const PART_KINDS =
  ["persona", "pinned", "relationship", "lore", "kept", "summary", "recent", "recalled", "new"];

const PART_LABELS = {
  persona: "Persona",
  pinned: "Pinned facts",
  relationship: "What she knows of you",
  lore: "Lore (World Info)",
  kept: "Recalled, kept",
  summary: "Summary",
  recent: "Recent turns",
  recalled: "Recalled this turn",
  new: "New message",
};

const fmt = (n) => Number(n ?? 0).toLocaleString();

// ctx: {id, budget, total_tokens, parts: [{kind, tokens, messages, covers?}]}
// sessionId: the session the Context belongs to (items of other sessions are tagged).
export function renderContext(container, ctx, { messageId, onForget, sessionId } = {}) {
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
    // what went wrong while assembling it (recall unavailable): the reply was made without it
    ...(ctx.notes ?? []).map((note) =>
      h("p", { class: "stale-note ctx-note", role: "status" }, note)),
    h("ol", { class: "ctx-parts" },
      parts.map((part) => partRow(part, onForget, sessionId)),
      overhead > 0
        ? h("li", { class: "ctx-part" },
          h("div", { class: "part-line" },
            h("span", { class: "swatch kind-overhead" }),
            h("span", { class: "part-kind" }, "Template overhead"),
            h("span", { class: "part-tokens" }, `${fmt(overhead)} tok`)))
        : null),
  );
}

function partRow(part, onForget, sessionId) {
  const messages = part.messages ?? [];
  const label = PART_LABELS[part.kind] ?? part.kind;
  // recalled turns reach the model as one system message, a line each ("[date] role: text"):
  // listed one by one (each can be forgotten), without a role of their own; so do the
  // relationship's facts and gists (edited in the Memory tab)
  // kept: recalled turns held in place across turns so the KV cache keeps them
  const recalled = part.kind === "recalled" || part.kind === "kept";
  // lore: lorebook entries that fired, each with why (which key in which message)
  const lore = part.kind === "lore";
  const joined = recalled || lore || part.kind === "relationship";
  // recalled and kept parts list stored messages (a user's or a reply), not user/reply
  // exchanges: counted as what they are (issue 17: "Recalled 14 turns" were 14 messages)
  const noun = lore ? "entry" : part.kind === "relationship" ? "item" : "message";
  const plural = noun === "entry" ? "entries" : `${noun}s`;
  const count = `${messages.length} ${messages.length === 1 ? noun : plural}`;
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
      joined && messages.length
        ? h("p", { class: "muted small part-note" }, "Sent as one system message, a line each.")
        : null,
      h("ul", { class: "part-messages" },
        lore
          ? messages.map((m, i) => loreEntry(m, part.fired?.[i]))
          : messages.map((m) => contextMessage(m, recalled ? onForget : null,
            { role: !joined, sessionId }))),
      lore && part.dropped?.length
        ? h("div", { class: "lore-dropped" },
          h("p", { class: "muted small" }, "Fired but did not fit the budget:"),
          h("ul", { class: "part-messages" },
            part.dropped.map((f) => h("li", { class: "part-msg", dataset: { entry: f.entry } },
              h("p", { class: "muted small lore-why" },
                `${f.name || f.entry} · ${f.why}`)))))
        : null));
}

// One lorebook entry of the lore part: its name, book and why it fired, then its text.
function loreEntry(m, fired) {
  return h("li", { class: "part-msg", dataset: { entry: fired?.entry ?? "" } },
    fired
      ? h("div", { class: "part-msg-meta" },
        h("strong", { class: "small" }, fired.name || fired.entry),
        h("span", { class: "muted small", title: fired.book }, `#${fired.entry}`),
        h("span", { class: "tag" }, fired.reason))
      : null,
    fired ? h("p", { class: "muted small lore-why" }, fired.why) : null,
    h("p", { class: "part-msg-text", lang: langOf(m.content) }, preview(m.content, 600)));
}

function coverRange(ids) {
  const sorted = [...ids].sort((a, b) => a - b);
  return sorted.length > 3 ? `#${sorted[0]}–#${sorted.at(-1)} (${sorted.length})` :
    sorted.map((id) => `#${id}`).join(", ");
}

// One stored message; with onForget, a button that removes it from memory.
export function contextMessage(m, onForget, { role = true, sessionId = null } = {}) {
  return h("li", { class: "part-msg" },
    h("div", { class: "part-msg-meta" },
      role ? h("span", { class: `role role-${m.role}` }, m.role) : null,
      m.id != null ? h("span", { class: "muted small" }, `#${m.id}`) : null,
      m.created_at ? h("span", { class: "muted small" }, formatTime(m.created_at)) : null,
      // from another conversation with her (memory scopes): then, not now
      m.session_id && m.session_id !== sessionId
        ? h("span", { class: "tag tag-earlier", title: m.session_id },
        "earlier conversation") : null,
      onForget && m.id != null
        ? h("button", { class: "btn btn-link btn-small", type: "button",
          title: "Remove this message from memory",
          onclick: (e) => onForget(m.id, e.currentTarget) }, "forget")
        : null),
    h("p", { class: "part-msg-text", lang: langOf(m.content) }, preview(m.content, 600)));
}
