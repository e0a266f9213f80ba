"""One `BatchDecoder` pass over a mix of prompt chunks and decode steps computes what each
sequence computes alone: its last token's logits and the keys and values it leaves in its own
cache (float32 rounding aside: the GEMMs sum a row in another order with more rows beside it).
On the real embedded SmolLM2 model of the session `engine`."""

from __future__ import annotations

from typing import Any

import pytest

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
import numpy as np  # noqa: E402
from mlx_lm.models.cache import make_prompt_cache  # noqa: E402

from app.llm.cpu_batch import BatchDecoder  # noqa: E402
from app.llm.cpu_fast import CPUFastModel  # noqa: E402
from app.llm.mlx_engine import MLXEngine  # noqa: E402

ATOL = 1e-3


def test_prompt_chunks_and_decode_steps_in_one_pass_match_each_alone(engine: MLXEngine) -> None:
    model = engine.model
    assert isinstance(model, CPUFastModel) and model._np_decoder is not None
    ask = engine.encode_prompt
    cold = ask([{"role": "user", "content": "Tell me a short story about a lighthouse."}])
    warm = ask([{"role": "user", "content": "What is the capital of France? " * 8}])
    after = ask([{"role": "user", "content": "And of Korea?"}])
    # (the prefix already in the cache, what this pass feeds: a list to prefill, an int to decode)
    plan: list[tuple[list[int], list[int] | int]] = [
        ([], cold),  # a new prompt
        (warm, 17),  # a reply decoding
        (warm, after),  # the next turn's chunk after a cached prefix
        ([], cold[:1]),  # a one-token prompt: decodes as a step
    ]

    def caches() -> list[list[Any]]:
        out = []
        for prefix, _ in plan:
            cache = make_prompt_cache(model)
            if prefix:
                model(mx.array(prefix)[None], cache=cache)
                mx.eval([c.state for c in cache])
            out.append(cache)
        return out

    def run() -> tuple[list[np.ndarray], list[list[Any]], np.ndarray, list[list[Any]]]:
        alone_caches = caches()
        alone = []
        for (_, feed), cache in zip(plan, alone_caches, strict=True):
            ids = [feed] if isinstance(feed, int) else feed
            alone.append(np.array(model(mx.array(ids)[None], cache=cache)[0, -1]))
        together_caches = caches()
        assert model._np_decoder is not None
        items = [feed for _, feed in plan]
        together = BatchDecoder(model._np_decoder).step(items, together_caches)
        return alone, alone_caches, together, together_caches

    alone, alone_caches, together, together_caches = engine.worker.call(run)
    assert together.shape == (len(plan), model.args.vocab_size)
    for i, logits in enumerate(alone):
        assert float(np.abs(together[i] - logits).max()) < ATOL, i
        assert int(np.argmax(together[i])) == int(np.argmax(logits))
        for a, b in zip(alone_caches[i], together_caches[i], strict=True):
            assert a.offset == b.offset
            n = a.offset
            np.testing.assert_allclose(
                np.array(a.keys[..., :n, :]), np.array(b.keys[..., :n, :]), atol=ATOL
            )
            np.testing.assert_allclose(
                np.array(a.values[..., :n, :]), np.array(b.values[..., :n, :]), atol=ATOL
            )


def test_an_empty_prompt_chunk_is_refused(engine: MLXEngine) -> None:
    model = engine.model
    assert isinstance(model, CPUFastModel) and model._np_decoder is not None
    decoder = BatchDecoder(model._np_decoder)
    with pytest.raises(ValueError, match="prompt chunk to prefill is empty"):
        engine.worker.call(lambda: decoder.step([[]], [make_prompt_cache(model)]))
