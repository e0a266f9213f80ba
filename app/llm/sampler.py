"""Choosing each next token: greedy, or temperature/top-p with a per-request PRNG key, after
the repetition penalties and the logit biases; with the log-probabilities a reply asked for.
Runs on the MLX thread.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import cast

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.sample_utils import apply_top_p  # noqa: E402

from app.llm.constrained import JsonConstraint  # noqa: E402
from app.llm.types import GenerationParams, TokenLogprob  # noqa: E402

# Top-p looks for its nucleus among this many most likely tokens first (a temperature below 1
# keeps it to a handful); only a flatter distribution sorts the whole vocabulary.
NUCLEUS_CANDIDATES = 1024


def nucleus_of(x: np.ndarray, top_p: float) -> tuple[np.ndarray, np.ndarray] | None:
    """The top-p nucleus of one row of logits (log-probabilities or not: the sums are taken
    from its maximum): its token ids, likeliest first, and their logits; None when it reaches
    past the NUCLEUS_CANDIDATES likeliest (then only a sort of all of them finds it). Summed
    from the top down as mlx-lm's `apply_top_p` does; the total it is measured against is
    summed in another order, so at the nucleus' far edge a token or a few of negligible
    probability may fall the other way (tests/app/llm/test_sampler.py states the bound)."""
    k = min(NUCLEUS_CANDIDATES, x.shape[-1])
    candidates = np.argpartition(-x, k - 1)[:k]
    order = np.argsort(-x[candidates], kind="stable")
    ids = candidates[order]
    top = x[ids]
    peak = top[0]
    probs = np.exp(top - peak)
    total = np.exp(x - peak).sum()
    kept = int(((np.cumsum(probs) - probs) < top_p * total).sum())
    if kept >= k:
        return None
    return ids[:kept], top[:kept]


def nucleus(logprobs: mx.array, top_p: float) -> mx.array:
    """mlx-lm's `apply_top_p` (the tokens outside the top-p nucleus at -inf) for one row,
    without sorting 49,152 log-probabilities per token: on 2 cores its sort took ~4 ms of a ~6
    ms sampling step, each reply's every token, one sequence after another in a batched round
    (`nucleus_of`)."""
    found = nucleus_of(np.asarray(logprobs, dtype=np.float32).reshape(-1), top_p)
    if found is None:
        return apply_top_p(logprobs, top_p)
    threshold = mx.array(found[1][-1:].reshape((1,) * logprobs.ndim))
    return mx.where(logprobs < threshold, mx.array(-mx.inf, logprobs.dtype), logprobs)


def penalizes(params: GenerationParams) -> bool:
    return bool(params.frequency_penalty or params.presence_penalty) or (
        params.repetition_penalty != 1.0
    )


class Choice:
    """What a request asks of the choice of its tokens, as both samplers read it: temperature,
    top-p, a seed (drawn when none is given), penalties, the ids already said, logit biases
    (pairs), log-probabilities, a grammar."""

    def __init__(
        self,
        params: GenerationParams,
        context_ids: Sequence[int] = (),
        constraint: JsonConstraint | None = None,
    ) -> None:
        self.constraint = constraint
        self.temp = params.temperature
        self.top_p = params.top_p
        self.seed = params.seed if params.seed is not None else secrets.randbits(63)
        self.penalize = penalizes(params)
        self.freq, self.presence = params.frequency_penalty, params.presence_penalty
        self.rep = params.repetition_penalty
        self.context_ids = list(context_ids)
        self.top = params.logprobs  # None: no log-probabilities, nothing computed
        self.bias_pairs = tuple(zip(*params.logit_bias, strict=True)) if params.logit_bias else None


class Sampler(Choice):
    """Greedy, or temperature/top-p with a per-request PRNG key (never the global MLX state);
    with penalties, the logits of tokens already said are lowered first. The counts stay an MLX
    array updated lazily with each sampled token: the next step is queued before the current
    token is read (see _decode), so the penalty must not need its value in Python."""

    def __init__(
        self,
        params: GenerationParams,
        context_ids: Sequence[int] = (),
        constraint: JsonConstraint | None = None,
    ) -> None:
        super().__init__(params, context_ids, constraint)
        self.key = mx.random.key(self.seed) if self.temp > 0 else None
        self.counts: mx.array | None = None
        self.raw: mx.array | None = None
        self.bias: tuple[mx.array, mx.array] | None = None
        if self.bias_pairs:
            ids, values = self.bias_pairs
            self.bias = (mx.array(ids), mx.array(values, mx.float32))

    def _penalized(self, logits: mx.array) -> mx.array:
        if self.counts is None:
            self.counts = mx.zeros((logits.shape[-1],), mx.float32)
            if self.context_ids:
                ids = mx.array(self.context_ids)
                self.counts = self.counts.at[ids].add(mx.ones(ids.shape, mx.float32))
        seen = self.counts > 0
        if self.rep != 1.0:
            scaled = mx.where(logits > 0, logits / self.rep, logits * self.rep)
            logits = mx.where(seen, scaled, logits)
        if self.freq or self.presence:
            logits = logits - self.freq * self.counts - self.presence * seen.astype(mx.float32)
        return logits

    def __call__(self, logits: mx.array) -> mx.array:
        if self.top is not None:
            self.raw = logits  # the model's own distribution, before any of what follows
        if self.penalize:
            logits = self._penalized(logits)
        if self.bias is not None:
            logits = logits.at[..., self.bias[0]].add(self.bias[1])
        if self.constraint is not None:
            allowed = mx.array(self.constraint.allowed(logits.shape[-1]))
            logits = mx.where(allowed, logits, mx.array(-mx.inf, logits.dtype))
        if self.key is None:
            y = mx.argmax(logits, axis=-1)
        else:
            logits = logits * (1.0 / self.temp)
            if self.top_p < 1.0:
                logits = nucleus(logits - mx.logsumexp(logits, axis=-1, keepdims=True), self.top_p)
            self.key, sub = mx.random.split(self.key)
            y = mx.random.categorical(logits, key=sub)
        if self.penalize and self.counts is not None:
            self.counts = self.counts.at[y].add(mx.ones(y.shape, mx.float32))
        return y

    def scores(self, y: mx.array) -> list[mx.array]:
        """Lazy arrays for the log-probabilities of token `y` of the last call (its own, then
        the top ids and theirs); [] when not asked for, so the decode loop pays nothing."""
        if self.top is None or self.raw is None:
            return []
        logp = self.raw - mx.logsumexp(self.raw, axis=-1, keepdims=True)
        chosen = mx.take_along_axis(logp, y[:, None], axis=-1)
        if not self.top:
            return [chosen]
        ids = mx.argpartition(-logp, kth=self.top - 1, axis=-1)[:, : self.top]
        return [chosen, ids, mx.take_along_axis(logp, ids, axis=-1)]

    @staticmethod
    def read(token: int, arrays: list[mx.array]) -> list[TokenLogprob] | None:
        if not arrays:
            return None
        top: tuple[tuple[int, float], ...] = ()
        if len(arrays) == 3:
            # (1, k) arrays: tolist() is a list of one list (the stub allows any nesting)
            ids = cast(list[list[int]], arrays[1].tolist())[0]
            logps = cast(list[list[float]], arrays[2].tolist())[0]
            pairs = zip(ids, logps, strict=True)
            top = tuple(sorted(((int(i), float(p)) for i, p in pairs), key=lambda t: -t[1]))
        return [TokenLogprob(token, float(cast(float, arrays[0].item())), top)]
