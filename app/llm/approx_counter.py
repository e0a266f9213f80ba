"""A fast, offline token counter for remote models whose tokenizer we do not have.

tiktoken's named encodings download their BPE file on first use, which we never do. Instead we
build a tiktoken `Encoding` from a byte-level BPE vocabulary we already carry (the embedded
SmolLM2 GGUF's) and add a safety margin: budgets computed with it stay on the safe side for
models whose tokenizers split text somewhat more finely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import tiktoken

from app.llm.tokenizer import BYTE_DECODER

# GPT-2 style pre-tokenization, the split SmolLM2's byte-level BPE was trained with.
_PAT = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

# Per-message template cost of ChatML-like formats: <|im_start|>role\n ... <|im_end|>\n
_PER_MESSAGE = 5
_OVERHEAD = 3  # the generation prompt: <|im_start|>assistant\n


def encoding_from_bpe_vocab(tokens: Sequence[str], name: str = "local-bpe") -> tiktoken.Encoding:
    """A tiktoken Encoding from a GPT-2 style byte-level vocabulary (id order = merge order)."""
    decoder = BYTE_DECODER
    ranks: dict[bytes, int] = {}
    for token in tokens:
        try:
            raw = bytes(decoder[ch] for ch in token)
        except KeyError:
            continue  # special tokens (<|im_start|> ...) are not byte-level pieces
        ranks.setdefault(raw, len(ranks))
    for b in range(256):  # tiktoken needs every single byte to be encodable
        ranks.setdefault(bytes([b]), len(ranks))
    return tiktoken.Encoding(name, pat_str=_PAT, mergeable_ranks=ranks, special_tokens={})


class ApproxCounter:
    """Token counts with a safety margin, for budgeting against a remote model."""

    def __init__(self, encoding: tiktoken.Encoding, margin: float = 1.15) -> None:
        if margin < 1.0:
            raise ValueError("margin must be >= 1.0: an approximate counter may only overcount")
        self._enc = encoding
        self.margin = margin

    def count_message(self, message: Mapping[str, str]) -> int:
        body = len(self._enc.encode_ordinary(message.get("content", "")))
        return int(body * self.margin) + _PER_MESSAGE + 1

    def count_overhead(self) -> int:
        return _OVERHEAD

    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        return self.count_overhead() + sum(self.count_message(m) for m in messages)
