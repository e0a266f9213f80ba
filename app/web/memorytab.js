// The Memory tab's data and actions: load the session's memory, save the summary, the pinned
// facts and the strategy, forget a stored turn. The tab is re-drawn after every reply and save;
// what the user typed and has not saved (drafts) and where they were typing survive it.

import { api } from "./api.js";
import { guard } from "./errors.js";
import { pinnedKey, renderMemory, renderMemoryEmpty } from "./memoryview.js";
import { $, sessionPersona, state } from "./state.js";
import { DraftError, newDraft, patchBody } from "./strategy.js";

// The open session's unsaved edits: {sessionId, strategy, summary, pinned, newFact} (see
// memoryview.js). Opening another session starts afresh.
let drafts = null;
let shown = null; // {sessionId, memory}: what the tab shows, to re-draw without a request
let loads = 0; // the latest loadMemory call; an older answer arriving later is not drawn
// While stored turns wait for the index (after an import or a strategy change) the tab asks
// again, a bounded number of times per session: a turn the index never takes must not poll forever.
const INDEX_POLL_MS = 1000;
const INDEX_POLLS = 120;
let polls = { sessionId: null, left: INDEX_POLLS };
let hooks = { onSessionChanged: () => {} };

// onSessionChanged(): the session's stored params changed (the header and list show them).
export function wireMemoryTab({ onSessionChanged }) {
  hooks = { onSessionChanged };
}

export async function loadMemory() {
  const ticket = ++loads;
  const session = state.session;
  if (!session) {
    drafts = shown = null;
    return renderMemoryEmpty($("memory-view"));
  }
  // the session's params as stored now, not as the sidebar list had them
  const [memory, fresh, relationship] = await Promise.all([
    guard(() => api.memory(session.id)),
    guard(() => api.getSession(session.id)),
    guard(() => api.relationship(sessionPersona(session))),
  ]);
  if (!memory || !fresh || ticket !== loads || state.session?.id !== session.id) return;
  Object.assign(session, fresh);
  shown = { sessionId: session.id, memory, relationship };
  redraw();
  if (polls.sessionId !== session.id) polls = { sessionId: session.id, left: INDEX_POLLS };
  if (memory.indexing > 0 && polls.left-- > 0) {
    setTimeout(() => ticket === loads && loadMemory(), INDEX_POLL_MS);
  }
}

function redraw() {
  const session = state.session;
  if (!session || shown?.sessionId !== session.id) return;
  const view = $("memory-view");
  const focus = focusIn(view);
  renderMemory(view, shown.memory, {
    drafts: draftsFor(session),
    stored: session.memory,
    onSaveSummary: saveSummary,
    onSavePinned: savePinned,
    onSaveStrategy: saveStrategy,
    onForget: forget,
    relationship: shown.relationship,
    onRememberAlways: rememberAlways,
    onForgetRelationship: forgetRelationship,
    history: {
      onRestoreSummary: (version, button) =>
        act(button, () => api.restoreSummary(state.session.id, version)),
      onRestorePinned: (factId, button) =>
        act(button, () => api.restorePinned(state.session.id, factId)),
      onDismissNotice: (button) => act(button, () => api.dismissNotice(state.session.id)),
    },
    onDiscard: (which) => {
      drafts[which] = null;
      redraw();
    },
  });
  refocus(view, focus);
}

// Unsaved strategy edits are kept while dirty; otherwise the draft starts from the stored params.
function draftsFor(session) {
  if (drafts?.sessionId !== session.id) {
    drafts = { sessionId: session.id, strategy: null, summary: null, pinned: null, newFact: "",
      strategyOpen: false };
  }
  if (!drafts.strategy?.dirty) drafts.strategy = newDraft(session.memory.strategy, session.memory);
  return drafts;
}

// The field being typed in (how to find it again after a re-draw) and its caret.
function focusIn(view) {
  const el = document.activeElement;
  if (!el || !view.contains(el) || !el.matches("input, textarea, select")) return null;
  const selector = el.id ? `#${CSS.escape(el.id)}`
    : el.dataset.param ? `[data-param="${CSS.escape(el.dataset.param)}"]`
      : el.dataset.key ? `[data-key="${CSS.escape(el.dataset.key)}"]` : null;
  if (!selector) return null;
  const caret = typeof el.selectionStart === "number"
    ? [el.selectionStart, el.selectionEnd, el.selectionDirection] : null;
  return { selector, caret, scrollTop: el.scrollTop };
}

function refocus(view, focus) {
  const el = focus && view.querySelector(focus.selector);
  if (!el) return;
  el.focus({ preventScroll: true });
  if (focus.caret && typeof el.selectionStart === "number") el.setSelectionRange(...focus.caret);
  el.scrollTop = focus.scrollTop;
}

async function saveSummary(text, button) {
  const memory = await saveMemory({ summary: text }, button);
  if (!memory) return;
  // typed on while the save was under way: that is still a draft, now over what was saved
  if (drafts?.summary?.text === text) drafts.summary = null;
  else if (drafts?.summary) drafts.summary.base = memory.summary;
  await loadMemory();
  flash($("memory-summary-save"), "Saved");
}

async function savePinned(pinned, button) {
  const memory = await saveMemory({ pinned }, button);
  if (!memory) return;
  const draft = drafts?.pinned;
  const texts = (rows) => JSON.stringify(rows.map((f) => f.text.trim()).filter(Boolean));
  if (draft && texts(draft.rows) === texts(pinned)) drafts.pinned = null;
  else if (draft) draft.base = pinnedKey(memory);
  await loadMemory();
  flash($("memory-pinned-save"), "Saved");
}

// PATCH the session's memory; resolves with the memory as stored, or undefined (error shown).
async function saveMemory(patch, button) {
  button.disabled = true;
  const memory = await guard(() => api.updateMemory(state.session.id, patch));
  button.disabled = false;
  return memory;
}

// PATCH the session's memory params with what the user changed, and nothing else.
async function saveStrategy(button, { error, note }) {
  const session = state.session;
  const draft = drafts?.sessionId === session?.id ? drafts.strategy : null;
  if (!session || !draft) return;
  const tell = (node, text) => {
    error.hidden = note.hidden = true;
    node.textContent = text;
    node.hidden = false;
  };
  let memory;
  try {
    memory = patchBody(draft, session.memory);
  } catch (err) {
    if (!(err instanceof DraftError)) throw err;
    return tell(error, err.message);
  }
  if (!memory) return tell(note, "Nothing to save: no param was changed.");
  button.disabled = true;
  let updated;
  try {
    updated = await api.updateSession(session.id, { memory });
  } catch (err) {
    return tell(error, err.message);
  } finally {
    button.disabled = false;
  }
  Object.assign(session, updated);
  state.sessions = state.sessions.map((s) => (s.id === session.id ? session : s));
  drafts.strategy = null;
  hooks.onSessionChanged();
  await loadMemory();
  flash($("memory-strategy-save"), "Saved");
}

// Forget a stored turn (from the Memory tab or a recalled turn in the Context tab).
export async function forget(messageId, button) {
  button.disabled = true;
  const ok = await guard(async () => {
    await api.forget(state.session.id, `items/${messageId}`); // 204: no body
    return true;
  });
  if (!ok) {
    button.disabled = false;
    return;
  }
  button.closest("li")?.classList.add("forgotten");
  button.textContent = "forgotten";
  loadMemory();
}

// A restore or a dismiss: the stored memory changes under any unsaved edit, which the tab then
// flags as stale (the user's typing is never thrown away).
async function act(button, call) {
  button.disabled = true;
  const ok = await guard(async () => {
    await call();
    return true;
  });
  if (!ok) button.disabled = false;
  else await loadMemory();
}

// A fact she remembers in every conversation with this user (the relationship, not the session).
async function rememberAlways(text, button) {
  const session = state.session;
  button.disabled = true;
  const ok = await guard(() =>
    api.rememberAlways(sessionPersona(session), { text, session_id: session.id }));
  button.disabled = false;
  if (ok) await loadMemory();
}

// Forget a relationship item: `facts/<id>` or `gists/<session id>`.
async function forgetRelationship(itemPath, button) {
  button.disabled = true;
  const ok = await guard(async () => {
    await api.forgetRelationship(sessionPersona(state.session), itemPath); // 204: no body
    return true;
  });
  if (!ok) button.disabled = false;
  else await loadMemory();
}

function flash(button, text) {
  if (!button) return;
  const old = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = old), 1200);
}
