// The conversation: header, message bubbles, and sending with the reply streamed in place.

import { api, deltaText, errorFromEvent, streamMessage } from "./api.js";
import { showContext } from "./contexttab.js";
import { clear, formatTime, h, langOf } from "./dom.js";
import { guard, showError } from "./errors.js";
import { renderMarkdown } from "./markdown.js";
import { $, personaName, sessionPersona, state, strategyOf, titleOf } from "./state.js";

export function renderHeader() {
  const s = state.session;
  $("chat-title").textContent = s ? titleOf(s) : "Memento";
  $("chat-title").lang = langOf(titleOf(s)) ?? "";
  $("chat-sub").textContent = s
    ? `${personaName(sessionPersona(s))} · memory: ${strategyOf(s)}`
    : "Write a message to start, or pick a conversation.";
}

export function renderChat() {
  renderHeader();
  const box = clear($("messages"));
  // type-first: with no chat open the box stays usable; sending starts a chat (app.js)
  $("input").disabled = Boolean(state.streaming);
  if (!state.session) {
    box.append($("welcome-template").content.cloneNode(true));
    return;
  }
  const persona = state.personas.get(sessionPersona(state.session));
  // the greeting opens every chat; it is shown, not stored (unless the server stored it first).
  // The session's own greeting is the one her relationship with the user calls for.
  const greeting = state.session.greeting || persona?.greeting;
  if (greeting && state.messages[0]?.content !== greeting) {
    box.append(bubble({ role: "assistant", content: greeting, greeting: true }));
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
export function hasContext(m) {
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

// Send `text` and stream the reply into its bubble. Resolves true when the turn ended (done,
// stopped or failed) with its session still open, so the caller refreshes what it changed.
export async function send(text) {
  const session = state.session;
  if (!session || state.streaming || !text.trim()) return false;
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
  // empty: not sent, so the persona's own max_tokens applies (app.js checks the field first)
  const maxTokens = readMaxTokens();
  if (maxTokens) params.max_tokens = maxTokens;
  let result = null;
  let opened = false; // the server answered with a stream (it stored the message)
  let rejected = false; // refused before that (422, 413, 429...): nothing was stored
  try {
    for await (const ev of streamMessage(session.id, params, controller.signal)) {
      opened = true;
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
    if (err.name !== "AbortError") {
      showError(err);
      rejected = !opened;
    }
  } finally {
    if (frame) cancelAnimationFrame(frame);
    state.streaming = null;
    setBusy(false);
  }
  if (state.session?.id !== session.id) return false;
  if (rejected) {
    // the message was not stored: take its bubbles away and give the text back to edit
    userNode.remove();
    replyNode.remove();
    const input = $("input");
    if (!input.value.trim()) {
      input.value = text;
      input.dispatchEvent(new Event("input")); // re-size the box
    }
    return false;
  }
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
  return true;
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

// The server's cap on max_tokens (MEMENTO_MAX_TOKENS_LIMIT): GET /healthz says it; until it
// has answered (or from an older server), its default.
export const limits = { maxTokens: 1024 };

// What is wrong with the max-tokens field, or "" (empty is fine: the persona's own applies).
export function maxTokensProblem() {
  const field = $("max-tokens");
  const raw = field.value.trim();
  if (field.validity.badInput) return "Max tokens must be a whole number, or empty.";
  if (!raw) return "";
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > limits.maxTokens) {
    return `Max tokens must be between 1 and ${limits.maxTokens} (the server's limit); ` +
      "leave it empty to use the persona's own.";
  }
  return "";
}

export function readMaxTokens() {
  const raw = $("max-tokens").value.trim();
  return raw && !maxTokensProblem() ? Number(raw) : null;
}

export function stop() {
  state.streaming?.controller.abort();
}

function setBusy(busy) {
  $("stop").hidden = !busy;
  $("send").hidden = busy;
  $("input").disabled = busy;
  // back to the composer, unless the user went on typing elsewhere meanwhile (the Memory tab)
  const typing = document.activeElement?.closest("input, textarea, select");
  if (!busy && (!typing || typing === $("input"))) $("input").focus();
}
