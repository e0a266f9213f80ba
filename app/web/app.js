// The chat page's wiring: the sessions sidebar, opening a session (chat, Context and Memory tabs
// follow it), the buttons and keys, and start-up. The parts live in their own modules.

import { api } from "./api.js";
import { wireKeyButton } from "./apikey.js";
import {
  hasContext, limits, maxTokensProblem, readMaxTokens, renderChat, renderHeader, send, stop,
} from "./chat.js";
import { resetContext, selectTab, setInspectorOpen, showContext } from "./contexttab.js";
import { h } from "./dom.js";
import { typed, typingDone } from "./typing.js";
import { guard, showError } from "./errors.js";
import { loadLore } from "./loretab.js";
import { loadMemory, wireMemoryTab } from "./memorytab.js";
import { openNewChat, personaId } from "./newchat.js";
import { renderSessionList } from "./sessions.js";
import { $, personaName, sessionPersona, state, strategyOf, titleOf } from "./state.js";
import { loadStrategies } from "./strategy.js";

// ---------- sessions ----------

let personasRead;
const personasLoaded = new Promise((resolve) => (personasRead = resolve));

async function loadSessions() {
  state.sessions = await api.sessions();
  // the open session as listed now (its first message gives it a title on the server)
  const open = state.sessions.find((s) => s.id === state.session?.id);
  if (open && open.title !== state.session.title) {
    state.session.title = open.title;
    renderHeader();
  }
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
  $("input").focus(); // the next thing to do is to write
}

// Type-first: a message sent with no chat open starts one with the persona the new-chat form
// would preselect (the first listed) and her own memory strategy and params.
async function quickStart() {
  await personasLoaded; // a message typed while the page was still loading waits for them
  const persona = [...state.personas.keys()][0];
  if (!persona) {
    showError(new Error("No personas are loaded: the chat cannot start."));
    return false;
  }
  const session = await guard(() => api.createSession({ persona }));
  if (!session) return false;
  state.sessions.unshift(session);
  await openSession(session.id, session);
  return state.session?.id === session.id;
}

async function openSession(id, known) {
  if (state.streaming) stop();
  typingDone(); // a draft waiting to be told was typed for the chat being left
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
  loadLore();
  const lastReply = [...state.messages].reverse().find(hasContext);
  if (lastReply) showContext(lastReply.id);
}

// A turn changes the memory (summary, recallable turns) and the session's place in the list.
async function sendTurn(text) {
  if (!(await send(text))) return;
  loadMemory();
  guard(loadSessions);
  // typed while the reply streamed: the server can prefill for it only now
  if ($("input").value.trim()) typed($("input").value, readMaxTokens());
}

// ---------- start ----------

function wire() {
  wireKeyButton($("api-key"));
  wireMemoryTab({ onSessionChanged: () => (renderHeader(), renderSessions()) });
  $("new-session").onclick = newChat;
  $("banner-close").onclick = () => ($("banner").hidden = true);
  $("stop").onclick = stop;
  $("tab-context").onclick = () => selectTab("context");
  $("tab-memory").onclick = () => selectTab("memory");
  $("tab-lore").onclick = () => selectTab("lore");
  $("toggle-inspector").onclick = () =>
    setInspectorOpen(!document.body.classList.contains("inspector-open"));
  $("close-inspector").onclick = () => {
    setInspectorOpen(false);
    $("toggle-inspector").focus();
  };
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && document.body.classList.contains("inspector-open") &&
      !document.querySelector("dialog[open]")) setInspectorOpen(false);
  });
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
  input.addEventListener("input", () => typed(input.value, readMaxTokens()));
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  let starting = false; // a chat is being created for the first message
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || state.streaming || starting) return;
    if (!checkMaxTokens(true)) return; // the text stays in the box
    if (!state.session) {
      starting = true;
      const ok = await quickStart().finally(() => (starting = false));
      if (!ok) return;
    }
    // cleared while sending; a message the server refuses comes back (chat.js)
    if (input.value === text) {
      input.value = "";
      resize();
    }
    typingDone();
    sendTurn(text);
  });
  // empty by default: not sent, so the persona's own max_tokens applies
  const maxTokens = $("max-tokens");
  maxTokens.max = String(limits.maxTokens);
  const saved = localStorage.getItem("memento.max_tokens");
  maxTokens.value = saved ?? "";
  checkMaxTokens(false); // flagged now; cleared once the server's limit is known (start)
  maxTokens.onchange = () => {
    if (checkMaxTokens(false)) localStorage.setItem("memento.max_tokens", maxTokens.value.trim());
  };
  maxTokens.oninput = () => checkMaxTokens(false);
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== state.session?.id) openSession(id);
  });
}

// The max-tokens field is valid (empty or 1..limit); if not, say why (on send, in the banner).
function checkMaxTokens(report) {
  const field = $("max-tokens");
  const problem = maxTokensProblem();
  field.setCustomValidity(problem);
  field.classList.toggle("invalid", Boolean(problem));
  field.title = problem || "Maximum reply length in tokens (empty: the persona's own)";
  if (problem && report) showError(new Error(problem));
  return !problem;
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
    if (Number.isInteger(health.max_tokens_limit) && health.max_tokens_limit > 0) {
      limits.maxTokens = health.max_tokens_limit;
      $("max-tokens").max = String(limits.maxTokens);
    }
    // a value over the limit kept by an older page (its field went up to 4096): not kept
    const field = $("max-tokens");
    if (maxTokensProblem() && field.value === localStorage.getItem("memento.max_tokens")) {
      field.value = "";
      localStorage.removeItem("memento.max_tokens");
    }
    checkMaxTokens(false);
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
  personasRead();
  await guard(loadSessions);
  await strategies;
  const id = decodeURIComponent(location.hash.slice(1));
  if (id) await openSession(id);
  document.body.dataset.ready = "true";
}

start();
