"""Answer benchmark (issue 12): does the model's reply USE what memory put in its context?

Everything goes through the HTTP API of a real `memento serve` (auth on, fresh data dir):

1. LoCoMo QA. A fixed, seeded subset of questions of categories 1-4, stratified by category
   (`--questions`, default 300, drawn from the first `--conversations` conversations). Each
   conversation is imported once per strategy into a session of persona "assistant" at
   `budget_tokens` 1,024 (speaker A = user, "Speaker: text", created_at from the sittings). Per
   question the session's context is dry-run (POST .../context: what a turn would get) and the
   reply generated from exactly those messages (POST /v1/chat/completions, greedy, 40 new
   tokens, the stops a turn of that persona gets: app/service/generation.py role_stops).
   Baselines on the same model and budget: no memory (persona + question), `token_buffer`, and
   the oracle (persona + only the question's gold evidence turns, rendered as recalled turns
   are).
2. Planted facts: benchmarks/planted_facts.py's four chats of a dad with Pippa imported as one
   session per strategy (English, Korean), each fact asked in it at 1,024 tokens; the oracle
   context holds only the turn that told the fact.

Scores (benchmarks/answer_scoring.py): LoCoMo token F1 as in the paper (no stemming), "the gold
answer appears in the reply", the oracle ratio (F1 / the oracle's F1), the leak rate (a reply
holding a role prefix: `user:`, `assistant:`, the persona's user name) and verbatim repeats
(a reply equal to the previous reply of the same configuration), loops (a reply that says a
sentence twice or a 3-word run three times). Replies are generated with the persona's
repetition penalties (personas/*.yaml), as its turns are.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answers.py [--questions 300]
        [--conversations 10] [--parts locomo,planted] [--out replies.jsonl]
    [--model PATH_OR_ID | --llm-url URL]  (default: MEMENTO_LLM_URL from the environment, if set)
    [--parallel N]  (questions asked at once; the engine batches their replies' decode steps)
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.llm.stops import cut, label_stops  # noqa: E402
from app.personas.loader import load_persona_file  # noqa: E402
from app.service.generation import context_speakers, role_stops  # noqa: E402
from benchmarks import answer_scoring as sc  # noqa: E402
from benchmarks.answer_tables import Reply, locomo_table, planted_table  # noqa: E402
from benchmarks.cross_session import (  # noqa: E402
    Api,
    Server,
    locomo,
    locomo_message,
    machine,
    revision,
    shown_ids,
    uptime,
    wait_indexed,
)
from benchmarks.planted_facts import ENGLISH, KOREAN, SESSION_STARTS, planted_sessions  # noqa: E402
from memory.types import ContextMessage, ContextPart, StoredMessage  # noqa: E402

BUDGET = 1024
MAX_NEW = 40
SEED = 12
# label -> session memory; the rows a strategy is judged by, then the baselines
STRATEGIES: dict[str, dict[str, Any]] = {
    "hybrid": {"strategy": "hybrid", "summarizer": "extractive", "summary_max_chunks": None},
    "vector": {"strategy": "vector"},
    "summary_buffer": {
        "strategy": "summary_buffer",
        "summarizer": "extractive",
        "summary_max_chunks": None,
    },
    "token_buffer": {"strategy": "token_buffer"},
}
NO_MEMORY, ORACLE = "no memory", "oracle"
ROWS = [*STRATEGIES, NO_MEMORY, ORACLE]
RECALLING = ("hybrid", "vector")


class ModelServer(Server):
    """memento serve on the model the benchmark was asked to measure."""

    def __init__(self, data: Path, model: str | None, llm_url: str | None) -> None:
        super().__init__(data)
        self.model, self.llm_url = model, llm_url

    def env(self) -> dict[str, str]:
        env = super().env()
        if self.model:
            env["MEMENTO_MODEL"] = self.model
        if self.llm_url:
            env["MEMENTO_LLM_URL"] = self.llm_url
        return env


@dataclass
class Asker:
    """Generation from a Context, the way a turn of `persona` generates. `api` owns the sessions
    (dry runs); replies are generated as other users, one per (thread, row): each user has its
    own stateless prompt cache, so a row's consecutive prompts reuse their common prefix
    (token_buffer's differ only in the question) instead of evicting each other's."""

    api: Api
    persona: str
    errors: list[str]
    out: list[Reply] = field(default_factory=list)
    _generators: dict[tuple[int, str], Api] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        p = load_persona_file(ROOT / "personas" / f"{self.persona}.yaml")
        self.persona_file = p
        self.stops = list(role_stops(p))  # type: ignore[arg-type]
        self.user_name = p.user_name
        # the persona's repetition penalties, as a turn of hers gets them (0 / 1: off)
        g = p.generation
        self.penalties = {
            k: getattr(g, k, d)
            for k, d in (
                ("frequency_penalty", 0.0),
                ("presence_penalty", 0.0),
                ("repetition_penalty", 1.0),
            )
            if getattr(g, k, d) != d
        }
        self.leak = sc.leak_pattern([p.user_name])

    def generator(self, row: str) -> Api:
        key = (threading.get_ident(), row)
        with self._lock:
            api = self._generators.get(key)
            if api is None:
                user = f"{self.api.user}-gen-{len(self._generators)}"
                api = self._generators[key] = Api(self.api.server, user, self.errors)
        return api

    def generate(self, row: str, question: str, messages: list[dict[str, str]]) -> Reply:
        """The reply of `row` (not yet in `out`: the caller adds replies in question order,
        which the repeat count reads)."""
        body = {
            "messages": messages,
            "temperature": 0,
            "max_tokens": MAX_NEW,
            "stop": self.stops,
            **self.penalties,
        }
        r = self.generator(row).client.post("/v1/chat/completions", json=body)
        if r.status_code != 200:
            self.errors.append(f"{row}: {r.status_code} {r.text[:300]}")
            reply = Reply(row, question, "", 0)
        else:
            d = r.json()
            # what a turn stores of it: an opening speaker label dropped, cut where the speakers'
            # labels stop a turn (app/service/chat.py; OpenAI's four stops cannot carry them all)
            speakers = context_speakers(self.persona_file, messages)
            text = cut(
                d["choices"][0]["message"]["content"],
                (*self.stops, *label_stops(speakers)),
                speakers,
            )
            reply = Reply(row, question, text, d["usage"]["prompt_tokens"])
        reply.score["leak"] = sc.leaks(reply.reply, self.leak)
        reply.score["loops"] = sc.loops(reply.reply)
        return reply


def fixed_messages(ctx: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(persona + pinned facts, the new message) of a dry-run Context: every row shares them."""
    head = [
        {"role": m["role"], "content": m["content"]}
        for p in ctx["parts"]
        if p["kind"] in ("persona", "pinned")
        for m in p["messages"]
    ]
    new = [
        {"role": m["role"], "content": m["content"]}
        for p in ctx["parts"]
        if p["kind"] == "new"
        for m in p["messages"]
    ]
    return head, new


def context_messages(ctx: dict[str, Any]) -> list[dict[str, str]]:
    """What the engine sees of a Context (memory.types.Context.to_messages)."""
    return [
        m
        for p in ctx["parts"]
        for m in ContextPart.model_validate(p).to_messages()
        if p["kind"] != "relationship" or m["content"]
    ]


def oracle_part(turns: Sequence[StoredMessage], session_id: str) -> list[dict[str, str]]:
    """Only the gold turns, rendered exactly as recalled turns are."""
    from memory.strategies._parts import render_recalled

    msgs: list[ContextMessage] = render_recalled(list(turns), session_id)
    return ContextPart(kind="recalled", tokens=0, messages=msgs).to_messages()


def stored(mid: int, msg: dict[str, Any]) -> StoredMessage:
    return StoredMessage(
        id=mid,
        role=msg["role"],
        content=msg["content"],
        tokens=0,
        created_at=datetime.fromisoformat(msg["created_at"]),
    )


def create_import(api: Api, persona: str, memory: dict[str, Any], msgs: list[dict[str, Any]]):  # noqa: ANN201
    sid = api.create(persona, budget_tokens=BUDGET, **memory)
    return sid, api.history(sid, msgs)


def settle(api: Api, jobs: list[tuple[str, str, list[int]]]) -> None:
    """Recall sessions indexed, summaries written: imports observe in the background."""
    recalling = [j for j in jobs if STRATEGIES.get(j[0], {}).get("strategy") in RECALLING]
    wait_indexed([(api, sid, ids) for _, sid, ids in recalling])
    for label, sid, _ in jobs:
        if "summarizer" not in STRATEGIES.get(label, {}):
            continue
        last = None
        for _ in range(600):
            mem = api.client.get(f"/v1/sessions/{sid}/memory", params={"limit": 1}).json()
            now = (mem["summary"], len(mem["summary_covers"]))
            if now == last and now[0]:
                break
            last = now
            time.sleep(2.0)


# -- 1. LoCoMo ------------------------------------------------------------------------------
def pick(convs: Sequence[Any], n: int) -> list[tuple[Any, Any]]:
    items = [(c, q) for c in convs for q in c.questions if q.category in (1, 2, 3, 4)]
    strata: dict[int, list[int]] = {}
    for i, (_, q) in enumerate(items):
        strata.setdefault(q.category, []).append(i)
    return sc.stratified(items, strata, n, SEED)


def run_locomo(
    server: Server, convs: Sequence[Any], n: int, errors: list[str], parallel: int
) -> Asker:
    chosen = pick(convs, n)
    api = Api(server, "answers-locomo", errors)
    asker = Asker(api, "assistant", errors)
    by_conv: dict[str, list[Any]] = {}
    for c, q in chosen:
        by_conv.setdefault(c.name, []).append(q)
    for conv in convs:
        qs = by_conv.get(conv.name)
        if not qs:
            continue
        msgs = [locomo_message(t, conv.speaker_a) for t in conv.turns]
        # stored turns read "Caroline: ...": a reply opening with a speaker's name is a leak too
        asker.leak = sc.leak_pattern([asker.user_name, conv.speaker_a, conv.speaker_b])
        # each conversation is one session and recalls only from itself: with the default
        # scope (the user's sessions of the persona) a strategy's session would also recall the
        # copies imported for the other rows and the other conversations
        jobs = [
            (label, *create_import(api, "assistant", {**mem, "scope": "session"}, msgs))
            for label, mem in STRATEGIES.items()
        ]
        settle(api, jobs)
        sids = {label: sid for label, sid, _ in jobs}
        ids = dict(zip((t.dia for t in conv.turns), jobs[0][2], strict=True))
        by_dia = {t.dia: stored(ids[t.dia], m) for t, m in zip(conv.turns, msgs, strict=True)}
        # every row's session has its own ids: its shown turns are counted as the first's
        as_first = {label: dict(zip(ids_l, jobs[0][2], strict=True)) for label, _, ids_l in jobs}
        t0 = time.perf_counter()
        with ThreadPoolExecutor(parallel) as pool:
            asks = [pool.submit(ask_locomo, asker, sids, q, by_dia, as_first) for q in qs]
            for ask in asks:  # in question order: the repeat count reads it
                asker.out.extend(ask.result())
        print(f"[locomo] {conv.name}: {len(qs)} questions x {len(ROWS)} in "
              f"{time.perf_counter() - t0:.0f}s", flush=True)  # fmt: skip
    return asker


def ask_locomo(
    asker: Asker,
    sids: dict[str, str],
    q: Any,
    by_dia: dict[str, StoredMessage],
    as_first: dict[str, dict[int, int]],
) -> list[Reply]:
    out: list[Reply] = []
    head = new = None
    gold = [by_dia[d] for d in q.evidence]
    for label, sid in sids.items():
        ctx, _ = asker.api.context(sid, q.text)
        if ctx is None:
            continue
        head, new = fixed_messages(ctx)
        if label in ROWS:
            r = score(asker.generate(label, q.text, context_messages(ctx)), q)
            shown = {as_first[label].get(i, i) for i in shown_ids(ctx, None)}
            out.append(with_evidence(r, gold, shown))
    if head is None or new is None:
        return out
    if NO_MEMORY in ROWS:
        r = score(asker.generate(NO_MEMORY, q.text, [*head, *new]), q)
        out.append(with_evidence(r, gold, set()))
    if ORACLE in ROWS:
        oracle = [*head, *oracle_part(gold, next(iter(sids.values()))), *new]
        r = score(asker.generate(ORACLE, q.text, oracle), q)
        out.append(with_evidence(r, gold, {m.id for m in gold}))
    return out


def with_evidence(r: Reply, gold: Sequence[StoredMessage], shown: set[int]) -> Reply:
    """The share of the question's gold turns the context showed: separates what recall missed
    from what the model did not use (`shown`, the ids, lets two commits' contexts be compared)."""
    ids = {m.id for m in gold}
    r.score["evidence"] = len(ids & shown) / len(ids) if ids else float("nan")
    r.score["shown"] = sorted(shown)
    return r


def score(r: Reply, q: Any) -> Reply:
    r.score.update(
        category=q.category,
        f1=sc.answer_f1(r.reply, q.answer, q.category),
        contains=sc.contains_answer(r.reply, q.answer, q.category),
        gold=q.answer,
    )
    return r


# -- 2. planted facts -------------------------------------------------------------------------
def run_planted(server: Server, errors: list[str]) -> dict[str, Asker]:
    out = {}
    for p in (ENGLISH, KOREAN):
        api = Api(server, f"answers-planted-{p.language.lower()}", errors)
        asker = Asker(api, "pippa", errors)
        msgs, told = [], {}
        for turns, start in zip(planted_sessions(p), SESSION_STARTS, strict=True):
            for i, (role, content, fact) in enumerate(turns):
                if fact is not None:
                    told[fact] = len(msgs)
                at = start + timedelta(minutes=i)
                msgs.append({"role": role, "content": content, "created_at": at.isoformat()})
        memory = {k: {**v, "scope": "session"} for k, v in STRATEGIES.items()}
        jobs = [(label, *create_import(api, "pippa", mem, msgs)) for label, mem in memory.items()]
        settle(api, jobs)
        sids = {label: sid for label, sid, _ in jobs}
        ids = jobs[0][2]
        for i, fact in enumerate(p.facts):
            for question in (fact.question, *fact.more):
                ask_fact(asker, sids, question, fact.answer, stored(ids[told[i]], msgs[told[i]]))
        out[p.language] = asker
        print(f"[planted] {p.language}: asked", flush=True)
    return out


def ask_fact(
    asker: Asker, sids: dict[str, str], question: str, answer: str, gold: StoredMessage
) -> None:
    """One question about a planted fact, to every row: each strategy's session, no memory,
    and the oracle (the telling turn alone as memory)."""
    api, head, new = asker.api, None, None
    for label, sid in sids.items():
        ctx, _ = api.context(sid, question)
        if ctx is None:
            continue
        head, new = fixed_messages(ctx)
        if label in ROWS:
            asker.out.append(named(asker.generate(label, question, context_messages(ctx)), answer))
    if head is None or new is None:
        return
    if NO_MEMORY in ROWS:
        asker.out.append(named(asker.generate(NO_MEMORY, question, [*head, *new]), answer))
    if ORACLE in ROWS:
        msgs_o = [*head, *oracle_part([gold], next(iter(sids.values()))), *new]
        asker.out.append(named(asker.generate(ORACLE, question, msgs_o), answer))


def named(r: Reply, answer: str) -> Reply:
    r.score["named"] = answer.lower() in r.reply.lower()
    return r


# -- main ---------------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--questions", type=int, default=300, help="LoCoMo subset size (>= 300 by the issue)"
    )
    ap.add_argument("--conversations", type=int, default=10, help="draw from the first N")
    ap.add_argument("--parts", default="locomo,planted")
    ap.add_argument("--model", default=None, help="MEMENTO_MODEL for the server")
    ap.add_argument("--llm-url", default=os.environ.get("MEMENTO_LLM_URL"))
    ap.add_argument("--out", default=None, help="write every reply as JSON lines here")
    ap.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated of {ROWS}")
    ap.add_argument(
        "--parallel", type=int, default=4, help="LoCoMo questions asked at once (default 4)"
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help='one more row: a session memory, e.g. \'hybrid r256={"strategy": "hybrid", '
        '"recall_max_tokens": 256}\' (repeatable; the rows asked are --rows plus these)',
    )
    args = ap.parse_args()
    for spec in args.variant:
        label, _, memory = spec.partition("=")
        STRATEGIES[label] = json.loads(memory)
        ROWS.insert(len(ROWS) - 2, label)  # before the baselines
        args.rows += f",{label}"
    only = [r.strip() for r in args.rows.split(",")]
    for row in list(ROWS):  # a smaller run: fewer strategies imported, fewer rows asked
        if row not in only:
            ROWS.remove(row)
            STRATEGIES.pop(row, None)
    parts = {p.strip() for p in args.parts.split(",")}
    started, errors = time.perf_counter(), []
    print(f"start: {uptime()}; code at {revision()}; {machine()}", flush=True)
    mem = locomo()
    convs = mem.load_locomo(mem.DEFAULT_DATA)[: args.conversations]
    sections, askers = [], []
    with tempfile.TemporaryDirectory(prefix="memento-answers-") as tmp:
        server = ModelServer(Path(tmp), args.model, args.llm_url)
        print(f"server up in {server.start():.0f}s", flush=True)
        try:
            if "locomo" in parts:
                a = run_locomo(server, convs, args.questions, errors, args.parallel)
                askers.append(a)
                n_q = len({r.question for r in a.out})
                title = f"LoCoMo, {n_q} questions (categories 1-4, seed {SEED}), budget {BUDGET}"
                sections.append(f"{title}:\n\n" + locomo_table(a.out, ROWS, ORACLE))
            if "planted" in parts:
                pa = run_planted(server, errors)
                askers.extend(pa.values())
                sections.append(
                    f"Planted facts (8 per language, each asked 3 ways), budget {BUDGET}:\n\n"
                    + planted_table({k: v.out for k, v in pa.items()}, ROWS)
                )
        finally:
            server.stop()
            problems = server.problems()
    if args.out:
        with open(args.out, "w") as f:
            for a in askers:
                for r in a.out:
                    f.write(json.dumps(r.__dict__, ensure_ascii=False, default=str) + "\n")
    print("\n\n".join(sections))
    cmd = " ".join(
        ["HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/answers.py", *map(shlex.quote, sys.argv[1:])]
    )
    minutes = (time.perf_counter() - started) / 60
    print(f"\nCommand: `{cmd}`\nRun time {minutes:.1f} min; code at {revision()}")
    print(f"Failed requests {len(errors)}; server log lines {len(problems)}")
    for e in [*errors[:5], *problems[:10]]:
        print("   ", e)
    print(f"End: {uptime()}")


if __name__ == "__main__":
    main()
