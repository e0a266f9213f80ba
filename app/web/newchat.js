// The "new chat" dialog: a persona picker (name, description, greeting) and the memory strategy
// with its params. Resolves with the body for POST /v1/sessions, or null when cancelled.

import { clear, h, langOf, preview } from "./dom.js";

// Params the memory strategies accept (memory/strategies/*: their Params models), with their
// defaults as placeholders. A blank field means "the default"; the server validates the rest.
const SUMMARY = { name: "summary_max_tokens", label: "Summary cap (tokens)", placeholder: 256 };
export const STRATEGIES = {
  buffer: { help: "Every turn, verbatim. Refuses to go on once it no longer fits.", params: [] },
  window: {
    help: "The last k turns.",
    params: [{ name: "k", label: "Turns kept (k)", placeholder: 10 }],
  },
  token_buffer: {
    help: "The most recent messages that fit in N tokens.",
    params: [{ name: "max_tokens", label: "Buffer (tokens)", placeholder: 1024 }],
  },
  summary: { help: "One running summary of the whole conversation.", params: [SUMMARY] },
  summary_buffer: {
    help: "Recent turns verbatim plus a summary of everything older.",
    params: [{ name: "max_tokens", label: "Buffer (tokens)", placeholder: 1024 }, SUMMARY],
  },
  vector: {
    help: "Past turns relevant to the new message, recalled by meaning, plus a short recent buffer.",
    params: [
      { name: "buffer_tokens", label: "Recent buffer (tokens)", placeholder: 256 },
      { name: "recall_k", label: "Turns recalled", placeholder: 32 },
    ],
  },
  hybrid: {
    help: "Summary + recent buffer + recalled turns + pinned facts: the most complete memory.",
    params: [
      { name: "buffer_tokens", label: "Recent buffer (tokens)", placeholder: 512 },
      { name: "recall_k", label: "Turns recalled", placeholder: 32 },
      SUMMARY,
    ],
  },
};

const COMMON = [{ name: "budget_tokens", label: "Context budget (tokens)", placeholder: "model" }];

export function personaId(p) {
  return typeof p === "string" ? p : p?.id ?? "";
}

export function openNewChat(personas, { api } = {}) {
  const dialog = document.getElementById("new-dialog");
  const grid = clear(document.getElementById("persona-grid"));
  const select = clear(document.getElementById("new-strategy"));
  const paramsBox = document.getElementById("strategy-params");
  const help = document.getElementById("strategy-help");
  const title = document.getElementById("new-title");
  const error = document.getElementById("new-error");
  title.value = "";
  error.hidden = true;

  for (const name of Object.keys(STRATEGIES)) select.append(h("option", { value: name }, name));

  const showParams = () => {
    const spec = STRATEGIES[select.value] ?? { params: [], help: "" };
    help.textContent = spec.help;
    clear(paramsBox);
    for (const param of [...spec.params, ...COMMON]) {
      const id = `param-${param.name}`;
      paramsBox.append(h("div", { class: "form-row" },
        h("label", { for: id }, param.label),
        h("input", { id, type: "number", min: 1, step: 1, inputmode: "numeric",
          dataset: { param: param.name }, placeholder: String(param.placeholder ?? "default") })));
    }
  };
  select.onchange = showParams;

  const pick = (persona) => {
    const memory = persona.memory ?? persona.default_memory ?? {};
    const strategy = persona.default_strategy ?? memory.strategy ?? persona.strategy;
    if (strategy && STRATEGIES[strategy]) select.value = strategy;
    showParams();
  };

  personas.forEach((persona, idx) => {
    const id = personaId(persona);
    const input = h("input", { type: "radio", name: "persona", value: id, checked: idx === 0,
      onchange: () => pick(persona) });
    grid.append(h("label", { class: "persona-card", dataset: { persona: id } },
      input,
      h("span", { class: "persona-name" }, persona.name ?? id),
      persona.description
        ? h("span", { class: "persona-desc", lang: langOf(persona.description) },
          preview(persona.description, 160))
        : null,
      persona.greeting
        ? h("span", { class: "persona-greeting", lang: langOf(persona.greeting) },
          `“${preview(persona.greeting, 140)}”`)
        : null));
  });
  if (!personas.length) grid.append(h("p", { class: "form-error" }, "No personas are loaded."));
  if (personas.length) pick(personas[0]);
  else showParams();

  return new Promise((resolve) => {
    const form = document.getElementById("new-form");
    const cancel = document.getElementById("new-cancel");
    const done = (value) => {
      form.onsubmit = null;
      cancel.onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(value);
    };
    cancel.onclick = () => done(null);
    dialog.onclose = () => done(null);
    form.onsubmit = async (e) => {
      e.preventDefault();
      const persona = form.querySelector("input[name=persona]:checked")?.value;
      if (!persona) return showError(error, "Choose a persona first.");
      const memory = { strategy: select.value };
      for (const input of paramsBox.querySelectorAll("input[data-param]")) {
        if (input.value.trim()) memory[input.dataset.param] = Number(input.value);
      }
      const body = { persona, memory };
      if (title.value.trim()) body.title = title.value.trim();
      const button = document.getElementById("new-create");
      button.disabled = true;
      try {
        done(await api.createSession(body));
      } catch (err) {
        showError(error, err.message);
      } finally {
        button.disabled = false;
      }
    };
    dialog.showModal();
  });
}

function showError(node, message) {
  node.textContent = message;
  node.hidden = false;
}
