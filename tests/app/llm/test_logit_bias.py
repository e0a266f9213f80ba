"""Logit biases in the MLX engine: OpenAI's `logit_bias` (token ids to values added to their
logits, after the penalties) and the memory bias (issue 12: the words recalled notes quote,
lifted so that a small model names what its memory holds), resolved to token ids of the real
embedded model's tokenizer."""

from __future__ import annotations

import mlx.core as mx
import pytest

from app.llm.mlx_engine import MLXEngine
from app.llm.sampler import Sampler
from app.llm.types import MAX_LOGIT_BIAS, GenerationParams

LOGITS = [3.0, 2.0, 1.0, -1.0]


def pick(sampler: Sampler) -> int:
    return int(sampler(mx.array([LOGITS])).item())


def test_a_bias_moves_the_greedy_choice_and_comes_after_the_penalties() -> None:
    assert pick(Sampler(GenerationParams(logit_bias=((2, 2.5),)))) == 2  # 1 + 2.5 > 3
    assert pick(Sampler(GenerationParams(logit_bias=((0, -100.0),)))) == 1  # banned
    # 3 / 2 (penalized as said) + 1 = 2.5 > 2: added after the division, not divided with it
    biased = Sampler(GenerationParams(repetition_penalty=2.0, logit_bias=((0, 1.0),)), [0])
    assert pick(biased) == 0


def test_memory_bias_lifts_the_notes_own_words_only(engine: MLXEngine) -> None:
    tok = engine.tokenizer
    params = GenerationParams(
        memory_bias=2.0,
        memory_notes=("We named her Mochi.",),
        memory_common=("You are Pippa, the user's daughter.", "- Dad said: ", "On 2 March 2024:"),
        logit_bias=((tok.encode(" her")[0], -5.0),),
    )
    bias = dict(engine.resolve_bias(params).logit_bias)
    mochi = tok.encode(" Mochi")
    assert all(bias[i] == 2.0 for i in mochi)
    assert bias[tok.encode(" her")[0]] == -5.0  # the caller's own value wins
    for common in (" the", "Dad", " said", ":"):  # in the persona or the frame
        assert all(i not in bias for i in tok.encode(common)), common
    assert engine.resolve_bias(GenerationParams(memory_notes=params.memory_notes)).logit_bias == ()


async def test_a_forced_and_a_banned_token_through_the_engine(engine: MLXEngine) -> None:
    ask = [{"role": "user", "content": "Name a fruit."}]
    plain = await engine.complete(ask, GenerationParams(max_tokens=1))
    first = engine.tokenizer.encode(plain)
    assert len(first) == 1  # one token, so its id is the one the model chose
    banned = await engine.complete(
        ask, GenerationParams(max_tokens=1, logit_bias=((first[0], -100),))
    )
    assert banned != plain
    forced_id = engine.tokenizer.encode(" Mochi")[0]
    forced = await engine.complete(
        ask, GenerationParams(max_tokens=1, logit_bias=((forced_id, 100),))
    )
    assert forced == engine.tokenizer.decode([forced_id])


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (GenerationParams(logit_bias=((5, 101.0),)), "logit_bias of token 5"),
        (GenerationParams(logit_bias=((10**9, 1.0),)), "logit_bias token 1000000000"),
        (
            GenerationParams(logit_bias=tuple((i, 1.0) for i in range(MAX_LOGIT_BIAS + 1))),
            "at most",
        ),
        (GenerationParams(memory_bias=-1), "memory_bias"),
        (GenerationParams(memory_bias=11), "memory_bias"),
    ],
)
async def test_out_of_range_biases_are_named(
    engine: MLXEngine, params: GenerationParams, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        await engine.complete([{"role": "user", "content": "hi"}], params)
