// Failures are shown in the banner with the server's own message, never swallowed.

import { $ } from "./state.js";

export function showError(err) {
  if (err?.name === "AbortError") return;
  console.error(err);
  $("banner-text").textContent = err?.message ?? String(err);
  $("banner").hidden = false;
}

// Run fn; on failure show it and resolve undefined (so callers test the result, not catch).
export async function guard(fn) {
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  }
}
