"""Answers the steps of one worker round together (see app/llm/worker.py `Step`): decode steps
and prompt chunks.

Sequences whose caches are plain `KVCache`s run as one `BatchDecoder` pass: every decode step,
and the prompt chunks the round's budget allows (`Prefill`: the runner, not the sequence,
decides how much of a prompt a round prefills, so prompts arriving together share the weights'
reads). A decode step alone stays a GEMV (sgemm packs the weights first: one sequence is faster
alone). Any other cache steps singly through the model. If the batched pass fails, every cache's
offset is put back and the sequences run one by one, so only a sequence whose own step fails
gets the error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.cpu_batch import BatchDecoder  # noqa: E402
from app.llm.cpu_fast import CPUFastModel  # noqa: E402

log = logging.getLogger(__name__)

# Measured on 2 cores, SmolLM2-135M (benchmarks/throughput.py): two sequences in one sgemm
# step already beat two sgemv steps; one alone does not.
MIN_BATCH = 2

# Prompt work per round while replies decode, in tokens at offset 0: it bounds how long their
# next token waits (~0.3 s for 256). A token at offset L costs 1 + L / OFFSET_COST of them, its
# attention reading L cached keys (on 2 cores a cold token's marginal cost was ~1.2 ms, one at
# offset 2,400 ~5.8 ms: benchmarks/prefill_chunks.py). With nobody decoding, a round takes
# `prefill_step_size` plain tokens, as an MLX prefill chunk would: a lone turn's prompt is not
# cut smaller than before (a pass costs ~55 ms of weight reads however few its rows).
PREFILL_SHARED = 256
OFFSET_COST = 625

DecodePayload = tuple[int, list[Any]]  # the token to feed, the sequence's cache


@dataclass(eq=False)
class Prefill:
    """A prompt still to prefill into `cache`. Answered with how many of `tokens` this round
    prefilled (0: none, ask again) and, once the last one is in, its logits (else None)."""

    tokens: Sequence[int]
    cache: list[Any]


def prefill_share(tokens: int, offset: int, budget: float) -> tuple[int, float]:
    """How many of `tokens` prompt tokens starting at `offset` fit in `budget`, and their cost."""
    n, spent = 0, 0.0
    while n < tokens:
        cost = 1 + (offset + n) / OFFSET_COST
        if spent + cost > budget:
            break
        spent, n = spent + cost, n + 1
    return n, spent


class DecodeBatcher:
    def __init__(self, model: CPUFastModel, prefill_step_size: int = 512) -> None:
        self.model = model
        self.prefill_step_size = prefill_step_size

    def run_steps(self, payloads: Sequence[DecodePayload | Prefill]) -> list[Any]:
        results: list[Any] = [None] * len(payloads)
        decoding = any(not isinstance(p, Prefill) for p in payloads)
        budget = float(PREFILL_SHARED if decoding else self.prefill_step_size)
        items: list[int | list[int]] = []  # what each payload runs this round, by index
        for p in payloads:
            if not isinstance(p, Prefill):
                items.append(p[0])
                continue
            if decoding:
                n, spent = prefill_share(len(p.tokens), p.cache[0].offset, budget)
            else:
                n = int(min(len(p.tokens), budget))
                spent = float(n)
            budget -= spent
            items.append(list(p.tokens[:n]))
        caches = [p.cache if isinstance(p, Prefill) else p[1] for p in payloads]
        for i, item in enumerate(items):
            if item == []:
                results[i] = (0, None)  # no room this round
        run = [i for i, item in enumerate(items) if item != []]
        decoder = self.model._np_decoder  # None once disabled for a comparison
        rows = [i for i in run if _plain(caches[i])]
        prefills = any(not isinstance(items[i], int) for i in rows)
        if decoder is not None and (len(rows) >= MIN_BATCH or prefills):
            offsets = [[c.offset for c in caches[i]] for i in rows]
            try:
                logits = BatchDecoder(decoder).step(
                    [items[i] for i in rows], [caches[i] for i in rows]
                )
            except Exception:
                log.exception("a batched step failed; running its sequences one by one")
                for i, before in zip(rows, offsets, strict=True):
                    for c, offset in zip(caches[i], before, strict=True):
                        c.offset = offset
            else:
                for j, i in enumerate(rows):
                    results[i] = self._answer(payloads[i], items[i], logits[j : j + 1])
            if prefills:
                mx.clear_cache()  # a grown KV buffer's old copy
        for i in run:
            if results[i] is None:
                try:
                    item = items[i]
                    tokens = mx.array([[item]] if isinstance(item, int) else [item])
                    out = self.model(tokens, cache=caches[i])[:, -1, :]
                    mx.eval(out, [c.state for c in caches[i]])
                    results[i] = self._answer(payloads[i], item, out)
                except Exception as exc:  # noqa: BLE001 - handed to that sequence only
                    results[i] = exc
        return results

    @staticmethod
    def _answer(
        payload: DecodePayload | Prefill, item: int | list[int], logits: mx.array | np.ndarray
    ) -> Any:
        """A decode step's logits; a prompt chunk's count, and the logits once it is all in.
        A batched pass's logits stay numpy: the sampler takes either (app/llm/sampler.py)."""
        if not isinstance(payload, Prefill):
            return logits
        assert isinstance(item, list)
        return len(item), logits if len(item) == len(payload.tokens) else None


def _plain(cache: list[Any]) -> bool:
    return all(type(c) is KVCache for c in cache)
