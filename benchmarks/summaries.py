"""Planted-fact survival per summarizer (issue 12): which summarizer keeps what the user told?

The four planted chats of benchmarks/planted_facts.py (English and Korean, 8 facts each) are
folded into a running summary the way a summarizing strategy does it on import
(memory/summarizer.py update_summary: chunks of `summary_chunk_tokens`, folded under the cap),
once per summarizer, at the caps of `hybrid` (128 tokens) and `summary_buffer` (256). A fact
survives if its answer word is in the final summary. In process on the embedded model (no
server: the summary is all that is measured).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/summaries.py [--model PATH_OR_ID]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from app.config import Settings  # noqa: E402
from app.llm.factory import load_engine  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402
from benchmarks.planted_facts import (  # noqa: E402
    ENGLISH,
    KOREAN,
    SESSION_STARTS,
    Planted,
    planted_sessions,
)
from memory.summarizer import ExtractiveSummarizer, LLMSummarizer, update_summary  # noqa: E402
from memory.types import MemoryState, StoredMessage  # noqa: E402

CAPS = {"hybrid": 128, "summary_buffer": 256}
CHUNK_TOKENS = 768  # SummaryParams.summary_chunk_tokens' default


def history(p: Planted, engine: object) -> list[StoredMessage]:
    out: list[StoredMessage] = []
    for turns, start in zip(planted_sessions(p), SESSION_STARTS, strict=True):
        for i, (role, content, _) in enumerate(turns):
            tokens = engine.count_message({"role": role, "content": content})  # type: ignore[attr-defined]
            at = start + timedelta(minutes=i)
            m = StoredMessage(
                id=len(out) + 1,
                role=role,  # type: ignore[arg-type]
                content=content,
                tokens=tokens,
                created_at=at,
            )
            out.append(m)
    return out


def survived(p: Planted, summary: str) -> int:
    return sum(f.answer.lower() in summary.lower() for f in p.facts)


async def run(model: str | None, which: list[str]) -> None:
    worker = MLXWorker()
    engine = load_engine(Settings(model=model, context_window=None), worker)
    every = {"extractive": ExtractiveSummarizer(), "llm": LLMSummarizer(engine)}
    summarizers = {k: v for k, v in every.items() if k in which}
    rows = [
        "| summarizer | cap (tokens) | English facts kept | Korean | time |",
        "|---|---|---|---|---|",
    ]
    for name, summarizer in summarizers.items():
        for label, cap in CAPS.items():
            cells, t0 = [], time.perf_counter()
            for p in (ENGLISH, KOREAN):
                h = history(p, engine)
                state = await update_summary(
                    summarizer, engine, MemoryState(), h, cap, CHUNK_TOKENS, None
                )
                cells.append(f"{survived(p, state.summary)}/{len(p.facts)}")
                print(f"[{name} @ {cap}] {p.language}: {state.summary[:300]!r}", flush=True)
            secs = time.perf_counter() - t0
            rows.append(f"| {name} | {cap} (`{label}`) | {cells[0]} | {cells[1]} | {secs:.0f} s |")
    print("\n".join(rows))
    await engine.aclose()
    worker.shutdown()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=None)
    ap.add_argument("--summarizers", default="extractive,llm", help="comma-separated")
    args = ap.parse_args()
    asyncio.run(run(args.model, args.summarizers.split(",")))


if __name__ == "__main__":
    main()
