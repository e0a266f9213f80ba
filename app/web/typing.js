// While the user types, tell the server what the message says so far (PUT .../draft) so that
// it prefills the next prompt, recall included, before the message is sent: the reply then
// waits only for the message itself (issue 13). Sent when typing pauses, never twice for the
// same text; best effort: a draft the server cannot take changes nothing the user sees.

import { api } from "./api.js";
import { state } from "./state.js";

const PAUSE_MS = 400;
const QUIET_AFTER_429_MS = 30_000; // drafts must not eat the rate limit the messages need

let timer = 0;
let told = ""; // session, text and max tokens of the last draft sent
let quietUntil = 0;

// `maxTokens` is what the message will be sent with (null: the persona's own).
export function typed(text, maxTokens) {
  clearTimeout(timer);
  timer = setTimeout(() => tell(text, maxTokens), PAUSE_MS);
}

// The message went out (or the chat changed): a draft still waiting is stale.
export function typingDone() {
  clearTimeout(timer);
  told = "";
}

async function tell(text, maxTokens) {
  const session = state.session;
  if (!session || state.streaming || Date.now() < quietUntil) return;
  const key = JSON.stringify([session.id, text, maxTokens]);
  if (key === told) return;
  told = key;
  const body = { content: text };
  if (maxTokens) body.max_tokens = maxTokens;
  try {
    await api.draft(session.id, body);
  } catch (e) {
    told = "";
    if (e.status === 429) quietUntil = Date.now() + QUIET_AFTER_429_MS;
  }
}
