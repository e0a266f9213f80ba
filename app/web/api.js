// The HTTP API (docs/ARCHITECTURE.md §1.12), as small async functions. Every failure becomes an
// ApiError carrying the server's own `error.message`, so the page can show it instead of failing
// silently.
// Every call carries the stored API key; a 401 asks for a key and retries with it.

import { authHeaders, getKey, promptForKey } from "./apikey.js";

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message || `request failed (${status})`);
    this.status = status;
    this.code = code || "error";
    this.field = field || null;
  }
}

function errorFromBody(status, body) {
  const err = body && typeof body === "object" ? body.error ?? body : null;
  if (err && typeof err === "object") {
    let message = err.message ?? err.detail;
    if (Array.isArray(message)) message = message.map((d) => d.msg ?? String(d)).join("; ");
    const field = err.field ? ` (${err.field})` : "";
    return new ApiError(status, err.code, message ? `${message}${field}` : null, err.field);
  }
  return new ApiError(status, "error", typeof body === "string" && body ? body : null);
}

async function readBody(res) {
  const text = await res.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

// fetch with the stored key; on 401 ask for a key (unless another request already got a new
// one) and try again, until a request passes or the user dismisses the prompt.
async function authorizedFetch(path, init) {
  for (;;) {
    const used = getKey();
    let res;
    try {
      res = await fetch(path, { ...init, headers: authHeaders(init.headers) });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", "The server cannot be reached. Is it running?");
    }
    if (res.status !== 401) return res;
    const err = errorFromBody(401, await readBody(res));
    if (getKey() === used && !(await promptForKey(err.message))) throw err;
  }
}

async function request(method, path, body, { signal } = {}) {
  const res = await authorizedFetch(path, {
    method,
    signal,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await readBody(res);
  if (!res.ok) throw errorFromBody(res.status, data);
  return data;
}

const enc = encodeURIComponent;
const sessionPath = (id) => `/v1/sessions/${enc(id)}`;

export const api = {
  health: () => request("GET", "/healthz"),
  personas: async () => unwrap(await request("GET", "/v1/personas"), "personas"),
  persona: (id) => request("GET", `/v1/personas/${enc(id)}`),
  strategies: () => request("GET", "/v1/strategies"),
  sessions: async () => unwrap(await request("GET", "/v1/sessions"), "sessions"),
  createSession: (body) => request("POST", "/v1/sessions", body),
  getSession: (id) => request("GET", sessionPath(id)),
  updateSession: (id, body) => request("PATCH", sessionPath(id), body),
  deleteSession: (id) => request("DELETE", sessionPath(id)),
  messages: async (id) =>
    unwrap(await request("GET", `${sessionPath(id)}/messages?limit=500`), "messages"),
  draft: (id, body) => request("PUT", `${sessionPath(id)}/draft`, body),
  context: (id, messageId) => request("GET", `${sessionPath(id)}/context/${enc(messageId)}`),
  memory: (id) => request("GET", `${sessionPath(id)}/memory`),
  updateMemory: (id, body) => request("PATCH", `${sessionPath(id)}/memory`, body),
  forget: (id, itemPath) => request("DELETE", `${sessionPath(id)}/memory/${itemPath}`),
  restoreSummary: (id, version) =>
    request("POST", `${sessionPath(id)}/memory/summary/restore`, { version }),
  restorePinned: (id, factId) =>
    request("POST", `${sessionPath(id)}/memory/pinned/${enc(factId)}/restore`),
  dismissNotice: (id) => request("DELETE", `${sessionPath(id)}/memory/notice`),
  relationship: (persona) => request("GET", `/v1/relationships/${enc(persona)}`),
  rememberAlways: (persona, body) =>
    request("POST", `/v1/relationships/${enc(persona)}/facts`, body),
  forgetRelationship: (persona, itemPath) =>
    request("DELETE", `/v1/relationships/${enc(persona)}/${itemPath}`),
  lorebooks: async () => unwrap(await request("GET", "/v1/lorebooks"), "lorebooks"),
  lorebook: (id) => request("GET", `/v1/lorebooks/${enc(id)}`),
  createLorebook: (book) => request("POST", "/v1/lorebooks", book),
  patchLoreEntry: (bookId, entryId, body) =>
    request("PATCH", `/v1/lorebooks/${enc(bookId)}/entries/${enc(entryId)}`, body),
  sessionLore: (id) => request("GET", `${sessionPath(id)}/lore`),
  attachLore: (id, book) => request("POST", `${sessionPath(id)}/lore`, { book }),
  detachLore: (id, book) => request("DELETE", `${sessionPath(id)}/lore/${enc(book)}`),
  loreDryRun: (id, content) => request("POST", `${sessionPath(id)}/lore/dry-run`, { content }),
};

// Lists may come bare or wrapped ({sessions: [...]}); accept both.
function unwrap(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.data)) return data.data;
  return [];
}

// POST a message with stream:true and yield the server-sent events as {event, data} as they
// arrive. `data` is parsed JSON when it is JSON, else the raw text.
export async function* streamMessage(sessionId, body, signal) {
  const res = await authorizedFetch(`${sessionPath(sessionId)}/messages`, {
    method: "POST",
    signal,
    headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
    body: JSON.stringify({ ...body, stream: true }),
  });
  if (!res.ok) throw errorFromBody(res.status, await readBody(res));
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    const frames = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = frames.pop();
    for (const frame of frames) {
      const ev = parseFrame(frame);
      if (ev) yield ev;
    }
  }
  const last = parseFrame(buffer);
  if (last) yield last;
}

export function parseFrame(frame) {
  let event = "message";
  const data = [];
  for (const line of frame.split(/\r\n|\n|\r/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const name = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (name === "event") event = value;
    else if (name === "data") data.push(value);
  }
  if (!data.length) return null;
  const raw = data.join("\n");
  let parsed = raw;
  try {
    parsed = JSON.parse(raw);
  } catch {
    /* plain text payload */
  }
  return { event, data: parsed, raw };
}

// The text of a `delta` event, whatever its payload shape.
export function deltaText(ev) {
  const d = ev.data;
  if (typeof d === "string") return d;
  if (d && typeof d === "object") return d.text ?? d.delta ?? d.content ?? "";
  return ev.raw;
}

export function errorFromEvent(ev) {
  return errorFromBody(ev.data?.status ?? 500, ev.data ?? ev.raw);
}
