"""Choosing each next token in numpy, for the engine's numpy path (a batched step's logits are
numpy already; a lone sequence's are read into numpy).

The same choices as `Sampler` (app/llm/sampler.py), computed without MLX: penalties, logit
biases, a grammar's mask and greedy picks give the very same token; temperature/top-p draws
come from the same distribution (the same nucleus) but from a numpy generator seeded by the
request, so a seed repeats its reply on this path, whatever else shares the batch. Why: MLX's
sampling of one sequence took ~3.3 ms a token on 2 cores (its logsumexp ~0.9 ms, a Gumbel draw
over all 49,152 logits ~1.6 ms), one sequence after another in a batched round, so 20 streams
of a persona at temperature 0.3 spent ~17% of the worker's time choosing tokens
(benchmarks/load.py, profiled). Here it is the nucleus' search and one uniform draw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402

from app.llm.constrained import JsonConstraint  # noqa: E402
from app.llm.sampler import Choice, nucleus_of  # noqa: E402
from app.llm.types import GenerationParams  # noqa: E402


class NumpySampler(Choice):
    """`Sampler`'s interface (calls give a (1,) mx.array token id, `scores` its log-probability
    arrays for `Sampler.read`) over numpy logits (or MLX ones, read into numpy)."""

    def __init__(
        self,
        params: GenerationParams,
        context_ids: Sequence[int] = (),
        constraint: JsonConstraint | None = None,
    ) -> None:
        super().__init__(params, context_ids, constraint)
        self.rng = np.random.default_rng(self.seed) if self.temp > 0 else None
        self.counts: np.ndarray | None = None
        self.raw: np.ndarray | None = None
        self.bias: tuple[np.ndarray, np.ndarray] | None = None
        if self.bias_pairs:
            ids, values = self.bias_pairs
            self.bias = (np.asarray(ids, dtype=np.int64), np.asarray(values, dtype=np.float32))
        # the argmax of the logits as they come, nothing else asked for
        self.plain = not self.penalize and all(
            a is None for a in (self.rng, self.bias, constraint, self.top)
        )

    def _penalize(self, x: np.ndarray) -> None:
        """`Sampler._penalized`'s arithmetic on x in place, on the tokens said only."""
        if self.counts is None:
            self.counts = np.zeros(x.shape[-1], dtype=np.float32)
            np.add.at(self.counts, np.asarray(self.context_ids, dtype=np.int64), 1.0)
        said = np.flatnonzero(self.counts)
        v = x[said]
        # float32 factors like the logits', so the arithmetic is MLX's
        rep, freq, presence = (np.float32(f) for f in (self.rep, self.freq, self.presence))
        if rep != 1.0:
            v = np.where(v > 0, v / rep, v * rep)
        if freq or presence:
            v = v - freq * self.counts[said] - presence
        x[said] = v

    def __call__(self, logits: mx.array | np.ndarray) -> mx.array:
        x = np.asarray(logits, dtype=np.float32).reshape(-1)
        if self.plain:
            return mx.array([int(np.argmax(x))])
        if self.top is not None:
            self.raw = x
        if self.penalize or self.bias is not None:
            x = x.copy()  # never the caller's row, nor `raw`
            if self.penalize:
                self._penalize(x)
            if self.bias is not None:
                np.add.at(x, *self.bias)
        if self.constraint is not None:
            x = np.where(self.constraint.allowed(x.shape[-1]), x, np.float32(-np.inf))
        if self.rng is None:
            token = int(np.argmax(x))
        else:
            token = self._draw(x * np.float32(1.0 / self.temp))
        if self.penalize and self.counts is not None:
            self.counts[token] += 1.0
        return mx.array([token])

    def _draw(self, x: np.ndarray) -> int:
        """A token with probability softmax(x), within the top-p nucleus."""
        assert self.rng is not None
        if self.top_p >= 1.0:  # every token: no order needed
            ids = np.flatnonzero(np.isfinite(x))
            values = x[ids]
        else:
            found = nucleus_of(x, self.top_p)
            ids, values = found if found is not None else self._wide_nucleus(x)
        weights = np.cumsum(np.exp((values - values.max()).astype(np.float64)))
        at = int(np.searchsorted(weights, self.rng.random() * weights[-1], side="right"))
        return int(ids[min(at, len(ids) - 1)])

    def _wide_nucleus(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The nucleus `nucleus_of` gave up on (wider than its candidates), from a sort of all
        the logits: every token whose likelier ones hold less than top_p of the mass."""
        ids = np.argsort(-x, kind="stable")
        ids = ids[np.isfinite(x[ids])]
        values = x[ids]
        probs = np.exp((values - values[0]).astype(np.float64))
        kept = (np.cumsum(probs) - probs) < self.top_p * probs.sum()
        return ids[kept], values[kept]

    def scores(self, y: mx.array) -> list[mx.array]:
        """The log-probabilities of token `y` under the model's own distribution, then the top
        ids and theirs, as `Sampler.scores` gives them; [] when not asked for."""
        if self.top is None or self.raw is None:
            return []
        raw = self.raw
        peak = raw.max()
        logp = raw - (peak + np.log(np.exp(raw - peak).sum(dtype=np.float32)))
        token = int(cast(int, y.item()))
        chosen = mx.array(logp[[token]][None])
        if not self.top:
            return [chosen]
        ids = np.argpartition(-logp, self.top - 1)[: self.top]
        return [chosen, mx.array(ids[None]), mx.array(logp[ids][None])]
