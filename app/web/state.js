// What the page modules share: the open session and its messages, the personas and sessions
// known, and how a session is described.

import { personaId } from "./newchat.js";

export const $ = (id) => document.getElementById(id);

export const state = {
  personas: new Map(),
  sessions: [],
  session: null,
  messages: [],
  streaming: null, // {controller} while a reply is being generated
};

export const sessionPersona = (s) => personaId(s?.persona ?? s?.persona_id);
export const personaName = (id) => state.personas.get(id)?.name ?? id;
export const strategyOf = (s) => s?.memory?.strategy ?? s?.strategy ?? "";
export const titleOf = (s) => s?.title || `Chat with ${personaName(sessionPersona(s))}`;
