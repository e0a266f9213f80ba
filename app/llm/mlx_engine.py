"""The local engine: an mlx-lm model driven token by token on the MLX worker thread.

Tokenizing and counting stay on the caller's thread (pure Python/Rust). Generation is a plain
generator run by `MLXWorker.iterate`: it prefills in steps of `prefill_step_size` (yielding None
between steps so other streams and cancellation get a turn) and then yields one Chunk per
decoded token. The next decode step is queued with `mx.async_eval` before the current token is
read, so graph building overlaps computation, as in mlx-lm's generate_step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, Generator, Sequence
from typing import Any, cast

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import mlx.nn as nn  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

from app.llm.batching import DecodeBatcher, Prefill  # noqa: E402
from app.llm.constrained import JsonConstraint, JsonGrammars  # noqa: E402
from app.llm.cpu_fast import CPUFastModel  # noqa: E402
from app.llm.numpy_sampler import NumpySampler  # noqa: E402
from app.llm.prompt_cache import PromptCacheStore, common_prefix  # noqa: E402
from app.llm.sampler import Sampler, penalizes  # noqa: E402
from app.llm.stops import StopText as _StopText  # noqa: E402
from app.llm.tokenizer import ChatTokenizer  # noqa: E402
from app.llm.types import (  # noqa: E402
    MAX_LOGIT_BIAS,
    MAX_MEMORY_BIAS,
    MAX_TOP_LOGPROBS,
    ChatMessage,
    Chunk,
    EngineBusyError,
    FinishReason,
    GenerationParams,
    Usage,
)
from app.llm.worker import MLXWorker, Step  # noqa: E402

log = logging.getLogger(__name__)


def validate_params(params: GenerationParams) -> None:
    if params.temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {params.temperature}")
    if not 0 < params.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {params.top_p}")
    if params.max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {params.max_tokens}")
    if any(not s for s in params.stop):
        raise ValueError("stop strings must not be empty")
    for name in ("frequency_penalty", "presence_penalty"):
        if not -2 <= getattr(params, name) <= 2:
            raise ValueError(f"{name} must be in [-2, 2], got {getattr(params, name)}")
    if not 0 < params.repetition_penalty <= 2:
        raise ValueError(f"repetition_penalty must be in (0, 2], got {params.repetition_penalty}")
    if params.logprobs is not None and not 0 <= params.logprobs <= MAX_TOP_LOGPROBS:
        raise ValueError(f"logprobs must be in [0, {MAX_TOP_LOGPROBS}], got {params.logprobs}")
    if len(params.logit_bias) > MAX_LOGIT_BIAS:
        raise ValueError(f"logit_bias may hold at most {MAX_LOGIT_BIAS} tokens")
    for token, value in params.logit_bias:
        if not -100 <= value <= 100:
            raise ValueError(f"logit_bias of token {token} must be in [-100, 100], got {value}")
    if not 0 <= params.memory_bias <= MAX_MEMORY_BIAS:
        raise ValueError(f"memory_bias must be in [0, {MAX_MEMORY_BIAS}], got {params.memory_bias}")


# Tokens a prompt prefills between chances for others to run, when others are waiting: by
# background work (a warm-up, a summary's prompt) always, and by any prompt while other replies
# are decoding. A turn waits at most about one such chunk. At a ~2,400-token offset (a recalling
# strategy's prompt) on 2 cores, SmolLM2-135M, a chunk of 128 tokens took 0.66-0.73 s, of 64
# 0.37 s at the same throughput (~190 tokens/s), of 32 0.23 s at 160 tokens/s
# (benchmarks/prefill_chunks.py). A 512-token chunk had held a turn's first token up to 3 s.
SHARED_STEP = 64


class MLXEngine:
    backend = "mlx"
    supports_logprobs = True  # the remote engine does not: the route refuses logprobs there
    supports_json_schema = True  # constrained decoding (app/llm/constrained.py); nor this

    def __init__(
        self,
        model: nn.Module,
        tokenizer: ChatTokenizer,
        worker: MLXWorker,
        *,
        model_id: str,
        context_window: int,
        prompt_cache_bytes: int = 512 * 1024 * 1024,
        prefill_step_size: int = 512,
        info: dict[str, Any] | None = None,
        max_queued: int = 64,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.worker = worker
        self.model_id = model_id
        self.context_window = context_window
        self.prefill_step_size = prefill_step_size
        self.max_queued = max_queued
        self.info = dict(info or {})
        self.prompt_caches = PromptCacheStore(
            prompt_cache_bytes, lambda: make_prompt_cache(model), public=self._template_preamble()
        )
        self.grammars = JsonGrammars(tokenizer)
        # Decode steps of concurrent replies run as one batch on the numpy path; elsewhere
        # (MLX on a GPU) each reply steps alone, its next step queued before a token is read.
        self.batcher = (
            DecodeBatcher(model, prefill_step_size) if isinstance(model, CPUFastModel) else None
        )

    def _template_preamble(self) -> list[int]:
        """The tokens the chat template puts before a lone user message's own words, the same
        for every such request: the prompt caches' public prefix (app/llm/prompt_cache.py)."""
        first, *others = (
            self.encode_prompt([{"role": "user", "content": text}]) for text in ("a", "Z", "한")
        )
        return first[: min(common_prefix(first, other) for other in others)]

    def check_json_schema(self, schema: str) -> None:
        """Raise app.llm.constrained.SchemaError if `schema` cannot constrain a reply."""
        self.grammars.check(schema)

    # -- counting (caller's thread) -------------------------------------------------------------
    def count(self, messages: Sequence[ChatMessage]) -> int:
        return self.tokenizer.count(messages)

    def count_message(self, message: ChatMessage) -> int:
        return self.tokenizer.count_message(message)

    def count_overhead(self) -> int:
        return self.tokenizer.overhead

    def encode_prompt(self, messages: Sequence[ChatMessage]) -> list[int]:
        """The exact token ids `stream` feeds the model for `messages`."""
        return self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)

    # -- generation -----------------------------------------------------------------------------
    def check_capacity(self) -> None:
        waiting = self.worker.waiting
        if waiting >= self.max_queued:
            raise EngineBusyError(
                f"the model is busy: {waiting} replies are waiting for a place in the batch of "
                f"{self.worker.max_active} (MEMENTO_MAX_BATCH, MEMENTO_MAX_QUEUED_REPLIES); "
                "retry shortly"
            )

    async def stream(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cache_key: str | None = None,
    ) -> AsyncGenerator[Chunk, None]:
        validate_params(params)
        if params.priority != "background":  # upkeep waits instead: nobody is waiting on it
            self.check_capacity()
        prompt = self.encode_prompt(messages)
        if len(prompt) >= self.context_window:
            raise ValueError(
                f"the prompt has {len(prompt)} tokens; the context window is {self.context_window}"
            )
        max_tokens = min(params.max_tokens, self.context_window - len(prompt))
        said = self.penalty_ids(params)
        params = self.resolve_bias(params)
        constraint = None
        if params.json_schema:  # off the event loop: the first builds llguidance's tokenizer
            constraint = await asyncio.to_thread(self.grammars.matcher, params.json_schema)
        gen = self.worker.iterate(
            lambda: self.generate(prompt, params, cache_key, max_tokens, said, constraint),
            background=params.priority == "background",
        )
        async with contextlib.aclosing(gen) as items:
            async for item in items:
                if item is not None:
                    yield item

    def penalty_ids(self, params: GenerationParams) -> list[int]:
        """Token ids of the penalty context (caller's thread); none without a penalty."""
        if not penalizes(params) or not params.penalty_context:
            return []
        return [i for ids in self.tokenizer.encode_many(params.penalty_context) for i in ids]

    def resolve_bias(self, params: GenerationParams) -> GenerationParams:
        """`params` with the memory bias folded into `logit_bias`, as token ids of this model
        (caller's thread); a token the caller biased keeps the caller's value."""
        vocab = self.tokenizer.vocab_size
        for token, _ in params.logit_bias:
            if not 0 <= token < vocab:
                raise ValueError(f"logit_bias token {token} is not a token id (0-{vocab - 1})")
        if not params.memory_bias or not params.memory_notes:
            return params
        encode = self.tokenizer.encode_many
        common = {i for ids in encode(params.memory_common) for i in ids}
        notes = {i for ids in encode(params.memory_notes) for i in ids} - common
        bias = {i: params.memory_bias for i in sorted(notes)} | dict(params.logit_bias)
        return dataclasses.replace(params, logit_bias=tuple(bias.items()))

    async def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> str:
        parts: list[str] = []
        async with contextlib.aclosing(self.stream(messages, params)) as chunks:
            async for chunk in chunks:
                parts.append(chunk.text)
        return "".join(parts)

    async def warm(self, messages: Sequence[ChatMessage], cache_key: str) -> int:
        tokens = self.tokenizer.apply_chat_template(messages, add_generation_prompt=False)
        if not tokens or len(tokens) >= self.context_window:
            return 0
        # what the cache holds now: a turn that comes before the first step changes it
        before = await self.worker.run(self.prompt_caches.tokens, cache_key)
        done = 0
        gen = self.worker.iterate(
            lambda: self._warm(tokens, cache_key, before), background=True, first=True
        )
        async with contextlib.aclosing(gen) as steps:
            async for n in steps:
                done += n
        return done

    def _warm(
        self, tokens: list[int], key: str, before: list[int] | None
    ) -> Generator[int, None, None]:
        """Runs on the MLX thread, SHARED_STEP tokens a step with the cache checked back in
        after each: a turn of this session that starts meanwhile takes it as far as it got, and
        any foreground stream runs before the next step (the worker's background lane)."""
        fed = before
        while not self.prompt_caches.holds(key, tokens):
            if not self.prompt_caches.holds(key, fed):
                return  # a turn took the cache: its prompt is what counts now
            cache, reused = self.prompt_caches.checkout(key, tokens)
            fed = list(tokens[:reused])
            rest = tokens[reused : reused + SHARED_STEP]
            try:
                self.model(mx.array(rest)[None], cache=cache)
                mx.eval([c.state for c in cache])
            except BaseException:
                self.prompt_caches.discard(key)
                raise
            fed.extend(rest)
            self.prompt_caches.checkin(key, fed, cache)
            mx.clear_cache()
            yield len(rest)

    async def aclose(self) -> None:
        # The caches hold MLX arrays: release them on the thread that made them.
        with contextlib.suppress(RuntimeError):  # worker already shut down
            await self.worker.run(self.prompt_caches.clear)

    def generate(
        self,
        prompt: list[int],
        params: GenerationParams,
        cache_key: str | None = None,
        max_tokens: int | None = None,
        said: Sequence[int] = (),
        constraint: JsonConstraint | None = None,
    ) -> Generator[Chunk | Step | None, Any, None]:
        """Runs on the MLX thread. Yields None during prefill, then a Chunk per token; on the
        batching path, a Step between tokens, answered by the worker with the next logits."""
        max_tokens = params.max_tokens if max_tokens is None else max_tokens
        cache, reused = self.prompt_caches.checkout(cache_key, prompt)
        fed = list(prompt[:reused])  # always exactly the tokens whose KV the cache holds
        keep = True
        try:
            yield from self._decode(
                prompt, reused, cache, fed, params, max_tokens, said, constraint
            )
        except GeneratorExit:
            raise
        except BaseException:
            keep = False  # a failed step may have left the cache half-updated
            raise
        finally:
            if keep:
                self.prompt_caches.checkin(cache_key, fed, cache)

    def _decode(
        self,
        prompt: list[int],
        reused: int,
        cache: list[Any],
        fed: list[int],
        params: GenerationParams,
        max_tokens: int,
        said: Sequence[int] = (),
        constraint: JsonConstraint | None = None,
    ) -> Generator[Chunk | Step | None, Any, None]:
        background = params.priority == "background"
        model, rest = self.model, prompt[reused:]
        logits = None
        while rest and self.batcher is not None and not background:
            # the round's runner prefills as much as its budget allows, beside the other
            # prompts and decode steps of the round (app/llm/batching.py); the round that takes
            # the prompt's last token gives the first token's logits
            n, logits = yield Step(self.batcher, Prefill(rest, cache))
            fed.extend(rest[:n])
            rest = rest[n:]
        while len(rest) > 1:
            shared = background or self.worker.decoding
            n = min(SHARED_STEP if shared else self.prefill_step_size, len(rest) - 1)
            model(mx.array(rest[:n])[None], cache=cache)
            mx.eval([c.state for c in cache])
            fed.extend(rest[:n])
            rest = rest[n:]
            mx.clear_cache()
            yield None

        # the numpy path's logits are numpy: choose there (app/llm/numpy_sampler.py); MLX's own
        # sampler stays where the next step is queued before this token is read (overlap)
        sampler = Sampler if self.batcher is None else NumpySampler
        sample = sampler(params, said, constraint)
        # On MLX (a GPU), unconstrained, the next step is queued before the current token is
        # read (overlap). A grammar needs each token before it can mask the next, and on the
        # numpy path the worker runs every reply's step as one batch: those go step by step.
        eager = constraint is None and self.batcher is None
        if constraint is not None:
            constraint.plan(max_tokens)
        if logits is None and self.batcher is not None:  # the last token steps with the batch
            logits = yield Step(self.batcher, (rest[0], cache))
        elif logits is None:
            logits = model(mx.array(rest)[None], cache=cache)[:, -1, :]
        y = sample(logits)
        scores = sample.scores(y)
        fed.extend(rest)
        mx.async_eval(y, *scores)

        detok = self.tokenizer.detokenizer()
        stopper = _StopText(params.stop)
        usage = Usage(prompt_tokens=len(prompt), cached_tokens=reused)
        n = 0
        while True:
            queued = n + 1 < max_tokens
            if queued and eager:
                next_y = sample(model(y[None], cache=cache)[:, -1, :])
                next_scores = sample.scores(next_y)
                mx.async_eval(next_y, *next_scores)
            token = int(cast(int, y.item()))  # a token id; the stub's item() allows complex
            n += 1
            if queued and eager:
                fed.append(token)
            if token in self.tokenizer.stop_ids:
                tail, _ = self._tail(stopper, detok)
                yield Chunk(text=tail, finish_reason="stop", usage=usage)
                return
            usage.completion_tokens = n
            if constraint is not None:
                constraint.consume(token)
            logprobs = Sampler.read(token, scores)
            text, hit = stopper.feed(detok.add(token))
            if hit:
                yield Chunk(
                    text=text,
                    token_ids=[token],
                    finish_reason="stop",
                    usage=usage,
                    logprobs=logprobs,
                )
                return
            if not queued:
                tail, hit = self._tail(stopper, detok)
                finish: FinishReason = "stop" if hit else "length"
                yield Chunk(
                    text=text + tail,
                    token_ids=[token],
                    finish_reason=finish,
                    usage=usage,
                    logprobs=logprobs,
                )
                return
            yield Chunk(text=text, token_ids=[token], logprobs=logprobs)
            if not eager:  # the next step, now that this token is out (and the grammar saw it)
                if constraint is not None:
                    # the last tokens of the budget close the JSON (see app/llm/constrained.py)
                    constraint.plan(max_tokens - n)
                if self.batcher is not None:  # run with every other sequence's step
                    logits = yield Step(self.batcher, (token, cache))
                else:
                    logits = model(y[None], cache=cache)[:, -1, :]
                fed.append(token)
                next_y = sample(logits)
                next_scores = sample.scores(next_y)
                mx.async_eval(next_y, *next_scores)
            y, scores = next_y, next_scores

    @staticmethod
    def _tail(stopper: _StopText, detok: Any) -> tuple[str, bool]:
        """What is left to emit at the end: held-back text and any incomplete UTF-8 bytes."""
        text, hit = stopper.feed(detok.flush())
        return (text if hit else text + stopper.flush()), hit
