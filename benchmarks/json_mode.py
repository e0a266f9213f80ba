"""JSON mode and JSON Schema on the embedded model: how often the reply is valid, and what the
constrained decoder costs per token (issue 17).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/json_mode.py            # 24 prompts x 3 modes
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/json_mode.py --quick    # 6 prompts

For every prompt, three greedy generations through `MLXEngine.stream` as the service runs it
(max_tokens 128): free text (the baseline), `json_object` and a `json_schema` (bounded strings
and numbers, three required properties). Valid means `json.loads` parses the reply (and, for the
schema, `jsonschema.validate` accepts it). Cost per token is decode time only (first token to
last, so the prompt's prefill is left out), summed over the prompts and divided by the tokens:
the constrained path gives up the overlap of the next step with the current token's read and
adds llguidance's mask. The mask alone is timed separately (`JsonConstraint.allowed`).
Numbers depend on a shared 2-core machine: compare the modes of one run, not runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jsonschema  # noqa: E402

from app.config import Settings  # noqa: E402
from app.llm.constrained import JSON_OBJECT_SCHEMA  # noqa: E402
from app.llm.factory import load_engine  # noqa: E402
from app.llm.types import GenerationParams  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

SUBJECTS = [
    "Paris",
    "a cat",
    "the Moon",
    "a bicycle",
    "Tokyo",
    "an apple",
    "the Pacific Ocean",
    "a guitar",
    "Mount Everest",
    "a teacher",
    "coffee",
    "the Eiffel Tower",
    "a dog named Max",
    "Seoul",
    "a laptop",
    "the Amazon river",
    "a pizza",
    "Albert Einstein",
    "a rainy day",
    "the number seven",
    "a library",
    "a football match",
    "London",
    "a birthday party",
]

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "kind": {"type": "string", "enum": ["place", "thing", "person", "animal", "event"]},
        "rating": {"type": "integer", "minimum": 1, "maximum": 10},
    },
    "required": ["name", "kind", "rating"],
    "additionalProperties": False,
}

MAX_TOKENS = 128


async def generate(engine: Any, prompt: str, schema: str | None) -> tuple[str, int, float, str]:
    """(text, completion tokens, decode seconds, finish reason)."""
    messages = [{"role": "user", "content": prompt}]
    params = GenerationParams(max_tokens=MAX_TOKENS, json_schema=schema)
    parts: list[str] = []
    first = last = 0.0
    tokens, finish = 0, ""
    async for chunk in engine.stream(messages, params):
        now = time.perf_counter()
        first = first or now
        last = now
        parts.append(chunk.text)
        if chunk.finish_reason is not None:
            tokens, finish = chunk.usage.completion_tokens, chunk.finish_reason
    return "".join(parts), tokens, last - first, finish


def valid(text: str, schema: dict[str, Any] | None) -> bool:
    try:
        value = json.loads(text)
        if schema is None:
            return isinstance(value, dict)
        jsonschema.validate(value, schema)
        return True
    except (ValueError, jsonschema.ValidationError):
        return False


def mask_cost(engine: Any, samples: list[str]) -> float:
    """Median microseconds of one `allowed()` call, replaying replies' tokens."""
    times = []
    for text in samples:
        constraint = engine.grammars.matcher(JSON_OBJECT_SCHEMA)
        for token in engine.tokenizer.encode(text):
            start = time.perf_counter()
            constraint.allowed(engine.tokenizer.vocab_size)
            times.append(time.perf_counter() - start)
            constraint.consume(token)
    return statistics.median(times) * 1e6


async def main(quick: bool) -> None:
    worker = MLXWorker(name="bench-json")
    engine = load_engine(Settings(model=None, context_window=None), worker)
    subjects = SUBJECTS[:6] if quick else SUBJECTS
    modes: dict[str, tuple[str | None, dict[str, Any] | None]] = {
        "text": (None, None),
        "json_object": (JSON_OBJECT_SCHEMA, None),
        "json_schema": (json.dumps(SCHEMA), SCHEMA),
    }
    stats = {m: {"valid": 0, "tokens": 0, "seconds": 0.0, "length": 0} for m in modes}
    samples: list[str] = []
    await generate(engine, "Hello", JSON_OBJECT_SCHEMA)  # builds the grammar tokenizer once
    for subject in subjects:
        for mode, (schema, check) in modes.items():
            prompt = f"Describe {subject} as a JSON object." if schema else f"Describe {subject}."
            text, tokens, seconds, finish = await generate(engine, prompt, schema)
            s = stats[mode]
            s["tokens"] += tokens
            s["seconds"] += seconds
            s["length"] += finish == "length"
            if mode != "text":
                ok = valid(text, check)
                s["valid"] += ok
                if mode == "json_object":
                    samples.append(text)
                if not ok:
                    print(f"INVALID {mode} {subject!r}: {text!r}")
    n = len(subjects)
    base = stats["text"]["seconds"] / max(1, stats["text"]["tokens"])
    print(f"{n} prompts, greedy, max_tokens {MAX_TOKENS}")
    print(f"{'mode':12} {'valid':>9} {'cut':>5} {'tokens':>7} {'ms/token':>9} {'vs text':>8}")
    for mode, s in stats.items():
        per = s["seconds"] / max(1, s["tokens"])
        shown = "-" if mode == "text" else f"{s['valid']}/{n}"
        print(
            f"{mode:12} {shown:>9} {s['length']:>5} {s['tokens']:>7} {per * 1e3:>9.2f} "
            f"{per / base:>7.2f}x"
        )
    print(f"mask (JsonConstraint.allowed), median: {mask_cost(engine, samples):.0f} us/token")
    worker.shutdown()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    asyncio.run(main(parser.parse_args().quick))
