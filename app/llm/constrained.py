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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import llguidance as llg
import llguidance.numpy as lln
import numpy as np

from app.llm.tokenizer import ChatTokenizer

if TYPE_CHECKING:  # only in the stubs (llguidance/_lib.pyi)
    from llguidance._lib import JsonCompileOptions

# `response_format: {"type": "json_object"}`: any JSON object, as OpenAI's JSON mode.
JSON_OBJECT_SCHEMA = '{"type": "object"}'

# Closing tokens, most closing first (their text; each must encode to one token to be used):
# inside a string its quote comes first (a `}` there is just a character of the string).
_IN_STRING_CLOSERS = ('"}', '"]', '"')
_CLOSERS = ("}", "]", ": ", " null", "null", "0", ' "', '"')

_OPTIONS: JsonCompileOptions = {
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


@dataclass
class _Scan:
    """Whether the JSON so far is inside a string (where `}` is a character, not a closer)."""

    in_string: bool = False
    escaped: bool = False

    def feed(self, data: bytes) -> None:
        for byte in data:
            if self.in_string:
                if self.escaped:
                    self.escaped = False
                elif byte == 0x5C:  # backslash
                    self.escaped = True
                elif byte == 0x22:  # quote
                    self.in_string = False
            elif byte == 0x22:
                self.in_string = True


# How close to the end of the budget closing is planned (a simulation, below): past this many
# tokens left, no JSON this model writes needs that long to close.
PLAN_HORIZON = 96
# Spare tokens when closing starts: one token of the model's can add several to what closing
# takes (`",` opens a new key that needs a value), and the plan is only revised per token.
CLOSE_MARGIN = 8


class JsonConstraint:
    """One reply's grammar state: which tokens may come next, advanced token by token, and
    when to spend the rest of the budget closing the JSON."""

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
        self.closing = False
        self._bits = lln.allocate_token_bitmask(1, self.vocab_size)
        self._scan = _Scan()

    def plan(self, left: int) -> None:
        """Start closing when the tokens `left` (this one included) come down to what closing
        takes from here. That is measured, not guessed: the closing policy is played out on a
        copy of the grammar state (a forced key of a required property costs its tokens)."""
        if self.closing or left > PLAN_HORIZON:
            return
        self.closing = self._closing_length(left) >= left - CLOSE_MARGIN

    def _closing_length(self, limit: int) -> int:
        """Tokens the closing policy takes from the current state (`limit` if more, or if the
        copy goes wrong: then closing had better start now)."""
        matcher, scan = self.matcher.deep_copy(), _Scan(self._scan.in_string, self._scan.escaped)
        bits = lln.allocate_token_bitmask(1, self.vocab_size)
        steps = 0
        while steps < limit and not matcher.is_accepting():
            token = self._closing_token(matcher, scan, self._mask(matcher, bits, self.vocab_size))
            if not matcher.consume_token(token) or matcher.is_error():
                return limit
            scan.feed(self._bytes(token))
            steps += 1
        return steps

    def allowed(self, n_logits: int) -> np.ndarray:
        """A bool mask over the model's logits (which may outnumber the tokenizer's tokens:
        padded embeddings, never allowed); one token only while closing."""
        out = self._mask(self.matcher, self._bits, n_logits)
        if self.closing:
            pick = self._closing_token(self.matcher, self._scan, out)
            out[:] = False
            out[pick] = True
        return out

    def _mask(self, matcher: llg.LLMatcher, bits: np.ndarray, n_logits: int) -> np.ndarray:
        lln.fill_next_token_bitmask(matcher, bits)
        unpacked = np.unpackbits(bits.view(np.uint8), bitorder="little")
        out = np.zeros(n_logits, dtype=bool)
        n = min(n_logits, self.vocab_size)
        out[:n] = unpacked[:n].astype(bool)
        return out

    def _closing_token(self, matcher: llg.LLMatcher, scan: _Scan, allowed: np.ndarray) -> int:
        """The forced token, else the end of the reply, else the most closing allowed token,
        else the allowed token of the lowest id (single characters come first in a BPE
        vocabulary). Deterministic, so the plan is what happens."""
        forced = matcher.compute_ff_tokens()
        if forced:
            return int(forced[0])
        closers = self.string_closers if scan.in_string else self.closers
        for token in (*self.stop_ids, *closers):
            if token < len(allowed) and allowed[token]:
                return token
        return int(np.argmax(allowed))

    def _bytes(self, token: int) -> bytes:
        return b"" if token in self.tokenizer.special_ids else self.tokenizer.token_bytes(token)

    def consume(self, token: int) -> None:
        self.matcher.consume_token(token)
        self._scan.feed(self._bytes(token))


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
