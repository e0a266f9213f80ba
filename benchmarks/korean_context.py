"""Korean planted facts as a user of Pippa meets them (issue 11's targets): is the turn that told
the fact in the Context a turn would get?

Everything goes through the HTTP API of a real `memento serve`: benchmarks/korean_facts.py's
conversations (240 casual 아빠/Pippa turns each, 8 facts planted in the first third), each
imported into sessions of persona `pippa` (one user per conversation, created_at from the
generator's dates), one per strategy and `budget_tokens`; every question of the conversation
dry-run in its session (`POST .../context`). Evidence recall = the share of questions whose
telling turn the Context shows verbatim (any part). The English twin (same draws, same evidence)
runs beside it, as the issue asks ("at least as good as the English twin").

`--live N` asks the first N questions of each conversation as real turns instead, one after
another in its session (a reply of a few tokens each, its stored Context read back): a dry run
always sees a session's first turn, a live chat also the recalled turns kept from the turns
before (issue 13), which take most of the recall room.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/korean_context.py [--conversations 12]
        [--budgets 1024,2048] [--strategies hybrid,vector] [--langs ko,en] [--seed 11]
        [--live N]
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks.cross_session import (  # noqa: E402
    Api,
    Server,
    machine,
    revision,
    shown_ids,
    uptime,
    wait_indexed,
)
from benchmarks.korean_facts import Conversation, Question, generate  # noqa: E402

# hybrid's summary written without the model: the LLM summarizer would work off 240 imported
# turns per session in the background for the whole run (and keeps no facts: README, Answers)
MEMORY: dict[str, dict[str, Any]] = {
    "hybrid": {"strategy": "hybrid", "summarizer": "extractive", "summary_max_chunks": None},
    "vector": {"strategy": "vector"},
}

LIVE_REPLY_TOKENS = 4  # the reply is not scored: what its Context shows is


def live_order(questions: Sequence[Question]) -> list[Question]:
    """One question per fact in turn, round after round: a live chat moves from fact to fact
    (the dry-run order asks each fact's questions together)."""
    by_fact: dict[tuple[int, ...], list[Question]] = defaultdict(list)
    for q in questions:
        by_fact[q.evidence].append(q)
    rounds = zip_longest(*by_fact.values())
    return [q for r in rounds for q in r if q is not None]


def import_conversation(
    api: Api, conv: Conversation, strategies: list[str], budgets: list[int]
) -> dict[tuple[str, int], tuple[str, list[int]]]:
    """(strategy, budget) -> (session id, the imported message ids in order)."""
    msgs = [
        {"role": m.role, "content": m.text, "created_at": m.at.isoformat()} for m in conv.messages
    ]
    out = {}
    for s in strategies:
        for b in budgets:
            sid = api.create("pippa", **MEMORY[s], budget_tokens=b, scope="session")
            out[(s, b)] = (sid, api.history(sid, msgs))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--conversations", type=int, default=12)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--budgets", default="1024,2048")
    ap.add_argument("--strategies", default="hybrid,vector")
    ap.add_argument("--langs", default="ko,en")
    ap.add_argument("--live", type=int, default=0, help="ask the first N questions as turns")
    args = ap.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    strategies = args.strategies.split(",")
    langs = args.langs.split(",")
    started, errors = time.perf_counter(), []
    print(f"start: {uptime()}; code at {revision()}; {machine()}", flush=True)
    # (lang, strategy, budget, kind) -> hits
    hits: dict[tuple[str, str, int, str], list[bool]] = defaultdict(list)
    tokens: dict[str, list[int]] = defaultdict(list)
    with tempfile.TemporaryDirectory(prefix="memento-korean-") as tmp:
        server = Server(Path(tmp))
        print(f"server up in {server.start():.0f}s", flush=True)
        try:
            for lang in langs:
                for conv in generate(lang, args.conversations, args.seed):
                    api = Api(server, f"dad-{conv.name}", errors)
                    sessions = import_conversation(api, conv, strategies, budgets)
                    wait_indexed([(api, sid, ids) for sid, ids in sessions.values()])
                    asked = live_order(conv.questions)[: args.live] if args.live else conv.questions
                    for (s, b), (sid, ids) in sessions.items():
                        for q in asked:
                            if args.live:
                                ctx = api.turn_context(sid, q.text, LIVE_REPLY_TOKENS)
                            else:
                                ctx, _ = api.context(sid, q.text)
                            if ctx is None:
                                continue
                            shown = shown_ids(ctx, None)
                            hits[(lang, s, b, q.kind)].append(
                                all(ids[e] in shown for e in q.evidence)
                            )
                            tokens[lang].append(ctx["total_tokens"])
                    print(f"[{lang}] {conv.name}: {len(asked)} questions", flush=True)
        finally:
            server.stop()
            problems = server.problems()
    kinds = ("template", "paraphrase")
    cols = [(lang, kind) for lang in langs for kind in kinds]
    print("\n| strategy | budget_tokens | " + " | ".join(f"{lg} {kd}" for lg, kd in cols) + " |")
    print("|---" * (len(cols) + 2) + "|")
    for s in strategies:
        for b in budgets:
            row = []
            for lang, kind in cols:
                h = hits[(lang, s, b, kind)]
                row.append(f"{sum(h) / len(h):.3f} ({sum(h)}/{len(h)})" if h else "-")
            print(f"| `{s}` | {b:,} | " + " | ".join(row) + " |")
    for lang in langs:
        t = sorted(tokens[lang])
        if t:
            print(f"{lang}: Context tokens p50 {t[len(t) // 2]}")
    cmd = " ".join(
        [
            "HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/korean_context.py",
            *map(shlex.quote, sys.argv[1:]),
        ]
    )
    print(f"\nCommand: `{cmd}`\nRun time {(time.perf_counter() - started) / 60:.1f} min; "
          f"code at {revision()}; end: {uptime()}")  # fmt: skip
    for e in errors[:10]:
        print("error:", e)
    if problems:
        print("server problems:", problems)


if __name__ == "__main__":
    main()
