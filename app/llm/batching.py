"""Answers the decode steps of one worker round together (see app/llm/worker.py `Step`).

Sequences whose caches are plain `KVCache`s step as one `BatchDecoder` call when there are at
least `MIN_BATCH` of them (one sequence is faster as a GEMV: sgemm packs the weights first);
any other steps singly through the model. If the batched call fails, every cache's offset is put
back and the sequences step one by one, so only a sequence whose own step fails gets the error.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from app.blas import load_blas

load_blas()

import mlx.core as mx  # noqa: E402
from mlx_lm.models.cache import KVCache  # noqa: E402

from app.llm.cpu_batch import BatchDecoder  # noqa: E402
from app.llm.cpu_fast import CPUFastModel  # noqa: E402

log = logging.getLogger(__name__)

# Measured on 2 cores, SmolLM2-135M (benchmarks/throughput.py): two sequences in one sgemm
# step already beat two sgemv steps; one alone does not.
MIN_BATCH = 2

DecodePayload = tuple[int, list[Any]]  # the token to feed, the sequence's cache


class DecodeBatcher:
    def __init__(self, model: CPUFastModel) -> None:
        self.model = model

    def run_steps(self, payloads: Sequence[DecodePayload]) -> list[Any]:
        results: list[Any] = [None] * len(payloads)
        decoder = self.model._np_decoder  # None once disabled for a comparison
        rows = [i for i, (_, cache) in enumerate(payloads) if _plain(cache)]
        if decoder is not None and len(rows) >= MIN_BATCH:
            caches = [payloads[i][1] for i in rows]
            offsets = [[c.offset for c in cache] for cache in caches]
            try:
                logits = BatchDecoder(decoder).step([payloads[i][0] for i in rows], caches)
            except Exception:
                log.exception("a batched decode step failed; stepping its sequences one by one")
                for cache, before in zip(caches, offsets, strict=True):
                    for c, offset in zip(cache, before, strict=True):
                        c.offset = offset
            else:
                for j, i in enumerate(rows):
                    results[i] = mx.array(logits[j : j + 1])
        for i, (token, cache) in enumerate(payloads):
            if results[i] is None:
                try:
                    results[i] = self.model(mx.array([[token]]), cache=cache)[:, -1, :]
                except Exception as exc:  # noqa: BLE001 - handed to that sequence only
                    results[i] = exc
        return results


def _plain(cache: list[Any]) -> bool:
    return all(type(c) is KVCache for c in cache)
