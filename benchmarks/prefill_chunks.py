"""How long one prefill chunk takes, and the throughput, by chunk size, at the offset a
recalling strategy's prompt reaches (issue 13): the chunk is what a turn waits for when it
arrives during background work (app/llm/mlx_engine.py SHARED_STEP). In process, on the MLX
worker thread, the embedded model, a fresh KV cache filled to --offset first.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/prefill_chunks.py [--offset 2400] [--tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.llm.factory import load_engine  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402


def prefill(model: Any, offset: int, tokens: int, step: int) -> tuple[float, float]:
    """(seconds for `tokens` tokens in chunks of `step` after `offset`, longest chunk)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    ids = [1000 + i % 20000 for i in range(offset + tokens)]
    for i in range(0, offset, 512):
        model(mx.array(ids[i : min(i + 512, offset)])[None], cache=cache)
        mx.eval([c.state for c in cache])
    longest, start = 0.0, time.perf_counter()
    for i in range(offset, offset + tokens, step):
        t = time.perf_counter()
        model(mx.array(ids[i : i + step])[None], cache=cache)
        mx.eval([c.state for c in cache])
        longest = max(longest, time.perf_counter() - t)
    return time.perf_counter() - start, longest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--offset", type=int, default=2400)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--steps", default="128,64,32", help="chunk sizes, each measured twice")
    args = ap.parse_args()
    worker = MLXWorker("bench")
    engine: Any = load_engine(Settings(), worker)
    steps = [int(s) for s in args.steps.split(",")] * 2  # interleaved: load hits them alike
    print(f"| chunk | {args.tokens} tokens after {args.offset:,} | tokens/s | longest chunk |")
    print("|---|---|---|---|")
    try:
        for step in steps:
            total, longest = worker.call(prefill, engine.model, args.offset, args.tokens, step)
            print(f"| {step} | {total:.2f} s | {args.tokens / total:.0f} | {longest:.2f} s |")
    finally:
        worker.shutdown()


if __name__ == "__main__":
    main()
