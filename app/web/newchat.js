// The "new chat" dialog: a persona picker (name, description, greeting) and the memory strategy
// with its params. Resolves with the session POST /v1/sessions made, or null when cancelled.

import { clear, h, langOf, preview } from "./dom.js";
import { createBody, newDraft, renderStrategyEditor } from "./strategy.js";

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

  // One draft for the whole dialog: params typed for a strategy survive switching strategy and
  // picking another persona. A persona sets the strategy only until the user picks one.
  const draft = newDraft(personaStrategy(personas[0]) ?? "summary_buffer");
  let chosen = null; // the persona whose params a blank field stands for
  let userPicked = false;
  const editor = renderStrategyEditor({
    select, paramsBox, help, draft,
    // the server fills blanks of the persona's own strategy with the persona's params
    placeholders: (strategy) =>
      chosen && strategy === personaStrategy(chosen) ? chosen.memory?.params ?? {} : {},
    onSwitch: () => (userPicked = true),
  });

  const pick = (persona) => {
    chosen = persona;
    const strategy = personaStrategy(persona);
    if (!userPicked && strategy) draft.strategy = strategy;
    editor.refresh();
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
      const body = { persona, memory: createBody(draft) };
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

function personaStrategy(persona) {
  if (!persona || typeof persona !== "object") return null;
  return persona.memory?.strategy ?? persona.default_strategy ?? persona.strategy ?? null;
}

function showError(node, message) {
  node.textContent = message;
  node.hidden = false;
}
