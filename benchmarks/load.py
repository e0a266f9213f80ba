"""Load on loopback: many clients on their own sessions plus several on one shared session.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/load.py            # 20 x 10 turns + 5 shared
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/load.py --quick    # 4 x 3 turns + 2 shared

Starts a real `memento serve` (auth required, one API key per client, the shared session's
clients share its owner's key) on a free port with a fresh data dir, runs every client at once
with streamed turns, then checks what the service promises under load:
- no 5xx, no `error` event, every request answered (429 is honoured by waiting Retry-After);
- no lost or duplicated message: each session holds exactly the turns sent, once each;
- per-session order: each client's turns appear in the order it sent them, and every user
  message is followed directly by its own reply (turns never interleave);
- fair queueing on the shared session: no client falls behind the others by more than a turn
  or two (the per-session lock is FIFO).
Reports p50/p95 time to first token, turns/s and completion tokens/s as a markdown table.
Not a timed test: numbers depend on the machine; compare runs on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks._server import Server  # noqa: E402


@dataclass
class Stats:
    ttft: list[float] = field(default_factory=list)
    turn_s: list[float] = field(default_factory=list)
    decode_s: list[float] = field(default_factory=list)  # first delta -> last delta
    tokens: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, reused from the session's KV cache
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    retries_429: int = 0


async def turn(
    client: httpx.AsyncClient, sid: str, content: str, max_tokens: int, stats: Stats
) -> None:
    """One streamed turn; retries after Retry-After on 429 (the contract for a polite client)."""
    while True:
        start = time.perf_counter()
        first: float | None = None
        last = 0.0
        async with client.stream(
            "POST",
            f"/v1/sessions/{sid}/messages",
            json={
                "content": content,
                "stream": True,
                "max_tokens": max_tokens,
                "temperature": 0.7,
                "seed": 1,
            },
        ) as r:
            stats.statuses[r.status_code] = stats.statuses.get(r.status_code, 0) + 1
            if r.status_code == 429:
                stats.retries_429 += 1
                await r.aread()
                await asyncio.sleep(float(r.headers.get("retry-after", "1")))
                continue
            if r.status_code != 200:
                stats.errors.append(f"{r.status_code} {(await r.aread())[:200]!r}")
                return
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "delta":
                        last = time.perf_counter()
                        first = last if first is None else first
                    elif event == "done":
                        usage = json.loads(line[5:])["usage"]
                        stats.tokens += usage["completion_tokens"]
                        stats.prompt_tokens += usage["prompt_tokens"]
                        stats.cached_tokens += usage["cached_tokens"]
                    elif event == "error":
                        stats.errors.append(f"error event: {line[5:200]}")
        end = time.perf_counter()
        stats.ttft.append((first or end) - start)
        stats.turn_s.append(end - start)
        if first is not None:
            stats.decode_s.append(last - first)
        return


async def own_client(
    url: str, key: str, i: int, turns: int, max_tokens: int, stats: Stats
) -> tuple[str, list[str]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=3600) as c:
        r = await c.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "buffer"}}
        )
        r.raise_for_status()
        sid = r.json()["id"]
        sent = []
        for t in range(turns):
            content = f"[c{i} t{t}] Tell me one short fact about the number {t + i}."
            sent.append(content)
            await turn(c, sid, content, max_tokens, stats)
        return sid, sent


async def shared_client(
    url: str, key: str, sid: str, i: int, turns: int, max_tokens: int, stats: Stats
) -> list[str]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=3600) as c:
        sent = []
        for t in range(turns):
            content = f"[s{i} t{t}] Shared session, client {i}, turn {t}: say hello."
            sent.append(content)
            await turn(c, sid, content, max_tokens, stats)
        return sent


async def messages_of(url: str, key: str, sid: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as c:
        r = await c.get(f"/v1/sessions/{sid}/messages", params={"limit": 500})
        r.raise_for_status()
        return list(r.json()["messages"])


def check_session(messages: list[dict[str, Any]], sent: dict[str, list[str]]) -> list[str]:
    """Problems with a session's transcript: lost, duplicated, reordered or interleaved turns."""
    problems = []
    users = [m for m in messages if m["role"] == "user"]
    contents = [m["content"] for m in users]
    expected = [c for cs in sent.values() for c in cs]
    for c in expected:
        n = contents.count(c)
        if n != 1:
            problems.append(f"{c[:20]!r} stored {n} times")
    if len(contents) != len(expected):
        problems.append(f"{len(contents)} user messages stored, {len(expected)} sent")
    for who, cs in sent.items():
        order = [contents.index(c) for c in cs if c in contents]
        if order != sorted(order):
            problems.append(f"client {who}: turns stored out of order")
    for u, a in zip(messages[::2], messages[1::2], strict=False):
        if (u["role"], a["role"]) != ("user", "assistant") or a["status"] != "complete":
            problems.append(f"message {u['id']}/{a['id']}: not a complete user/reply pair")
    return problems


def max_spread(messages: list[dict[str, Any]], clients: list[str], turns: int) -> int:
    """How far the most-served shared-session client ever got ahead of the least-served one,
    while every client still had turns to send (after that, spread is no longer unfairness)."""
    counts = dict.fromkeys(clients, 0)
    worst = 0
    for m in messages:
        if m["role"] != "user":
            continue
        counts[m["content"][1:].split(" ", 1)[0]] += 1
        if max(counts.values()) >= turns:
            break
        worst = max(worst, max(counts.values()) - min(counts.values()))
    return worst


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def run(args: argparse.Namespace, url: str, keys: dict[str, str]) -> int:
    own, shared = Stats(), Stats()
    owner = keys["shared-owner"]
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {owner}"}, timeout=60
    ) as c:
        r = await c.post(
            "/v1/sessions", json={"persona": "assistant", "memory": {"strategy": "buffer"}}
        )
        r.raise_for_status()
        shared_sid = r.json()["id"]
    start = time.perf_counter()
    own_tasks = [
        own_client(url, keys[f"client-{i}"], i, args.turns, args.max_tokens, own)
        for i in range(args.clients)
    ]
    shared_tasks = [
        shared_client(url, owner, shared_sid, i, args.turns, args.max_tokens, shared)
        for i in range(args.shared)
    ]
    finished: dict[str, float] = {}

    async def timed(name: str, tasks: list[Any]) -> list[Any]:
        done = await asyncio.gather(*tasks)
        finished[name] = time.perf_counter() - start
        return list(done)

    own_done, shared_done = await asyncio.gather(
        timed("own sessions", own_tasks), timed("shared session", shared_tasks)
    )
    results = own_done + shared_done
    wall = time.perf_counter() - start

    problems: list[str] = []
    for i, (sid, sent) in enumerate(results[: args.clients]):
        msgs = await messages_of(url, keys[f"client-{i}"], sid)
        problems += [f"client {i}: {p}" for p in check_session(msgs, {str(i): sent})]
    shared_sent = {f"s{i}": s for i, s in enumerate(results[args.clients :])}
    shared_msgs = await messages_of(url, owner, shared_sid)
    problems += [f"shared: {p}" for p in check_session(shared_msgs, shared_sent)]
    spread = max_spread(shared_msgs, list(shared_sent), args.turns) if args.shared else 0
    for s in (own, shared):
        problems += s.errors
        problems += [
            f"{n} responses with status {code}" for code, n in s.statuses.items() if code >= 500
        ]

    turns = len(own.turn_s) + len(shared.turn_s)
    tokens = own.tokens + shared.tokens
    all_ttft = own.ttft + shared.ttft
    print()
    print(f"Command: `{args.command}`")
    print()
    print(
        f"{args.clients} clients x {args.turns} turns on their own sessions + {args.shared} "
        f"clients x {args.turns} turns on one shared session; max_tokens {args.max_tokens}; "
        f"wall {wall:.1f} s ("
        + ", ".join(f"{name} done at {t:.1f} s" for name, t in finished.items())
        + ")"
    )
    print()
    print(
        "| clients | turns | TTFT p50 (s) | TTFT p95 (s) | first to last token p50 (s) | "
        "turn p50 (s) | turn p95 (s) |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, s in (("own sessions", own), ("shared session", shared), ("all", None)):
        ttft = all_ttft if s is None else s.ttft
        ts = own.turn_s + shared.turn_s if s is None else s.turn_s
        decode = own.decode_s + shared.decode_s if s is None else s.decode_s
        print(
            f"| {name} | {len(ts)} | {pct(ttft, 50):.2f} | {pct(ttft, 95):.2f} | "
            f"{pct(decode, 50):.2f} | {pct(ts, 50):.2f} | {pct(ts, 95):.2f} |"
        )
    print()
    print("| throughput | value |")
    print("| --- | --- |")
    print(f"| turns/s | {turns / wall:.2f} |")
    print(f"| completion tokens/s (all sessions) | {tokens / wall:.1f} |")
    prompt = own.prompt_tokens + shared.prompt_tokens
    cached = own.cached_tokens + shared.cached_tokens
    print(f"| prompt tokens per turn (reused from the KV cache) | {prompt / max(turns, 1):.0f} "
          f"({cached / max(prompt, 1):.0%}) |")  # fmt: skip
    print(f"| prompt tokens prefilled/s | {(prompt - cached) / wall:.0f} |")
    print(f"| 429 retries (honoured Retry-After) | {own.retries_429 + shared.retries_429} |")
    print(f"| shared session: max turns one client got ahead | {spread} |")
    statuses: dict[int, int] = {}
    for s in (own, shared):
        for code, n in s.statuses.items():
            statuses[code] = statuses.get(code, 0) + n
    print(f"| HTTP statuses | {json.dumps(dict(sorted(statuses.items())))} |")
    print(f"| lost / duplicated / reordered | {len(problems)} problem(s) |")
    if args.shared > 1 and spread > 2:
        problems.append(f"unfair queueing on the shared session: spread {spread}")
    print()
    if problems:
        print("PROBLEMS:\n- " + "\n- ".join(problems[:50]))
        return 1
    print("OK: no 5xx, no lost or duplicated message, per-session order kept.")
    return 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="4 clients x 3 turns + 2 shared")
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--shared", type=int, default=5)
    p.add_argument("--max-tokens", type=int, default=16)
    p.add_argument("--keep", action="store_true", help="keep the data dir (and its server.log)")
    args = p.parse_args()
    if args.quick:
        args.clients, args.turns, args.shared = 4, 3, 2
    args.command = shlex.join(
        ["HF_HUB_OFFLINE=1", ".venv/bin/python", "benchmarks/load.py", *sys.argv[1:]]
    )
    data = Path(tempfile.mkdtemp(prefix="memento-load-"))
    server = Server(
        data,
        env={
            # a shared session's clients are one user: let them all queue on the session
            "MEMENTO_MAX_CONCURRENT_PER_USER": str(max(4, args.shared + 1)),
            "MEMENTO_SESSION_WAIT_SECONDS": "3600",
        },
        scrub_env=False,  # as before the shared launcher: the caller's MEMENTO_* apply
        new_session=True,
        grace=60,
    )
    keys = server.make_keys([f"client-{i}" for i in range(args.clients)] + ["shared-owner"])
    try:
        up = server.start()
        print(f"server ready in {up:.1f} s on {server.url} (data {data})")
        code = asyncio.run(run(args, server.url, keys))
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(data, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
