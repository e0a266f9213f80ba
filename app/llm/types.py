"""The engine contract: what every backend (local MLX, remote OpenAI-compatible) provides."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

# A chat message as the engine sees it: {"role": "system"|"user"|"assistant", "content": str}.
ChatMessage = Mapping[str, str]

FinishReason = Literal["stop", "length", "cancelled"]

MAX_TOP_LOGPROBS = 20  # OpenAI's bound for top_logprobs
MAX_LOGIT_BIAS = 300  # tokens one request may bias (OpenAI documents no count; 300 is plenty)
MAX_MEMORY_BIAS = 10.0  # a logit; at 100 the notes' tokens would be all a reply could say
# What replies get unless a persona sets its own: planted English facts named in 11/24 replies
# without it, 19/24 with it (benchmarks/answers.py --parts planted, the README's Answers).
DEFAULT_MEMORY_BIAS = 2.0


@dataclass(frozen=True)
class GenerationParams:
    temperature: float = 0.0  # 0 means greedy
    top_p: float = 1.0
    max_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Repetition control. OpenAI's penalties subtract from the logit of every token already
    # said (frequency: per occurrence, presence: once); repetition_penalty divides a positive
    # logit (multiplies a negative one) of such a token, as in CTRL / Hugging Face. "Already
    # said" is the reply so far plus the tokens of `penalty_context`: the persona's recent
    # replies, so that she does not say last turn's sentence again (issue 12).
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    repetition_penalty: float = 1.0
    penalty_context: tuple[str, ...] = ()
    # Background work (summaries) yields the MLX thread to every streaming reply: memory
    # upkeep must never slow down the replies people are waiting for.
    priority: Literal["foreground", "background"] = "foreground"
    # Log-probabilities of the sampled tokens (OpenAI's `logprobs`): None computes nothing;
    # n >= 0 returns each token's own and its n most likely alternatives (`top_logprobs`).
    logprobs: int | None = None
    # A JSON Schema (JSON text) the reply must satisfy (OpenAI's `response_format`): decoding
    # is constrained to it. None: free text.
    json_schema: str | None = None
    # OpenAI's `logit_bias`: (token id, value added to its logit) pairs, after the penalties.
    logit_bias: tuple[tuple[int, float], ...] = ()
    # Memory the reply should use (issue 12): every token of `memory_notes` (what the Context's
    # last block of recalled notes quotes, and its dates: memory/notes.py) gets `memory_bias`
    # added to its logit, unless it is also a token of `memory_common` (the persona's text and
    # the notes' frame: words that are not the memory's own). A small model with the answer in
    # front of it often names something else.
    memory_bias: float = 0.0
    memory_notes: tuple[str, ...] = ()
    memory_common: tuple[str, ...] = ()


@dataclass
class Usage:
    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens served from the KV prefix cache, not prefilled
    completion_tokens: int = 0


@dataclass(frozen=True)
class TokenLogprob:
    """A sampled token's log-probability under the model (before temperature, top-p and
    penalties, as OpenAI reports it), and the `top` most likely tokens, most likely first."""

    token_id: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass
class Chunk:
    """One streamed piece. The last chunk has finish_reason and usage set (text may be empty)."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    logprobs: list[TokenLogprob] | None = None  # one per token_ids entry, when asked for


class EngineError(RuntimeError):
    """Generation failed (model error, remote server down). Mapped to HTTP 503."""


class EngineBusyError(EngineError):
    """Too many replies are already waiting for the model: try again shortly (HTTP 429)."""


class ModelLoadError(EngineError):
    """The model could not be loaded; the message names the file or id and the reason."""


@runtime_checkable
class Engine(Protocol):
    model_id: str
    context_window: int
    backend: str  # "mlx" | "openai"

    def count(self, messages: Sequence[ChatMessage]) -> int:
        """Exact token count of the templated prompt, generation prompt included."""
        ...

    def count_message(self, message: ChatMessage) -> int:
        """Tokens one message adds to a prompt that starts with a system message.

        count(ms) == count_overhead() + sum(count_message(m) for m in ms) when ms[0] is a system
        message: memory strategies budget with per-message counts stored beside each message.
        """
        ...

    def count_overhead(self) -> int:
        """Tokens the template adds beyond the messages (the generation prompt)."""
        ...

    def check_capacity(self) -> None:
        """Raise EngineBusyError if a new reply would have to queue beyond the limit."""
        ...

    def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cache_key: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        """Stream a completion. Closing the generator (client gone) cancels at the next token."""
        ...

    async def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> str:
        """Whole completion as text (summaries, non-streaming callers)."""
        ...

    async def warm(self, messages: Sequence[ChatMessage], cache_key: str) -> int:
        """Prefill `cache_key`'s KV cache with `messages` (the start of the next prompt) in the
        background lane, so that the next turn prefills only what follows; the tokens it
        prefilled. Stops when a turn takes the cache meanwhile. 0 where there is no local
        cache (a remote server keeps its own)."""
        ...

    async def aclose(self) -> None: ...
