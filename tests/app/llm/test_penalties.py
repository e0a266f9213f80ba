"""Repetition control in the MLX sampler (issue 12): frequency, presence and repetition
penalties over the reply so far and the penalty context (the persona's recent replies)."""

from __future__ import annotations

import mlx.core as mx
import pytest

from app.llm.mlx_engine import MLXEngine
from app.llm.sampler import Sampler
from app.llm.types import GenerationParams

LOGITS = [3.0, 2.0, 1.0, -1.0]


def pick(sampler: Sampler, logits: list[float] = LOGITS) -> int:
    return int(sampler(mx.array([logits])).item())


@pytest.mark.parametrize(
    "params",
    [
        GenerationParams(repetition_penalty=2.0),  # 3 / 2 = 1.5 < 2
        GenerationParams(presence_penalty=1.5),  # 3 - 1.5 = 1.5 < 2
        GenerationParams(frequency_penalty=0.6),  # 3 - 2 x 0.6 = 1.8 < 2 (said twice)
    ],
)
def test_a_token_already_said_loses_to_the_next_best(params: GenerationParams) -> None:
    assert pick(Sampler(GenerationParams())) == 0
    assert pick(Sampler(params, context_ids=[0, 0])) == 1


def test_the_reply_itself_counts_as_said() -> None:
    plain, penalized = (
        Sampler(GenerationParams()),
        Sampler(GenerationParams(presence_penalty=2.5)),
    )
    assert [pick(plain) for _ in range(3)] == [0, 0, 0]
    assert [pick(penalized) for _ in range(3)] == [0, 1, 2]  # each said once, then avoided


def test_repetition_penalty_pushes_negative_logits_further_down() -> None:
    s = Sampler(GenerationParams(repetition_penalty=2.0), context_ids=[0, 1, 2])
    assert pick(s, [-0.5, -0.4, -0.3, -0.55]) == 3  # -0.55 beats -1.0, -0.8, -0.6


def test_no_penalty_leaves_greedy_alone() -> None:
    s = Sampler(GenerationParams(), context_ids=[0])
    assert [pick(s) for _ in range(2)] == [0, 0]


NICE = [
    {"role": "system", "content": "You are Pippa. You call him 아빠."},
    {"role": "user", "content": "Say something nice to me."},
]


async def test_greedy_reply_stops_repeating_its_sentence(engine: MLXEngine) -> None:
    # greedy, this prompt loops: "I'm so glad you're here. I'm so glad you're here. ..."
    plain = await engine.complete(NICE, GenerationParams(max_tokens=30))
    assert plain.count("glad you're here") >= 2
    for params in (
        GenerationParams(max_tokens=30, repetition_penalty=1.3),
        GenerationParams(max_tokens=30, frequency_penalty=1.0),
    ):
        text = await engine.complete(NICE, params)
        assert text != plain and text.count("glad you're here") <= 1, (params, text)


async def test_last_reply_is_not_said_again(engine: MLXEngine) -> None:
    last = await engine.complete(NICE, GenerationParams(max_tokens=30))
    params = GenerationParams(max_tokens=30, repetition_penalty=1.3, penalty_context=(last,))
    again = await engine.complete(NICE, params)
    assert again.split(".")[0] != last.split(".")[0]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (GenerationParams(frequency_penalty=2.5), "frequency_penalty"),
        (GenerationParams(presence_penalty=-3), "presence_penalty"),
        (GenerationParams(repetition_penalty=0), "repetition_penalty"),
    ],
)
async def test_out_of_range_penalties_are_named(
    engine: MLXEngine, params: GenerationParams, field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        await engine.complete(NICE, params)
