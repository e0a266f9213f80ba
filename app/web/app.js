// The chat page: sessions, messages with streamed replies, and the memory inspector.

import { api, deltaText, errorFromEvent, streamMessage } from "./api.js";
import { wireKeyButton } from "./apikey.js";
import { clear, formatTime, h, langOf } from "./dom.js";
import { renderContext, renderMemory } from "./inspector.js";
import { renderMarkdown } from "./markdown.js";
import { openNewChat, personaId } from "./newchat.js";
import { renderSessionList } from "./sessions.js";
import { DraftError, loadStrategies, newDraft, patchBody } from "./strategy.js";

const $ = (id) => document.getElementById(id);

const state = {
  personas: new Map(),
  sessions: [],
  session: null,
  messages: [],
  streaming: null, // {controller} while a reply is being generated
  memoryDraft: null, // {sessionId, draft}: the strategy edits not saved yet
};

// ---------- errors ----------

function showError(err) {
  if (err?.name === "AbortError") return;
  console.error(err);
  $("banner-text").textContent = err?.message ?? String(err);
  $("banner").hidden = false;
}

async function guard(fn) {
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}

// ---------- sessions ----------

const sessionPersona = (s) => personaId(s?.persona ?? s?.persona_id);
const personaName = (id) => state.personas.get(id)?.name ?? id;
const strategyOf = (s) => s?.memory?.strategy ?? s?.strategy ?? "";
const titleOf = (s) => s?.title || `Chat with ${personaName(sessionPersona(s))}`;

async function loadSessions() {
  state.sessions = await api.sessions();
  renderSessions();
}

function renderSessions() {
  $("no-sessions").hidden = state.sessions.length > 0;
  renderSessionList($("session-list"), state.sessions, {
    activeId: state.session?.id,
    describe: (s) => ({ title: titleOf(s),
      meta: `${personaName(sessionPersona(s))} · ${strategyOf(s)}` }),
    onOpen: (s) => openSession(s.id),
    onRename: renameSession,
    onDelete: deleteSession,
  });
}

async function renameSession(s, title) {
  const updated = await guard(() => api.updateSession(s.id, { title }));
  if (!updated) return;
  Object.assign(s, updated.id ? updated : { title });
  if (state.session?.id === s.id) Object.assign(state.session, { title: s.title });
  renderHeader();
}

async function deleteSession(s) {
  const ok = await guard(async () => (await api.deleteSession(s.id), true));
  if (ok) {
    state.sessions = state.sessions.filter((x) => x.id !== s.id);
    if (state.session?.id === s.id) {
      state.session = null;
      history.replaceState(null, "", location.pathname);
      renderChat();
      resetContext();
      loadMemory();
    }
  }
  renderSessions();
}

async function newChat() {
  const session = await guard(() => openNewChat([...state.personas.values()], { api }));
  if (!session) return;
  state.sessions.unshift(session);
  await openSession(session.id, session);
}

async function openSession(id, known) {
  if (state.streaming) stop();
  const session = known ?? (await guard(() => api.getSession(id)));
  if (!session) return;
  const messages = await guard(() => api.messages(id));
  state.session = session;
  state.messages = messages ?? [];
  if (location.hash !== `#${id}`) history.replaceState(null, "", `#${id}`);
  document.body.classList.remove("sidebar-open");
  renderSessions();
  renderChat();
  resetContext();
  loadMemory();
  const lastReply = [...state.messages].reverse().find(hasContext);
  if (lastReply) showContext(lastReply.id);
}

// ---------- messages ----------

function renderHeader() {
  const s = state.session;
  $("chat-title").textContent = s ? titleOf(s) : "Memento";
  $("chat-title").lang = langOf(titleOf(s)) ?? "";
  $("chat-sub").textContent = s
    ? `${personaName(sessionPersona(s))} · memory: ${strategyOf(s)}`
    : "Pick a conversation or start a new one.";
}

function renderChat() {
  renderHeader();
  const box = clear($("messages"));
  const ready = Boolean(state.session);
  $("input").disabled = !ready;
  $("send").disabled = !ready;
  if (!ready) {
    box.append($("welcome-template").content.cloneNode(true));
    return;
  }
  const persona = state.personas.get(sessionPersona(state.session));
  // the greeting opens every chat; it is shown, not stored (unless the server stored it first)
  if (persona?.greeting && state.messages[0]?.content !== persona.greeting) {
    box.append(bubble({ role: "assistant", content: persona.greeting, greeting: true }));
  }
  for (const m of state.messages) box.append(bubble(m));
  scrollDown(true);
}

function bubble(m) {
  const body = h("div", { class: "bubble-body", lang: langOf(m.content) });
  fillBody(body, m);
  const persona = personaName(sessionPersona(state.session));
  const meta = h("div", { class: "bubble-meta" },
    h("span", {}, m.role === "user" ? "You" : persona),
    m.created_at ? h("span", {}, formatTime(m.created_at)) : null,
    m.greeting ? h("span", { class: "tag" }, "greeting") : null,
    m.status && m.status !== "complete" && m.status !== "completed"
      ? h("span", { class: `tag status-${m.status}` }, m.status) : null,
    m.usage
      ? h("span", { class: "usage", title: "prompt tokens (cached) → generated tokens" },
        `${m.usage.prompt_tokens} (${m.usage.cached_tokens} cached) → ` +
        `${m.usage.completion_tokens} tok`)
      : null,
    hasContext(m)
      ? h("button", { class: "btn btn-link btn-small inspect", type: "button",
        onclick: () => showContext(m.id, true) }, "context")
      : null);
  return h("article", { class: `msg msg-${m.role}`, dataset: { id: m.id ?? "" } }, body, meta);
}

// Replies generated here have a stored Context; imported history has none to show.
function hasContext(m) {
  return m.role === "assistant" && m.id != null && (!("context_id" in m) || m.context_id != null);
}

function fillBody(body, m) {
  clear(body);
  // user text is shown as typed; replies get the safe markdown renderer
  if (m.role === "assistant") body.append(renderMarkdown(m.content));
  else body.append(h("p", { class: "plain" }, m.content));
  body.lang = langOf(m.content) ?? "";
}

function scrollDown(force) {
  const box = $("messages");
  const near = box.scrollHeight - box.scrollTop - box.clientHeight < 120;
  if (force || near) box.scrollTop = box.scrollHeight;
}

// ---------- sending and streaming ----------

async function send(text) {
  const session = state.session;
  if (!session || state.streaming || !text.trim()) return;
  const userMsg = { role: "user", content: text, created_at: new Date().toISOString() };
  const reply = { role: "assistant", content: "", status: "streaming" };
  const box = $("messages");
  const userNode = bubble(userMsg);
  const replyNode = bubble(reply);
  replyNode.classList.add("streaming");
  box.append(userNode, replyNode);
  scrollDown(true);

  const controller = new AbortController();
  state.streaming = { controller };
  setBusy(true);
  const body = replyNode.querySelector(".bubble-body");
  let frame = 0;
  const paint = () => {
    frame = 0;
    fillBody(body, reply);
    scrollDown();
  };
  const params = { content: text };
  const maxTokens = Number($("max-tokens").value);
  if (maxTokens > 0) params.max_tokens = maxTokens;
  let result = null;
  try {
    for await (const ev of streamMessage(session.id, params, controller.signal)) {
      if (ev.event === "delta") {
        reply.content += deltaText(ev);
        frame ||= requestAnimationFrame(paint);
      } else if (ev.event === "done") {
        result = ev.data;
      } else if (ev.event === "error") {
        throw errorFromEvent(ev);
      }
    }
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    if (frame) cancelAnimationFrame(frame);
    state.streaming = null;
    setBusy(false);
  }
  if (state.session?.id !== session.id) return;
  if (result?.reply) {
    state.messages.push(result.message ?? userMsg, { ...result.reply, usage: result.usage });
    userNode.replaceWith(bubble(result.message ?? userMsg));
    replyNode.replaceWith(bubble({ ...result.reply, usage: result.usage }));
    scrollDown(true);
    showContext(result.reply.id);
  } else {
    // stopped or failed: the server stores what it had, marked interrupted; show its record
    reply.status = "interrupted";
    paint();
    replyNode.classList.remove("streaming");
    replyNode.replaceWith(bubble(reply));
    const messages = await settledMessages(session.id);
    if (messages && state.session?.id === session.id && !state.streaming) {
      state.messages = messages;
      renderChat();
    }
  }
  loadMemory();
  guard(loadSessions);
}

// After a stop the server finishes storing the partial reply a moment later: wait for it.
async function settledMessages(sessionId) {
  let messages;
  for (let attempt = 0; attempt < 20; attempt += 1) {
    await new Promise((r) => setTimeout(r, 250));
    messages = await guard(() => api.messages(sessionId));
    if (!messages || messages.at(-1)?.status !== "pending") break;
  }
  return messages;
}

function stop() {
  state.streaming?.controller.abort();
}

function setBusy(busy) {
  $("stop").hidden = !busy;
  $("send").hidden = busy;
  $("input").disabled = busy || !state.session;
  if (!busy) $("input").focus();
}

// ---------- inspector ----------

function resetContext() {
  $("context-empty").hidden = false;
  clear($("context-view")).hidden = true;
}

async function showContext(messageId, reveal = false) {
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
  renderContext(view, ctx, { messageId, onForget: forget });
  for (const node of document.querySelectorAll(".msg.selected")) node.classList.remove("selected");
  document.querySelector(`.msg[data-id="${CSS.escape(String(messageId))}"]`)
    ?.classList.add("selected");
}

async function loadMemory() {
  const session = state.session;
  const view = $("memory-view");
  if (!session) return renderMemoryEmpty(view);
  // the session's params as stored now, not as the sidebar list had them
  const [memory, fresh] = await Promise.all([
    guard(() => api.memory(session.id)),
    guard(() => api.getSession(session.id)),
  ]);
  if (!memory || !fresh || state.session?.id !== session.id) return;
  Object.assign(session, fresh);
  renderMemory(view, memory, {
    onSaveSummary: (summary, button) => saveMemory({ summary }, button),
    onSavePinned: (pinned, button) => saveMemory({ pinned }, button),
    onForget: forget,
    stored: session.memory,
    draft: memoryDraft(session),
    onSaveStrategy: saveStrategy,
  });
}

// The strategy edits of the open session: kept while the user has unsaved edits, so a re-render
// (after a reply or a save elsewhere) shows them; rebuilt from the stored params otherwise.
function memoryDraft(session) {
  const kept = state.memoryDraft;
  if (kept?.sessionId === session.id && kept.draft.dirty) return kept.draft;
  const draft = newDraft(session.memory.strategy, session.memory);
  state.memoryDraft = { sessionId: session.id, draft };
  return draft;
}

// PATCH the session's memory with what the user changed, and nothing else.
async function saveStrategy(button, { error, note }) {
  const session = state.session;
  const draft = state.memoryDraft?.sessionId === session?.id ? state.memoryDraft.draft : null;
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
  state.memoryDraft = null;
  renderHeader();
  renderSessions();
  await loadMemory();
  const saved = $("memory-strategy-save");
  if (saved) flash(saved, "Saved");
}

function renderMemoryEmpty(view) {
  clear(view).append(h("p", { class: "empty-note" }, "No conversation selected."));
}

async function saveMemory(patch, button) {
  button.disabled = true;
  const ok = await guard(() => api.updateMemory(state.session.id, patch));
  button.disabled = false;
  if (ok) {
    flash(button, "Saved");
    loadMemory();
  }
}

async function forget(messageId, button) {
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

function flash(button, text) {
  const old = button.textContent;
  button.textContent = text;
  setTimeout(() => (button.textContent = old), 1200);
}

function selectTab(name) {
  for (const tab of ["context", "memory"]) {
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
    $(`panel-${tab}`).hidden = tab !== name;
  }
}

function setInspectorOpen(open) {
  document.body.classList.toggle("inspector-open", open);
  $("toggle-inspector").setAttribute("aria-expanded", String(open));
}

// ---------- start ----------

function wire() {
  wireKeyButton($("api-key"));
  $("new-session").onclick = newChat;
  $("banner-close").onclick = () => ($("banner").hidden = true);
  $("stop").onclick = stop;
  $("tab-context").onclick = () => selectTab("context");
  $("tab-memory").onclick = () => selectTab("memory");
  $("toggle-inspector").onclick = () =>
    setInspectorOpen(!document.body.classList.contains("inspector-open"));
  $("toggle-sidebar").onclick = () => {
    const open = document.body.classList.toggle("sidebar-open");
    $("toggle-sidebar").setAttribute("aria-expanded", String(open));
  };
  document.addEventListener("click", (e) => {
    if (document.body.classList.contains("sidebar-open") && !e.target.closest("#sidebar") &&
      !e.target.closest("#toggle-sidebar")) document.body.classList.remove("sidebar-open");
  });
  const input = $("input");
  const resize = () => {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  };
  input.addEventListener("input", resize);
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || state.streaming) return;
    input.value = "";
    resize();
    send(text);
  });
  const maxTokens = $("max-tokens");
  maxTokens.value = localStorage.getItem("memento.max_tokens") ?? maxTokens.value;
  maxTokens.onchange = () => localStorage.setItem("memento.max_tokens", maxTokens.value);
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== state.session?.id) openSession(id);
  });
}

async function start() {
  // keep the welcome card to show again when no session is open
  const template = h("template", { id: "welcome-template" });
  template.content.append($("welcome"));
  document.body.append(template);
  wire();
  renderChat();
  guard(async () => {
    const health = await api.health();
    const model = health.model ?? health.model_id ?? "model";
    $("health").textContent = `${model} · ${health.context_window ?? "?"} tokens`;
    return true;
  }).then((ok) => ok === undefined && ($("health").textContent = "server unreachable"));
  // the strategy editors show what they have meanwhile and say so if this fails
  const strategies = loadStrategies().catch(() => null);
  // the list is a summary; the picker also wants each persona's greeting, so read them all
  const listed = (await guard(() => api.personas())) ?? [];
  const personas = await Promise.all(
    listed.map((p) => api.persona(personaId(p)).then((full) => ({ ...p, ...full }), () => p)),
  );
  for (const p of personas) state.personas.set(personaId(p), p);
  await guard(loadSessions);
  await strategies;
  const id = decodeURIComponent(location.hash.slice(1));
  if (id) await openSession(id);
  document.body.dataset.ready = "true";
}

start();
