"""Top-p without sorting the vocabulary (app/llm/sampler.py `nucleus`) keeps the nucleus
mlx-lm's `apply_top_p` keeps, up to float32 rounding at its far edge, and falls back to it when
the nucleus is wider than the candidates it searches. The numpy path's sampler
(app/llm/numpy_sampler.py) chooses what MLX's does where the choice is not a draw, and draws
from the same nucleus in the same proportions, repeatably for a seed."""

from __future__ import annotations

import numpy as np
import pytest

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
from mlx_lm.sample_utils import apply_top_p  # noqa: E402

from app.llm import sampler  # noqa: E402
from app.llm.numpy_sampler import NumpySampler  # noqa: E402
from app.llm.sampler import Sampler, nucleus  # noqa: E402
from app.llm.types import GenerationParams  # noqa: E402

VOCAB = 49152


def logprobs(rng: np.random.Generator, spread: float) -> mx.array:
    raw = mx.array((rng.standard_normal((1, VOCAB)) * spread).astype(np.float32))
    return raw - mx.logsumexp(raw, axis=-1, keepdims=True)


@pytest.mark.parametrize("spread", [2.0, 3.0, 5.0, 8.0])
@pytest.mark.parametrize("top_p", [0.5, 0.9, 0.99])
def test_the_nucleus_is_mlx_lms_up_to_rounding_at_its_edge(spread: float, top_p: float) -> None:
    rng = np.random.default_rng(int(spread * 100 + top_p * 1000))
    for _ in range(5):
        lp = logprobs(rng, spread)
        ours, theirs = np.array(nucleus(lp, top_p))[0], np.array(apply_top_p(lp, top_p))[0]
        kept, ref = np.isfinite(ours), np.isfinite(theirs)
        np.testing.assert_array_equal(ours[kept & ref], theirs[kept & ref])  # logits untouched
        probs = np.exp(np.array(lp)[0].astype(np.float64))
        assert probs[kept].sum() >= top_p - 1e-4  # a nucleus: top_p of the mass (float32 sums)
        differ = kept ^ ref
        assert differ.sum() <= 8 and probs[differ].sum() < 1e-4, (differ.sum(), top_p)
        # nested: both keep the likeliest tokens, one of them a few more at the edge
        assert (kept <= ref).all() or (ref <= kept).all()


def test_a_nucleus_wider_than_the_candidates_is_mlx_lms_exactly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler, "NUCLEUS_CANDIDATES", 16)
    lp = logprobs(np.random.default_rng(3), 0.5)  # flat: the 0.9 nucleus holds thousands
    ours, theirs = np.array(nucleus(lp, 0.9)), np.array(apply_top_p(lp, 0.9))
    assert np.isfinite(ours).sum() > 1000
    np.testing.assert_array_equal(ours, theirs)


def test_seeded_top_p_sampling_repeats_and_stays_in_the_nucleus() -> None:
    lp = logprobs(np.random.default_rng(5), 5.0)
    params = GenerationParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=11)
    first = [int(Sampler(params)(lp).item()) for _ in range(3)]
    assert len(set(first)) == 1  # the same seed, the same token
    allowed = np.isfinite(np.array(nucleus(lp * (1 / 0.7) - mx.logsumexp(lp * (1 / 0.7)), 0.9)))
    draws = Sampler(GenerationParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=12))
    assert all(allowed[0, int(draws(lp).item())] for _ in range(50))


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(max_tokens=8),
        GenerationParams(max_tokens=8, repetition_penalty=1.3),
        GenerationParams(max_tokens=8, frequency_penalty=0.8, presence_penalty=0.5),
        GenerationParams(max_tokens=8, logit_bias=((7, 50.0),)),
        GenerationParams(max_tokens=8, logprobs=2),
    ],
)
def test_numpy_sampler_chooses_as_mlx_does_where_nothing_is_drawn(
    params: GenerationParams,
) -> None:
    rng = np.random.default_rng(9)
    said = [3, 5, 10, 400]
    np_sampler, mx_sampler = NumpySampler(params, said), Sampler(params, said)
    for i in range(6):
        rows = (rng.standard_normal((1, VOCAB)) * 4).astype(np.float32)
        rows[0, [10, 400, 4000]] = rows.max() + 1  # equal maxima: the first one wins on both
        if i % 2:
            rows[0, said] = rows.max() + 0.5  # what was said leads unless penalized
        got, want = np_sampler(rows), mx_sampler(mx.array(rows))
        assert int(got.item()) == int(want.item())
        ours, theirs = np_sampler.scores(got), mx_sampler.scores(want)
        assert len(ours) == len(theirs)
        if theirs:
            read_ours = Sampler.read(int(got.item()), ours)
            read_theirs = Sampler.read(int(want.item()), theirs)
            assert read_ours is not None and read_theirs is not None
            # MLX's float32 logsumexp over 49,152 logits drifts ~1e-4 (numpy's pairwise sum
            # stays within 1e-6 of a float64 one)
            assert read_ours[0].logprob == pytest.approx(read_theirs[0].logprob, abs=5e-4)
            # the same top log-probabilities (which of equal ones is listed is arbitrary)
            ours_top = [p for _, p in read_ours[0].top]
            assert ours_top == pytest.approx([p for _, p in read_theirs[0].top], abs=5e-4)
    assert np.array_equal(rows, rows.copy())  # the caller's row is never written


def test_numpy_sampler_draws_the_nucleus_in_its_proportions() -> None:
    lp = logprobs(np.random.default_rng(5), 3.0)
    params = GenerationParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=11)
    first = [int(NumpySampler(params)(lp).item()) for _ in range(3)]
    assert len(set(first)) == 1  # the same seed, the same token
    scaled = np.array(lp)[0] * np.float32(1 / 0.7)
    ref = np.array(apply_top_p(mx.array(scaled - np.log(np.exp(scaled).sum())), 0.9))
    kept = np.flatnonzero(np.isfinite(ref))
    probs = np.exp(scaled[kept].astype(np.float64))
    probs /= probs.sum()
    sampler = NumpySampler(GenerationParams(max_tokens=8, temperature=0.7, top_p=0.9, seed=12))
    n = 4000
    drawn = [int(sampler(lp).item()) for _ in range(n)]
    assert set(drawn) <= set(kept.tolist())
    counts = np.array([drawn.count(int(t)) for t in kept])
    # seeded, so the same every run: within 4 standard deviations of each expected count
    assert (np.abs(counts - n * probs) <= 4 * np.sqrt(n * probs * (1 - probs)) + 1).all()


def test_numpy_sampler_falls_back_to_the_whole_sort_for_a_wide_nucleus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sampler, "NUCLEUS_CANDIDATES", 16)
    lp = logprobs(np.random.default_rng(3), 0.5)  # flat: the 0.9 nucleus holds thousands
    allowed = np.isfinite(np.array(apply_top_p(lp, 0.9)))[0]
    draws = NumpySampler(GenerationParams(max_tokens=8, temperature=1.0, top_p=0.9, seed=4))
    drawn = {int(draws(lp).item()) for _ in range(200)}
    assert len(drawn) > 100 and all(allowed[t] for t in drawn)
