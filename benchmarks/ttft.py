"""Time to the first word, turn by turn, per strategy (issue 13), as a user of `memento serve`
waits for it: streamed POST /v1/sessions/{id}/messages, the time to the first `delta` event,
and the prompt and cached tokens the `done` event reports.

Two scenes per strategy, each in its own session of the strategy's own user (persona
"assistant", the strategy's defaults, greedy, 16 new tokens a reply):

1. After an import: 480 messages of a LoCoMo conversation imported through POST .../history
   (waited on until they are embedded, whatever the strategy: a later session may recall
   them), then questions about it asked in a row, the first typed as every other message is.
2. A live chat: a new session and N turns, the user's lines taken from another LoCoMo
   conversation.

Between a reply and the next message the user reads and types (--typing seconds): the time
the service has to prefill the next prompt's head (app/warmup.py). A strategy named with
"+drafts" or "+partial" (e.g. hybrid+drafts) is also told what is being typed, as the web page
tells it (PUT .../draft when typing pauses): a pause half-way through the message, then
"+drafts": one before sending (the draft is the message), "+partial": one before its last word,
which is typed a second before the message goes out (the pessimistic case: the last draft the
server sees lacks that word).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ttft.py [--strategies ...] [--turns 60] [--chats 2]

Steady state is the median over the live chat's second half (with --chats N, over every live
chat's second half pooled: each chat a new session with the user lines of another
conversation); "reused" is cached / prompt tokens summed over those turns. Ratios are to
token_buffer's in the same run (the machine is shared and its speed varies; ratios carry over,
seconds do not).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cross_session import (  # noqa: E402
    Api,
    LoadSampler,
    Server,
    locomo,
    locomo_message,
    machine,
    revision,
    uptime,
    wait_indexed,
)

STRATEGIES = ("token_buffer", "summary_buffer", "vector", "hybrid")
IMPORTED = 480
NEW_TOKENS = 16


@dataclass
class Turn:
    ttft: float  # seconds to the first delta
    prompt: int
    cached: int


@dataclass
class Scene:
    turns: list[Turn] = field(default_factory=list)
    pooled: list[Turn] | None = None  # the steady turns of several live chats (pool)

    def steady(self) -> list[Turn]:
        if self.pooled is not None:
            return self.pooled
        return self.turns[len(self.turns) // 2 :] or self.turns

    @property
    def ttft(self) -> float:
        return statistics.median(t.ttft for t in self.steady())

    @property
    def reused(self) -> float:
        s = self.steady()
        return sum(t.cached for t in s) / max(1, sum(t.prompt for t in s))


def sse(lines: Any) -> Any:
    """(event, data) of a text/event-stream."""
    event, data = "message", []
    for line in lines:
        if line == "":
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))


def say(api: Api, sid: str, content: str) -> Turn:
    """One streamed turn: seconds to the first delta, and the usage of the done event."""
    body = {"content": content, "stream": True, "max_tokens": NEW_TOKENS, "temperature": 0}
    t0 = time.perf_counter()
    first: float | None = None
    with api.client.stream("POST", f"/v1/sessions/{sid}/messages", json=body) as r:
        if r.status_code != 200:
            r.read()
            raise RuntimeError(f"POST messages -> {r.status_code} {r.text[:300]}")
        for event, data in sse(r.iter_lines()):
            if event == "delta" and first is None:
                first = time.perf_counter() - t0
            if event == "done":
                usage = json.loads(data)["usage"]
                return Turn(
                    first if first is not None else time.perf_counter() - t0,
                    int(usage["prompt_tokens"]),
                    int(usage["cached_tokens"]),
                )
            if event == "error":
                raise RuntimeError(f"stream error: {data[:300]}")
    raise RuntimeError("stream ended without a done event")


LAST_WORD_SECONDS = 1.0  # from the last draft (before the last word) to sending


def typed_drafts(text: str, whole: bool) -> list[str]:
    """What a page that tells its server when typing pauses has told it of `text` before it is
    sent: its first half, then the whole message (`whole`: the user paused before sending) or
    all but its last word."""
    words = text.split()
    return [" ".join(words[: len(words) // 2]), text if whole else " ".join(words[:-1])]


def type_next(api: Api, sid: str, text: str, typing: float, drafts: str) -> None:
    """The user reads the reply and types `text` (--typing seconds); `drafts`: "" (the client
    tells nothing), "drafts" or "partial" (module docstring)."""
    if not drafts:
        time.sleep(typing)
        return
    half, last = typed_drafts(text, whole=drafts == "drafts")
    time.sleep(typing / 2)
    api.put_draft(sid, half)
    time.sleep(max(0.0, typing / 2 - LAST_WORD_SECONDS))
    api.put_draft(sid, last)
    time.sleep(min(LAST_WORD_SECONDS, typing / 2))


def after_import(
    api: Api, memory: dict[str, Any], conv: Any, questions: int, typing: float, drafts: str
) -> Scene:
    strategy = memory["strategy"]
    sid = api.create("assistant", **memory)
    messages = [locomo_message(t, conv.speaker_a) for t in conv.turns[:IMPORTED]]
    ids = api.history(sid, messages)
    wait_indexed([(api, sid, ids)])  # every strategy's turns are embedded (memory scopes)
    scene = Scene()
    asked = [q.text for q in conv.questions[:questions]]
    # the user sees the import done, then types the first question as she types every other
    type_next(api, sid, asked[0], typing, drafts)
    for i, q in enumerate(asked):
        scene.turns.append(say(api, sid, q))
        print(f"  [{strategy} import] {scene.turns[-1]}", flush=True)
        if i + 1 < len(asked):
            type_next(api, sid, asked[i + 1], typing, drafts)
    return scene


def live_chat(
    api: Api, memory: dict[str, Any], conv: Any, turns: int, typing: float, drafts: str
) -> Scene:
    strategy = memory["strategy"]
    sid = api.create("assistant", **memory)
    lines = [t.text for t in conv.turns if t.speaker == conv.speaker_a][:turns]
    scene = Scene()
    for i, line in enumerate(lines):
        scene.turns.append(say(api, sid, line))
        if i + 1 < len(lines):
            type_next(api, sid, lines[i + 1], typing, drafts)
    shown = [f"{t.ttft:.2f}s {t.cached}/{t.prompt}" for t in scene.turns]
    print(f"  [{strategy} live] {', '.join(shown)}", flush=True)
    return scene


def pool(chats: list[Scene]) -> Scene:
    """Live chats as one scene, steady state = their second halves together: a median of one
    chat's eight steady turns moved by 2x between identical runs (1-3 of them carry a delta)."""
    return Scene(
        turns=[t for c in chats for t in c.turns], pooled=[t for c in chats for t in c.steady()]
    )


def table(results: dict[str, tuple[Scene, Scene]]) -> str:
    base = results.get("token_buffer")
    rows = [
        "| strategy | after import: turn 1 | turns 2+ (median) | reused 2+ | live chat: steady "
        "TTFT | ratio to token_buffer | reused prompt tokens |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (imp, live) in results.items():
        first, rest = imp.turns[0], imp.turns[1:] or imp.turns
        rest_ttft = statistics.median(t.ttft for t in rest)
        rest_reused = sum(t.cached for t in rest) / max(1, sum(t.prompt for t in rest))
        ratio = f"{live.ttft / base[1].ttft:.2f}x" if base else "-"
        rows.append(
            f"| {name} | {first.ttft:.2f} s ({first.prompt}/{first.cached}) | {rest_ttft:.2f} s "
            f"| {rest_reused:.0%} | {live.ttft:.2f} s | {ratio} | {live.reused:.0%} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--turns", type=int, default=60, help="live chat turns")
    ap.add_argument("--questions", type=int, default=6, help="questions after the import")
    ap.add_argument("--typing", type=float, default=4.0, help="seconds between turns")
    ap.add_argument(
        "--chats", type=int, default=1, help="live chats per strategy, steady turns pooled"
    )
    ap.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="LABEL=JSON",
        help='a row of its own session memory, named in --strategies, e.g. \'h512={"strategy": '
        '"hybrid", "fresh_min_tokens": 512}\' (repeatable)',
    )
    args = ap.parse_args()
    variants = {}
    for spec in args.variant:
        label, _, memory = spec.partition("=")
        variants[label] = json.loads(memory)
    load = LoadSampler()
    load.start()
    print(f"start: {uptime()}; code at {revision()}; {machine()}", flush=True)
    mem = locomo()
    convs = mem.load_locomo(mem.DEFAULT_DATA)
    results: dict[str, tuple[Scene, Scene]] = {}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memento-ttft-") as tmp:
        with Server(Path(tmp)) as server:
            for name in args.strategies.split(","):
                row, _, drafts = name.partition("+")
                memory = variants.get(row, {"strategy": row})
                # a user per row: a session recalls from the user's other sessions with
                # the persona (memory scopes), and those of a non-recalling strategy were
                # never embedded: its first recall would embed them all on the clock
                api = Api(server, f"ttft-{row}-{drafts or 'plain'}", [])
                if drafts not in ("", "drafts", "partial"):
                    ap.error(f"{name}: the suffix is +drafts or +partial")
                imp = after_import(api, memory, convs[0], args.questions, args.typing, drafts)
                # each chat a new session with the lines of another conversation
                chats = [
                    live_chat(api, memory, convs[1 + i], args.turns, args.typing, drafts)
                    for i in range(args.chats)
                ]
                live = pool(chats)
                results[name] = (imp, live)
        problems = server.problems()
    print()
    print(table(results))
    print(
        f"\n{IMPORTED} messages imported then {args.questions} questions; {args.chats} live "
        f"chat(s) of {args.turns} turns, steady state = their second halves (pooled). Greedy, "
        f"{NEW_TOKENS} new tokens, "
        f"{args.typing:.0f} s between a reply and the next message (the user reads and types)."
    )
    print(f"Server log (--log-level warning): {len(problems)} lines")
    for ln in problems[:10]:
        print(f"    {ln}")
    print(
        f"Command: `HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ttft.py "
        f"--strategies {args.strategies} --turns {args.turns} --questions {args.questions} "
        f"--typing {args.typing:g} --chats {args.chats}"
        + "".join(f" --variant {shlex.quote(v)}" for v in args.variant)
        + "`"
    )
    print(f"Run time: {(time.perf_counter() - started) / 60:.1f} min; code at {revision()}")
    print(f"Load average (1 min): {load.summary()}")


if __name__ == "__main__":
    main()
