// A tiny, safe markdown renderer. It never parses HTML: it builds DOM nodes and puts every piece of
// model or user text in with textContent / createTextNode, so `<img onerror=…>` stays text.
// Supported: paragraphs, line breaks, # headings, - and 1. lists, > quotes, ``` code blocks,
// `code`, **bold**, *em*, [links](https://…) and bare http(s) URLs. Links are http(s) only.

const SAFE_URL = /^https?:\/\/[^\s<>"']+$/i;

export function renderMarkdown(text) {
  const frag = document.createDocumentFragment();
  const lines = String(text ?? "").replace(/\r\n?/g, "\n").split("\n");
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = line.match(/^\s*(`{3,}|~{3,})\s*([\w+-]*)\s*$/);
    if (fence) {
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i += 1; // the closing fence (or past the end while a reply is still streaming)
      frag.append(codeBlock(body.join("\n"), fence[2]));
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = line.match(/^\s{0,3}(#{1,6})\s+(.*)$/);
    if (heading) {
      const level = Math.min(6, heading[1].length + 2);
      frag.append(el(`h${level}`, heading[2].replace(/\s#+\s*$/, "")));
      i += 1;
      continue;
    }
    const listKind = listItemKind(line);
    if (listKind) {
      const list = document.createElement(listKind);
      while (i < lines.length && listItemKind(lines[i]) === listKind) {
        const item = document.createElement("li");
        const content = [lines[i].replace(LIST_MARK[listKind], "")];
        i += 1;
        // indented continuation lines belong to the item
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !listItemKind(lines[i])) {
          content.push(lines[i].trim());
          i += 1;
        }
        inlineLines(content, item);
        list.append(item);
      }
      frag.append(list);
      continue;
    }
    if (/^\s*>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s*>\s?/, ""));
        i += 1;
      }
      const bq = document.createElement("blockquote");
      bq.append(renderMarkdown(quoted.join("\n")));
      frag.append(bq);
      continue;
    }
    const para = [];
    while (i < lines.length && lines[i].trim() && !startsBlock(lines[i])) para.push(lines[i++]);
    const p = document.createElement("p");
    inlineLines(para, p);
    frag.append(p);
  }
  return frag;
}

const LIST_MARK = { ul: /^\s*[-*+]\s+/, ol: /^\s*\d{1,9}[.)]\s+/ };

function listItemKind(line) {
  if (/^\s*([-*_])(\s*\1){2,}\s*$/.test(line)) return null; // a --- rule, not a list
  if (LIST_MARK.ul.test(line)) return "ul";
  if (LIST_MARK.ol.test(line)) return "ol";
  return null;
}

function startsBlock(line) {
  return (
    /^\s*(`{3,}|~{3,})/.test(line) ||
    /^\s{0,3}#{1,6}\s/.test(line) ||
    /^\s*>/.test(line) ||
    listItemKind(line) !== null
  );
}

function el(tag, text) {
  const node = document.createElement(tag);
  inline(text, node);
  return node;
}

function codeBlock(text, lang) {
  const pre = document.createElement("pre");
  const code = document.createElement("code");
  if (lang) code.dataset.lang = lang;
  code.textContent = text;
  pre.append(code);
  return pre;
}

function inlineLines(lines, parent) {
  lines.forEach((line, idx) => {
    if (idx) parent.append(document.createElement("br"));
    inline(line, parent);
  });
}

// Inline spans, scanned left to right. Anything that does not close is kept as literal text.
export function inline(text, parent) {
  let plain = "";
  const flush = () => {
    if (plain) parent.append(document.createTextNode(plain));
    plain = "";
  };
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    const rest = text.slice(i);
    if (ch === "\\" && i + 1 < text.length && /[\\`*_[\]()#>-]/.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
      continue;
    }
    if (ch === "`") {
      const ticks = rest.match(/^`+/)[0];
      const end = text.indexOf(ticks, i + ticks.length);
      if (end > 0) {
        flush();
        const code = document.createElement("code");
        code.textContent = text.slice(i + ticks.length, end).replace(/^ (.+) $/, "$1");
        parent.append(code);
        i = end + ticks.length;
        continue;
      }
    }
    if (rest.startsWith("**") || rest.startsWith("__")) {
      const mark = rest.slice(0, 2);
      const end = text.indexOf(mark, i + 2);
      if (end > i + 2 && !/\s/.test(text[i + 2]) && !/\s/.test(text[end - 1])) {
        flush();
        parent.append(el("strong", text.slice(i + 2, end)));
        i = end + 2;
        continue;
      }
    }
    if ((ch === "*" || ch === "_") && emOpens(text, i)) {
      const end = emCloses(text, i + 1, ch);
      if (end > 0) {
        flush();
        parent.append(el("em", text.slice(i + 1, end)));
        i = end + 1;
        continue;
      }
    }
    if (ch === "[") {
      const m = rest.match(/^\[([^\]\n]+)\]\(\s*([^\s()]+)\s*\)/);
      if (m && SAFE_URL.test(m[2])) {
        flush();
        const a = link(m[2]);
        inline(m[1], a);
        parent.append(a);
        i += m[0].length;
        continue;
      }
    }
    if ((ch === "h" || ch === "H") && !/\w/.test(text[i - 1] ?? "")) {
      const m = rest.match(/^https?:\/\/[^\s<>"'`]+/i);
      const url = m ? m[0].replace(/[.,;:!?)\]]+$/, "") : "";
      if (SAFE_URL.test(url) && url.length > 8) {
        flush();
        const a = link(url);
        a.textContent = url;
        parent.append(a);
        i += url.length;
        continue;
      }
    }
    plain += ch;
    i += 1;
  }
  flush();
}

function emOpens(text, i) {
  const next = text[i + 1];
  if (!next || /\s/.test(next) || next === text[i]) return false;
  // `_` inside a word (snake_case) is not emphasis
  return text[i] === "*" || !/\w/.test(text[i - 1] ?? "");
}

function emCloses(text, from, ch) {
  for (let j = from + 1; j < text.length; j += 1) {
    if (text[j] !== ch || /\s/.test(text[j - 1])) continue;
    if (ch === "_" && /\w/.test(text[j + 1] ?? "")) continue;
    if (text[j + 1] === ch) {
      j += 1; // part of a ** run; skip it
      continue;
    }
    return j;
  }
  return -1;
}

function link(url) {
  const a = document.createElement("a");
  a.href = url;
  a.target = "_blank";
  a.rel = "noopener noreferrer nofollow";
  return a;
}
