"""JSON mode and JSON Schema by constrained decoding (OpenAI's `response_format`, issue 17).

llguidance (a Rust grammar engine, from PyPI) compiles a JSON Schema to a grammar and, for each
step, computes which tokens of the vocabulary may come next; the sampler sets every other
token's logit to -inf, so the reply is valid JSON (schema-valid) by construction, on any model.
Chosen over outlines-core (builds a full token-level automaton per schema up front: slow to
compile for open schemas such as `{"type": "object"}`) and xgrammar (needs torch). Measured on
SmolLM2's 49,152-token vocabulary: the mask takes ~15 us a token (median), the grammar tokenizer
~0.25 s once per engine; see benchmarks/json_mode.py for the whole cost per token.

JSON is emitted with ", " and ": " separators and no other whitespace: a small model given
free whitespace can pad forever, and these separators are the ones it has seen most.

A grammar keeps a reply valid only if it ends: a 135M model asked for an open JSON object
often goes on (a string that never closes, "1111..."), and at max_tokens the JSON is cut. So
the last tokens of the budget are spent closing it: once the tokens left come down to what
closing may take (`reserve`), each step takes the token the grammar forces, else the end of
the reply, else the first allowed of a few closing tokens (`"}`, `}`, `]`, `"`, `null`, `0`),
else the model's own choice among the allowed ones. A schema whose required properties still
outnumber the budget can still end cut (finish_reason "length", as OpenAI's).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import llguidance as llg
import llguidance.numpy as lln
import numpy as np

from app.llm.tokenizer import ChatTokenizer

# `response_format: {"type": "json_object"}`: any JSON object, as OpenAI's JSON mode.
JSON_OBJECT_SCHEMA = '{"type": "object"}'

# Closing tokens, most closing first (their text; each must encode to one token to be used):
# inside a string its quote comes first (a `}` there is just a character of the string).
_IN_STRING_CLOSERS = ('"}', '"]', '"')
_CLOSERS = ("}", "]", ": ", " null", "null", "0", '"')

_OPTIONS: dict[str, Any] = {
    "whitespace_flexible": False,
    "item_separator": ", ",
    "key_separator": ": ",
}


class SchemaError(ValueError):
    """A JSON Schema that llguidance cannot compile (the message says why)."""


class JsonGrammars:
    """Grammar matchers over one tokenizer. The llguidance tokenizer is built on first use
    (~0.25 s), so engines that never see `response_format` never pay for it."""

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self.tokenizer = tokenizer
        self._lock = threading.Lock()
        self._lltok: llg.LLTokenizer | None = None

    def _ll_tokenizer(self) -> llg.LLTokenizer:
        with self._lock:
            if self._lltok is None:
                self._lltok = llg.LLTokenizer(
                    self.tokenizer.tokenizer_json(),
                    n_vocab=self.tokenizer.vocab_size,
                    eos_token=sorted(self.tokenizer.stop_ids),
                )
            return self._lltok

    def check(self, schema: str) -> None:
        """Raise SchemaError if `schema` (JSON text) does not compile."""
        self.matcher(schema)

    def matcher(self, schema: str) -> JsonConstraint:
        try:
            grammar = llg.LLMatcher.grammar_from_json_schema(schema, defaults=_OPTIONS)
        except ValueError as exc:
            raise SchemaError(str(exc)) from exc
        matcher = llg.LLMatcher(self._ll_tokenizer(), grammar, log_level=0)
        if matcher.is_error():
            raise SchemaError(matcher.get_error())
        return JsonConstraint(
            matcher, self.tokenizer, self._ids(_IN_STRING_CLOSERS), self._ids(_CLOSERS)
        )

    def _ids(self, texts: tuple[str, ...]) -> list[int]:
        ids = [self.tokenizer.encode(text) for text in texts]
        return [i[0] for i in ids if len(i) == 1]


class JsonConstraint:
    """One reply's grammar state: which tokens may come next, advanced token by token, and
    how deep in the JSON it is (to know when to start closing)."""

    def __init__(
        self,
        matcher: llg.LLMatcher,
        tokenizer: ChatTokenizer,
        string_closers: list[int],
        closers: list[int],
    ) -> None:
        self.matcher = matcher
        self.tokenizer = tokenizer
        self.vocab_size = tokenizer.vocab_size
        self.string_closers = string_closers
        self.closers = closers
        self.stop_ids = sorted(tokenizer.stop_ids)
        self.closing = False  # set by the decode loop when the budget comes down to `reserve`
        self._bits = lln.allocate_token_bitmask(1, self.vocab_size)
        self._depth = 0
        self._in_string = False
        self._escaped = False

    def reserve(self) -> int:
        """Tokens that closing may take from here: per open container a closer, plus a
        string's quote, a key's separator and a value (a heuristic: required properties not
        yet written take more)."""
        return 2 * self._depth + 4

    def allowed(self, n_logits: int) -> np.ndarray:
        """A bool mask over the model's logits (which may outnumber the tokenizer's tokens:
        padded embeddings, never allowed); one token only while closing."""
        lln.fill_next_token_bitmask(self.matcher, self._bits)
        bits = np.unpackbits(self._bits.view(np.uint8), bitorder="little")
        out = np.zeros(n_logits, dtype=bool)
        n = min(n_logits, self.vocab_size)
        out[:n] = bits[:n].astype(bool)
        if self.closing:
            pick = self._closing_token(out)
            if pick is not None:
                out[:] = False
                out[pick] = True
        return out

    def _closing_token(self, allowed: np.ndarray) -> int | None:
        forced = self.matcher.compute_ff_tokens()
        if forced:
            return int(forced[0])
        closers = self.string_closers if self._in_string else self.closers
        for token in (*self.stop_ids, *closers):
            if token < len(allowed) and allowed[token]:
                return token
        return None  # the model chooses among the allowed tokens

    def consume(self, token: int) -> None:
        self.matcher.consume_token(token)
        if token in self.tokenizer.special_ids:
            return
        for byte in self.tokenizer.token_bytes(token):
            self._scan(byte)

    def _scan(self, byte: int) -> None:
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif byte == 0x5C:  # backslash
                self._escaped = True
            elif byte == 0x22:  # quote
                self._in_string = False
        elif byte == 0x22:
            self._in_string = True
        elif byte in (0x7B, 0x5B):  # { [
            self._depth += 1
        elif byte in (0x7D, 0x5D):  # } ]
            self._depth -= 1


def schema_of(response_format: dict[str, Any]) -> str | None:
    """The JSON Schema (as JSON text) a `response_format` asks for; None for plain text."""
    kind = response_format.get("type")
    if kind == "json_object":
        return JSON_OBJECT_SCHEMA
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(schema if isinstance(schema, dict) else {})
    return None
