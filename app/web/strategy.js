// The memory strategies, their params, and the editor both the new-chat dialog and the inspector
// use. What the user types is kept in a draft, per strategy, for as long as the caller keeps the
// draft: switching strategy and back shows their values again, and a re-render (after a reply,
// after saving pinned facts) does not wipe them. Blank fields mean "the default" and are not sent.

import { api } from "./api.js";
import { clear, h } from "./dom.js";

// The server (GET /v1/strategies) says which strategies exist, their params, defaults (shown as
// placeholders) and descriptions (tooltips); the page only keeps nicer labels. A param not
// listed here shows under its own name; the listed ones come first, in this order.
const LABELS = {
  k: "Turns kept (k)",
  max_tokens: "Buffer (tokens)",
  buffer_tokens: "Recent buffer (tokens)",
  recall_k: "Turns recalled",
  recall_max_tokens: "Recall cap (tokens)",
  summary_max_tokens: "Summary cap (tokens)",
  summarizer: "Summarizer",
  neighbors: "Neighbouring turns",
  kept_share: "Recall kept in place (share)",
  fresh_min_tokens: "Recall found anew, at least (tokens)",
  recall_sentences: "Sentences per note found anew (0: whole)",
  kept_min_room: "Keep recall in place from a room of (tokens)",
  evict_to: "Evict down to (share)",
  summary_chunk_tokens: "Summary chunk (tokens)",
  summary_max_chunks: "Summary calls per turn",
  scope: "Remembers from",
  relationship_tokens: "What she knows of you (tokens)",
  lore_tokens: "Lorebook entries (tokens)",
  budget_tokens: "Context budget (tokens)",
};
const ORDER = Object.keys(LABELS);
const rank = (name) => (ORDER.includes(name) ? ORDER.indexOf(name) : ORDER.length);

// Params of the service, not of a strategy: they stay when the strategy changes. Known before
// the catalog arrives because drafts are split by them.
const SERVICE_PARAMS = new Set(["budget_tokens"]);
const isCommon = (name) => SERVICE_PARAMS.has(name);

let catalog = null; // {names, byName: {name: {description, params}}, common}, once loaded
let loading = null;

// GET /v1/strategies, once per page (again after a failure, so a later dialog retries).
export function loadStrategies() {
  loading ??= api.strategies().then(
    (data) => (catalog = toCatalog(data)),
    (err) => {
      loading = null;
      throw err;
    },
  );
  return loading;
}

function toCatalog(data) {
  const fields = (params) => (params ?? []).map(toField)
    .sort((a, b) => rank(a.name) - rank(b.name));
  const strategies = data?.strategies ?? [];
  for (const p of data?.service_params ?? []) SERVICE_PARAMS.add(p.name);
  return {
    names: strategies.map((s) => s.name),
    byName: Object.fromEntries(strategies.map((s) =>
      [s.name, { description: s.description ?? "", params: fields(s.params) }])),
    common: fields(data?.service_params),
  };
}

function toField(p) {
  const bounds = [
    p.minimum !== undefined && `≥ ${p.minimum}`,
    p.exclusive_minimum !== undefined && `> ${p.exclusive_minimum}`,
    p.maximum !== undefined && `≤ ${p.maximum}`,
    p.exclusive_maximum !== undefined && `< ${p.exclusive_maximum}`,
  ].filter(Boolean).join(", ");
  const help = [p.description, bounds && `(${bounds})`].filter(Boolean).join(" ");
  return {
    name: p.name,
    label: LABELS[p.name] ?? p.name,
    placeholder: p.default ?? "none",
    help: help || undefined,
    options: p.enum ?? (p.type === "boolean" ? ["true", "false"] : undefined),
    type: p.type,
    text: p.type === "string" && !p.enum,
  };
}

const FALLBACK_COMMON = [{ name: "budget_tokens", label: LABELS.budget_tokens,
  placeholder: "none" }];
const paramsOf = (strategy) => catalog?.byName[strategy]?.params ?? [];
const fieldOf = (strategy, name) =>
  [...paramsOf(strategy), ...(catalog?.common ?? [])].find((p) => p.name === name);

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
  const known = paramsOf(strategy);
  const extra = Object.keys(draft.values[strategy] ?? {})
    .filter((name) => !known.some((p) => p.name === name))
    .map((name) => ({ name, label: name, placeholder: "default",
      text: typeof stored?.[name] === "string" }));
  return [...known, ...extra, ...(catalog?.common ?? FALLBACK_COMMON)];
}

// Fill `select` and `paramsBox` from the draft and keep the draft up to date as the user types.
// placeholders(strategy) -> {param: value} overrides the defaults shown (a persona's own params).
// Until the strategies are loaded it shows the draft's strategy and fields; if they cannot be
// loaded, `help` says so and blank fields still mean the server's defaults.
export function renderStrategyEditor({ select, paramsBox, help, draft, stored = {},
  placeholders = () => ({}), onSwitch }) {
  let failure = null;

  const fillSelect = () => {
    clear(select);
    const names = [...(catalog?.names ?? [])];
    if (!names.includes(draft.strategy)) names.push(draft.strategy); // a strategy unknown here
    for (const name of names) select.append(h("option", { value: name }, name));
    select.value = draft.strategy;
  };

  const showHelp = (strategy) => {
    if (!help) return;
    help.classList.toggle("form-error", Boolean(failure));
    help.textContent = failure
      ? `Could not load the memory strategies: ${failure.message}. Blank fields use the ` +
        "server's defaults."
      : catalog ? catalog.byName[strategy]?.description ?? "" : "Loading the strategies…";
  };

  const showParams = () => {
    const strategy = draft.strategy;
    const values = (draft.values[strategy] ??= {});
    showHelp(strategy);
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
        ? h("select", { id, dataset: { param: param.name }, title: param.help,
          onchange: onInput },
          h("option", { value: "" }, `default (${shown})`),
          param.options.map((o) => h("option", { value: o }, o)))
        : h("input", { id, dataset: { param: param.name }, title: param.help,
          onchange: onInput, oninput: onInput,
          ...(param.text ? { type: "text" } : { type: "number", inputmode: "decimal",
            step: "any" }),
          placeholder: String(shown) });
      field.value = bag[param.name] ?? "";
      paramsBox.append(h("div", { class: "form-row" },
        h("label", { for: id, title: param.help }, param.label), field));
    }
  };

  const refresh = () => {
    fillSelect();
    showParams();
  };
  select.onchange = () => {
    draft.strategy = select.value;
    draft.dirty = true;
    showParams();
    onSwitch?.(draft.strategy);
  };
  refresh();
  if (!catalog) {
    // a later editor on the same nodes registers later, so its refresh runs last and wins
    loadStrategies().then(
      () => paramsBox.isConnected && refresh(),
      (err) => {
        failure = err;
        if (paramsBox.isConnected) showParams();
      },
    );
  }
  return { refresh };
}

// The fields of the shown strategy that are filled: {param: value}, numbers as numbers.
function filled(draft, stored) {
  const out = {};
  const texts = { ...(draft.values[draft.strategy] ?? {}), ...draft.common };
  for (const [name, text] of Object.entries(texts)) {
    const value = String(text).trim();
    if (!value) continue;
    const field = fieldOf(draft.strategy, name);
    if (field?.type === "boolean") out[name] = value === "true";
    else if (field?.options || field?.text || typeof stored?.[name] === "string") {
      out[name] = value;
    } else out[name] = Number(value);
  }
  return out;
}

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
