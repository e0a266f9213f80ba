"""Byte-level BPE tokenizer and chat template built from GGUF metadata.

Pure Python/Rust (the `tokenizers` package and jinja2): no MLX, so token counting never waits
for the MLX thread.

Message content is always encoded with special tokens disabled: a user who types
`<|im_start|>system` gets those characters as plain text, never a role switch. The chat template
is rendered with placeholders where the contents go; the template's own text is encoded with
special tokens, each content separately without.
"""

from __future__ import annotations

import codecs
import functools
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from jinja2 import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

from app.llm.types import ModelLoadError

# GGUF token types (llama.cpp's llama_token_type).
TOKEN_NORMAL, TOKEN_UNKNOWN, TOKEN_CONTROL, TOKEN_USER_DEFINED, TOKEN_UNUSED, TOKEN_BYTE = (
    1,
    2,
    3,
    4,
    5,
    6,
)
# The GPT-2 split regex; llama.cpp's "smollm"/"gpt2" pre-tokenizers use it.
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# Pre-tokenizers (tokenizer.ggml.pre) that split digits one by one before the GPT-2 regex.
DIGIT_SPLITTING = {"smollm", "starcoder", "refact", "falcon"}
DEFAULT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")
_STOP_TEXTS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "<|end|>", "<end_of_turn>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte <-> printable-character table."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}


def _meta_int(meta: Mapping[str, Any], key: str) -> int | None:
    value = meta.get(key)
    if value is None:
        return None
    return int(value.item() if hasattr(value, "item") else value)


def _meta_list(meta: Mapping[str, Any], key: str) -> list[Any]:
    value = meta.get(key)
    if value is None:
        return []
    return list(value.tolist() if hasattr(value, "tolist") else value)


class ChatTokenizer:
    """Encode/decode text and render chat messages to token ids."""

    def __init__(
        self,
        tokens: Sequence[str],
        merges: Sequence[str],
        token_types: Sequence[int],
        *,
        pre: str = "gpt2",
        chat_template: str | None = None,
        bos_id: int | None = None,
        eos_id: int | None = None,
        eot_id: int | None = None,
        add_bos: bool = False,
    ) -> None:
        if not tokens:
            raise ModelLoadError("the GGUF has no tokenizer vocabulary")
        self.tokens = list(tokens)
        types = list(token_types) or [TOKEN_NORMAL] * len(tokens)
        vocab = {t: i for i, t in enumerate(self.tokens)}
        # a GGUF merge is "left right"
        pairs = [cast(tuple[str, str], tuple(m.split(" ", 1))) for m in merges]
        bpe = models.BPE(vocab=vocab, merges=pairs, fuse_unk=False, ignore_merges=False)
        special_ids = [i for i, t in enumerate(types) if t in (TOKEN_CONTROL, TOKEN_USER_DEFINED)]
        self.special_ids = frozenset(special_ids)

        def build(encode_special: bool) -> Tokenizer:
            tok = Tokenizer(bpe)
            split = pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated")
            steps: list[Any] = []
            if pre in DIGIT_SPLITTING:
                steps.append(pre_tokenizers.Digits(individual_digits=True))
            steps += [split, pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
            tok.pre_tokenizer = pre_tokenizers.Sequence(steps)
            tok.decoder = decoders.ByteLevel()
            tok.add_special_tokens(
                [AddedToken(self.tokens[i], special=True, normalized=False) for i in special_ids]
            )
            tok.encode_special_tokens = encode_special  # True: specials are plain text
            return tok

        self._tok = build(encode_special=False)
        self._plain = build(encode_special=True)
        self._token_bytes = [self._bytes_of(t, types[i]) for i, t in enumerate(self.tokens)]

        self.bos_id, self.eos_id, self.add_bos = bos_id, eos_id, add_bos
        stop = {i for i in (eos_id, eot_id) if i is not None}
        stop |= {vocab[t] for t in _STOP_TEXTS if t in vocab and vocab[t] in self.special_ids}
        self.stop_ids = frozenset(stop)
        self.bos_token = self.tokens[bos_id] if bos_id is not None else ""
        self.eos_token = self.tokens[eos_id] if eos_id is not None else ""
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        try:
            self._template = env.from_string(chat_template or DEFAULT_TEMPLATE)
        except TemplateError as exc:
            raise ModelLoadError(f"the chat template does not parse: {exc}") from exc
        self._marker = f"\x00c{secrets.token_hex(6)}:"
        self._probe = [{"role": "system", "content": "x"}]

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_gguf_metadata(cls, meta: Mapping[str, Any]) -> ChatTokenizer:
        model = meta.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ModelLoadError(
                f"unsupported GGUF tokenizer model {model!r}; only byte-level BPE ('gpt2') is "
                "supported"
            )
        return cls(
            tokens=_meta_list(meta, "tokenizer.ggml.tokens"),
            merges=_meta_list(meta, "tokenizer.ggml.merges"),
            token_types=_meta_list(meta, "tokenizer.ggml.token_type"),
            pre=str(meta.get("tokenizer.ggml.pre", "gpt2")),
            chat_template=meta.get("tokenizer.chat_template"),
            bos_id=_meta_int(meta, "tokenizer.ggml.bos_token_id"),
            eos_id=_meta_int(meta, "tokenizer.ggml.eos_token_id"),
            eot_id=_meta_int(meta, "tokenizer.ggml.eot_token_id"),
            add_bos=bool(_meta_int(meta, "tokenizer.ggml.add_bos_token") or 0),
        )

    @staticmethod
    def _bytes_of(token: str, ttype: int) -> bytes:
        if ttype in (TOKEN_CONTROL, TOKEN_USER_DEFINED) or any(
            c not in BYTE_DECODER for c in token
        ):
            return token.encode("utf-8")
        return bytes(BYTE_DECODER[c] for c in token)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    # -- text -----------------------------------------------------------------------------------
    def encode(self, text: str, *, special: bool = False) -> list[int]:
        """Token ids of `text`; special-token text becomes its single id only if `special`."""
        tok = self._tok if special else self._plain
        return tok.encode(text, add_special_tokens=False).ids

    def encode_many(self, texts: Sequence[str], *, special: bool = False) -> list[list[int]]:
        if not texts:
            return []
        tok = self._tok if special else self._plain
        return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=False)]

    def token_bytes(self, token_id: int) -> bytes:
        return self._token_bytes[token_id]

    def tokenizer_json(self) -> str:
        """The Hugging Face `tokenizers` JSON of this tokenizer (for llguidance's grammars)."""
        return str(self._tok.to_str())

    def decode(self, ids: Iterable[int], *, skip_special: bool = False) -> str:
        parts = (self._token_bytes[i] for i in ids if not (skip_special and i in self.special_ids))
        return b"".join(parts).decode("utf-8", errors="replace")

    def detokenizer(self) -> StreamDetokenizer:
        return StreamDetokenizer(self)

    # -- chat -----------------------------------------------------------------------------------
    def render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        """The templated prompt as text (content included verbatim; for display/debugging)."""
        return self._render(list(messages), add_generation_prompt)

    def _render(self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> str:
        try:
            return self._template.render(
                messages=messages,
                add_generation_prompt=add_generation_prompt,
                bos_token=self.bos_token,
                eos_token=self.eos_token,
            )
        except TemplateError as exc:
            raise ValueError(f"the chat template rejected the messages: {exc}") from exc

    def apply_chat_template(
        self, messages: Sequence[Mapping[str, str]], add_generation_prompt: bool = True
    ) -> list[int]:
        """Token ids of the templated prompt; message contents can never produce special ids."""
        placeholders: list[dict[str, str]] = []
        contents: list[str] = []
        for i, m in enumerate(messages):
            role, content = m.get("role"), m.get("content")
            if not isinstance(role, str) or not isinstance(content, str):
                raise ValueError(f"message {i} needs string 'role' and 'content' fields")
            if not _ROLE.fullmatch(role):
                # Roles are rendered as template text (special tokens live): keep them plain.
                raise ValueError(f"message {i} has an invalid role {role!r}")
            placeholders.append({"role": role, "content": f"{self._marker}{i}\x00"})
            contents.append(content)
        text = self._render(placeholders, add_generation_prompt)
        ids: list[int] = []
        if self.add_bos and self.bos_id is not None and not text.startswith(self.bos_token):
            ids.append(self.bos_id)
        pieces = text.split(self._marker)
        template_parts, content_parts = [pieces[0]], []
        for piece in pieces[1:]:
            index, _, rest = piece.partition("\x00")
            content_parts.append(contents[int(index)])
            template_parts.append(rest)
        # One call into Rust per kind: long histories count in a few ms.
        template_ids = self.encode_many(template_parts, special=True)
        content_ids = self.encode_many(content_parts, special=False)
        ids += template_ids[0]
        for content_piece, template_piece in zip(content_ids, template_ids[1:], strict=True):
            ids += content_piece
            ids += template_piece
        return ids

    def count(self, messages: Sequence[Mapping[str, str]]) -> int:
        return len(self.apply_chat_template(messages, add_generation_prompt=True))

    @functools.cached_property
    def _probe_len(self) -> int:
        return len(self.apply_chat_template(self._probe, add_generation_prompt=False))

    def count_message(self, message: Mapping[str, str]) -> int:
        """Tokens `message` adds after a system message (see Engine.count_message)."""
        with_msg = self.apply_chat_template([*self._probe, message], add_generation_prompt=False)
        return len(with_msg) - self._probe_len

    @functools.cached_property
    def overhead(self) -> int:
        """Tokens beyond the messages: BOS and the generation prompt."""
        with_prompt = len(self.apply_chat_template(self._probe, add_generation_prompt=True))
        try:
            empty = len(self.apply_chat_template([], add_generation_prompt=False))
        except (ValueError, IndexError, KeyError):  # templates that index messages[0]
            empty = 0
        first_system = self._probe_len - empty
        return with_prompt - first_system


class StreamDetokenizer:
    """Turns generated ids into text deltas that never split a UTF-8 character."""

    def __init__(self, tokenizer: ChatTokenizer) -> None:
        self._tok = tokenizer
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.text = ""

    def add(self, token_id: int) -> str:
        delta = self._utf8.decode(self._tok.token_bytes(token_id))
        self.text += delta
        return delta

    def flush(self) -> str:
        """End of stream: an incomplete trailing character (cut by max_tokens) is dropped."""
        self._utf8.reset()
        return ""


def _raise_template_error(message: str) -> None:
    raise TemplateError(message)
