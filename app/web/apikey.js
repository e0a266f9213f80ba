// The API key the page sends as `Authorization: Bearer <key>` when the server runs with
// MEMENTO_AUTH=required. It lives in this browser's localStorage only; with auth off none is
// stored, no header is sent and the prompt never shows (the server never answers 401).

const STORAGE = "memento.api_key";
const $ = (id) => document.getElementById(id);

export function getKey() {
  try {
    return localStorage.getItem(STORAGE) || "";
  } catch {
    return ""; // storage disabled: behave as if no key was saved
  }
}

function setKey(key) {
  if (key) localStorage.setItem(STORAGE, key);
  else localStorage.removeItem(STORAGE);
}

export function authHeaders(headers = {}) {
  const key = getKey();
  return key ? { ...headers, Authorization: `Bearer ${key}` } : headers;
}

let pending = null;

// Called when a request answered 401. Requests that fail together share one prompt. Resolves
// true once a (new) key is saved, so the caller retries; false when the user dismisses it.
export function promptForKey(message) {
  pending ??= askKey({ error: getKey() ? message : "", change: false }).finally(() => {
    pending = null;
  });
  return pending;
}

// The sidebar's key button: change or clear the key, then reload so every view uses it.
export function wireKeyButton(button) {
  button.addEventListener("click", async () => {
    if (pending) return;
    const changed = await askKey({ error: "", change: true });
    if (changed) location.reload();
  });
}

function askKey({ error, change }) {
  const dialog = $("key-dialog");
  const input = $("key-input");
  const errorNote = $("key-error");
  const clearBtn = $("key-clear");
  input.value = change ? getKey() : "";
  errorNote.textContent = error;
  errorNote.hidden = !error;
  clearBtn.hidden = !(change && getKey());
  $("key-intro").textContent = change
    ? "The key this page sends to the server. It is kept in this browser only."
    : "This server needs an API key. It is kept in this browser only.";
  return new Promise((resolve) => {
    const done = (result) => {
      $("key-form").onsubmit = null;
      $("key-cancel").onclick = null;
      clearBtn.onclick = null;
      dialog.onclose = null;
      if (dialog.open) dialog.close();
      resolve(result);
    };
    $("key-form").onsubmit = (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) {
        errorNote.textContent = "Enter a key first.";
        errorNote.hidden = false;
        input.focus();
        return;
      }
      setKey(key);
      done(true);
    };
    clearBtn.onclick = () => {
      setKey("");
      done(true);
    };
    $("key-cancel").onclick = () => done(false);
    dialog.onclose = () => done(false);
    dialog.showModal();
    input.focus();
  });
}
