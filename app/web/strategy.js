// The memory strategies, their params, and the editor both the new-chat dialog and the inspector
// use. What the user types is kept in a draft, per strategy, for as long as the caller keeps the
// draft: switching strategy and back shows their values again, and a re-render (after a reply,
// after saving pinned facts) does not wipe them. Blank fields mean "the default" and are not sent.

import { clear, h } from "./dom.js";

// Params the memory strategies accept (memory/strategies/*: their Params models), with their
// defaults as placeholders. The server validates everything; these only label the fields.
const SUMMARY = [
  { name: "summary_max_tokens", label: "Summary cap (tokens)", placeholder: 256 },
  { name: "summarizer", label: "Summarizer", options: ["llm", "extractive"], placeholder: "llm" },
];
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
  summary: { help: "One running summary of the whole conversation.", params: SUMMARY },
  summary_buffer: {
    help: "Recent turns verbatim plus a summary of everything older.",
    params: [{ name: "max_tokens", label: "Buffer (tokens)", placeholder: 1024 }, ...SUMMARY],
  },
  vector: {
    help: "Past turns relevant to the new message, recalled by meaning, plus a short recent buffer.",
    params: [
      { name: "buffer_tokens", label: "Recent buffer (tokens)", placeholder: 256 },
      { name: "recall_k", label: "Turns recalled", placeholder: 48 },
    ],
  },
  hybrid: {
    help: "Summary + recent buffer + recalled turns + pinned facts: the most complete memory.",
    params: [
      { name: "buffer_tokens", label: "Recent buffer (tokens)", placeholder: 512 },
      { name: "recall_k", label: "Turns recalled", placeholder: 48 },
      ...SUMMARY,
    ],
  },
};

// Params of the service, not of a strategy: they stay when the strategy changes.
const COMMON = [{ name: "budget_tokens", label: "Context budget (tokens)", placeholder: "model" }];
const isCommon = (name) => COMMON.some((p) => p.name === name);

// A draft: the strategy shown, and the text of every field the user (or the stored session)
// filled, per strategy; common params are shared by all strategies. `touched` names the fields
// the user edited ("strategy.param", or "param" for common ones).
export function newDraft(strategy, stored = {}) {
  const draft = { strategy, values: { [strategy]: {} }, common: {}, touched: new Set(),
    dirty: false };
  for (const [name, value] of Object.entries(stored)) {
    if (name === "strategy" || value === null || value === undefined) continue;
    (isCommon(name) ? draft.common : draft.values[strategy])[name] = String(value);
  }
  return draft;
}

// The fields of `strategy`: its known params, then any other param the draft holds (a stored
// param the page has no label for is shown, not dropped), then the common ones.
function fieldsOf(draft, strategy, stored) {
  const known = STRATEGIES[strategy]?.params ?? [];
  const extra = Object.keys(draft.values[strategy] ?? {})
    .filter((name) => !known.some((p) => p.name === name))
    .map((name) => ({ name, label: name, placeholder: "default",
      text: typeof stored?.[name] === "string" }));
  return [...known, ...extra, ...COMMON];
}

// Fill `select` and `paramsBox` from the draft and keep the draft up to date as the user types.
// placeholders(strategy) -> {param: value} overrides the defaults shown (a persona's own params).
export function renderStrategyEditor({ select, paramsBox, help, draft, stored = {},
  placeholders = () => ({}), onSwitch }) {
  clear(select);
  const names = Object.keys(STRATEGIES);
  if (!names.includes(draft.strategy)) names.push(draft.strategy); // a strategy unknown here
  for (const name of names) select.append(h("option", { value: name }, name));
  select.value = draft.strategy;

  const showParams = () => {
    const strategy = draft.strategy;
    const values = (draft.values[strategy] ??= {});
    if (help) help.textContent = STRATEGIES[strategy]?.help ?? "";
    const own = placeholders(strategy);
    clear(paramsBox);
    for (const param of fieldsOf(draft, strategy, stored.strategy === strategy ? stored : null)) {
      const common = isCommon(param.name);
      const bag = common ? draft.common : values;
      const id = `${paramsBox.id || "param"}-${param.name}`;
      const shown = own[param.name] ?? param.placeholder ?? "default";
      const onInput = (e) => {
        bag[param.name] = e.currentTarget.value;
        draft.touched.add(common ? param.name : `${strategy}.${param.name}`);
        draft.dirty = true;
      };
      const field = param.options
        ? h("select", { id, dataset: { param: param.name }, onchange: onInput },
          h("option", { value: "" }, `default (${shown})`),
          param.options.map((o) => h("option", { value: o }, o)))
        : h("input", { id, dataset: { param: param.name }, onchange: onInput, oninput: onInput,
          ...(param.text ? { type: "text" } : { type: "number", inputmode: "decimal",
            step: "any" }),
          placeholder: String(shown) });
      field.value = bag[param.name] ?? "";
      paramsBox.append(h("div", { class: "form-row" }, h("label", { for: id }, param.label),
        field));
    }
  };
  select.onchange = () => {
    draft.strategy = select.value;
    draft.dirty = true;
    showParams();
    onSwitch?.(draft.strategy);
  };
  showParams();
  return { refresh: showParams };
}

// The fields of the shown strategy that are filled: {param: value}, numbers as numbers.
function filled(draft, stored) {
  const out = {};
  const texts = { ...(draft.values[draft.strategy] ?? {}), ...draft.common };
  for (const [name, text] of Object.entries(texts)) {
    if (!String(text).trim()) continue;
    out[name] = typeof stored?.[name] === "string" || isChoice(draft.strategy, name)
      ? String(text).trim() : Number(text);
  }
  return out;
}

const isChoice = (strategy, name) =>
  Boolean(STRATEGIES[strategy]?.params.find((p) => p.name === name)?.options);

// The `memory` of POST /v1/sessions: the strategy and every filled field (blank: the default).
export function createBody(draft) {
  return { strategy: draft.strategy, ...filled(draft) };
}

export class DraftError extends Error {}

// The `memory` of PATCH /v1/sessions/{id} for a session whose memory is `stored`, or null when
// nothing changed. Same strategy: only the params the user edited to a new value (the server
// merges them into the stored ones). Another strategy: it and every filled field, since the
// server then keeps only the params it is given.
export function patchBody(draft, stored) {
  if (draft.strategy !== stored.strategy) return { strategy: draft.strategy, ...filled(draft) };
  const now = filled(draft, stored);
  const edited = (name) =>
    draft.touched.has(isCommon(name) ? name : `${draft.strategy}.${name}`);
  const changed = {};
  for (const [name, value] of Object.entries(now)) {
    if (edited(name) && value !== stored[name]) changed[name] = value;
  }
  for (const [name, before] of Object.entries(stored)) {
    if (name === "strategy" || before === null || before === undefined || name in now) continue;
    if (edited(name)) {
      // PATCH merges params, so a blanked field cannot mean "back to the default"
      throw new DraftError(`${name} is stored as ${before}: enter a value to change it ` +
        "(a blank field cannot reset it)");
    }
  }
  return Object.keys(changed).length ? changed : null;
}
