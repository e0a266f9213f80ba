"""Many streams at once (issue 14): aggregate decode throughput and time to first token of N
concurrent streamed chat completions, Memento beside llama.cpp's `llama-server`, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --memento
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --memento \\
        --llama-server /work/llama-build/.../build-noamx/bin/llama-server --streams 1,4,8,16,32
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --url http://127.0.0.1:8000

    # measure a commit, not a work tree someone is editing:
    mkdir /tmp/m && git archive HEAD | tar -x -C /tmp/m && git rev-parse HEAD > /tmp/m/.revision
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/throughput.py --memento --code /tmp/m ...

llama-server (optional, bench only): the llama.cpp source ships in the llama-cpp-python sdist
(`pip download --no-deps --no-binary :all: llama-cpp-python==0.3.36`, unpack, vendor/llama.cpp):

    cmake -B build-noamx -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_SERVER=ON \\
        -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16" \\
        -DCMAKE_CXX_FLAGS="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
    cmake --build build-noamx --target llama-server -j2

(this VM's CPU advertises AMX but faults on it: a plain -march=native build dies of SIGILL in
ggml's AMX Q4_1 kernel on the first request.)

The client: N streams at once, each sending --rounds (2) streamed POST /v1/chat/completions one
after the other, greedy (temperature 0), max_tokens --max-tokens (128), a short prompt of its
own per round ("Tell me a short story about <topic>."; no two requests share a topic), with
`stream_options: {"include_usage": true}`. Per N and target:
- aggregate completion tokens/s: completion tokens (the final usage chunk; content deltas
  counted when a server sends none) of all requests over the wall time of all streams;
- TTFT p50/p95: request sent -> first non-empty content delta.

Targets:
- `--memento` starts one `memento serve` (a fresh temp data dir, auth required, one user and
  API key per stream, so the per-user concurrency and rate limits at their defaults never bind;
  stateless requests get a prompt-cache slot per user) and keeps it for every N. Its peak RSS
  per N is /proc/<pid>/status VmHWM, reset before each N through /proc/<pid>/clear_refs when
  the kernel allows (else the high-water mark since start, marked "cumulative").
- `--llama-server PATH` starts llama-server per N on the same GGUF (the embedded one,
  app.llm.embedded.default_gguf_path, or --gguf): `-m GGUF -np N -c N*2048 -t 2 -tb 2`, a free
  port, waits for /health. A bench-only binary built from the llama.cpp source inside the
  llama-cpp-python sdist; never a dependency of the service.
- `--url URL` measures an already running OpenAI-compatible server (auth off, or --api-key).

Targets run interleaved per N (their order alternating per N), each after one short warm-up
request. Not a timed test: numbers depend on the (shared, 2-core) machine; compare within a run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: `benchmarks.` resolves from the repo root

from benchmarks._server import Server, free_port, stop_process, wait_http  # noqa: E402

TOPICS = (
    "a lighthouse keeper",
    "a lost umbrella",
    "a clockmaker's apprentice",
    "a dragon who fears heights",
    "a robot learning to paint",
    "a village under the sea",
    "a talking cat",
    "the last train home",
    "a forgotten library",
    "a brave little boat",
    "a snowman in summer",
    "a baker at midnight",
    "a map with no roads",
    "a fox and a crow",
    "a garden on the moon",
    "a shy volcano",
    "an old violin",
    "a pirate who cannot swim",
    "a kite that flew away",
    "a desert well",
    "a museum at night",
    "a mountain goat",
    "a paper airplane",
    "a sleepy owl",
    "a detective squirrel",
    "a river that ran uphill",
    "a music box",
    "a friendly ghost",
    "a tiny astronaut",
    "a secret door",
    "a windmill",
    "a letter never sent",
    "a rainy market",
    "a painter's last canvas",
    "a bicycle race",
    "a whale's song",
    "a broken compass",
    "a night at the circus",
    "a glass of lemonade",
    "a frozen lake",
    "a knight without armor",
    "a bookshop cat",
    "a comet",
    "an island of clocks",
    "a magic pencil",
    "a postman in the snow",
    "a mirror that lies",
    "a honeybee",
    "a shipwreck",
    "a tea party",
    "a lonely satellite",
    "a runaway balloon",
    "a puzzle box",
    "a street musician",
    "a hidden valley",
    "a giant's shoe",
    "a firefly",
    "a cloud that rained candy",
    "a sandcastle",
    "an inventor's failure",
    "a polar bear",
    "a haunted piano",
    "a spring storm",
    "a wishing stone",
)


def prompt_of(stream: int, rnd: int, streams: int) -> str:
    """The prompt of a stream's round: every request of a run asks about its own topic."""
    i = rnd * streams + stream
    topic = TOPICS[i % len(TOPICS)]
    suffix = f" (#{i // len(TOPICS)})" if i >= len(TOPICS) else ""
    return f"Tell me a short story about {topic}.{suffix}"


# -- the pure parts -----------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile, linear between closest ranks (numpy's default); nan if empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * p / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class SseParser:
    """A text/event-stream read line by line: an event's data payload once its blank line (or
    the end of the stream) arrives; multi-line data joined with newlines."""

    def __init__(self) -> None:
        self.data: list[str] = []

    def line(self, line: str) -> str | None:
        if line == "":
            return self.end()
        if line.startswith("data:"):
            self.data.append(line[5:].removeprefix(" "))
        # comments (":"), event:, id:, retry: carry nothing measured here
        return None

    def end(self) -> str | None:
        out = "\n".join(self.data) if self.data else None
        self.data = []
        return out


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The data payloads of a text/event-stream, one per event."""
    parser = SseParser()
    for line in lines:
        payload = parser.line(line)
        if payload is not None:
            yield payload
    payload = parser.end()
    if payload is not None:
        yield payload


@dataclass
class Tally:
    """One streamed chat completion as the client sees it."""

    start: float
    first: float | None = None  # when the first non-empty content delta arrived
    deltas: int = 0  # non-empty content deltas
    usage_tokens: int | None = None  # completion_tokens of a usage chunk
    text: list[str] = field(default_factory=list)
    error: str | None = None
    done: bool = False  # [DONE] seen

    def feed(self, data: str, now: float) -> None:
        """One event's data payload, received at `now`."""
        if data.strip() == "[DONE]":
            self.done = True
            return
        try:
            body = json.loads(data)
        except ValueError:
            self.error = f"not JSON: {data[:120]!r}"
            return
        if not isinstance(body, dict):
            return
        if "error" in body:
            self.error = f"error chunk: {json.dumps(body['error'])[:200]}"
            return
        usage = body.get("usage")
        if isinstance(usage, dict) and usage.get("completion_tokens") is not None:
            self.usage_tokens = int(usage["completion_tokens"])
        for choice in body.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                if self.first is None:
                    self.first = now
                self.deltas += 1
                self.text.append(content)

    @property
    def tokens(self) -> int:
        return self.usage_tokens if self.usage_tokens is not None else self.deltas

    @property
    def ttft(self) -> float | None:
        return None if self.first is None else self.first - self.start


@dataclass
class Run:
    """One target at one N."""

    target: str
    streams: int
    wall: float = 0.0
    requests: list[Tally] = field(default_factory=list)
    peak_rss_kb: int | None = None
    rss_note: str = ""
    load: float | None = None  # the 1-minute load average when the run ended (shared machine)

    @property
    def tokens(self) -> int:
        return sum(t.tokens for t in self.requests if t.error is None)

    @property
    def tok_s(self) -> float:
        return self.tokens / self.wall if self.wall > 0 else float("nan")

    @property
    def ttfts(self) -> list[float]:
        return [t.ttft for t in self.requests if t.ttft is not None and t.error is None]

    @property
    def errors(self) -> list[str]:
        return [t.error for t in self.requests if t.error is not None]


def fmt(x: float | None, digits: int = 1, unit: str = "") -> str:
    if x is None or x != x:  # None or nan
        return "-"
    return f"{x:.{digits}f}{unit}"


def table(runs: dict[tuple[str, int], Run], streams: Sequence[int]) -> str:
    """N | Memento tok/s | TTFT p95 | llama-server tok/s | TTFT p95 | ratio (Memento / llama)."""
    rows = [
        "| concurrent streams | Memento aggregate tok/s | TTFT p95 | llama-server aggregate tok/s "
        "| TTFT p95 | ratio |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for n in streams:
        m, ll = runs.get(("memento", n)), runs.get(("llama-server", n))
        m_tps = m.tok_s if m else None
        l_tps = ll.tok_s if ll else None
        ratio = fmt(m_tps / l_tps, 2, "x") if m_tps and l_tps else "-"
        rows.append(
            f"| {n} | {fmt(m_tps)} | {fmt(percentile(m.ttfts, 95) if m else None, 2, ' s')} "
            f"| {fmt(l_tps)} | {fmt(percentile(ll.ttfts, 95) if ll else None, 2, ' s')} "
            f"| {ratio} |"
        )
    return "\n".join(rows)


def detail(runs: Iterable[Run]) -> str:
    """Every run: requests, tokens, TTFT p50/p95, wall, peak RSS, errors."""
    rows = [
        "| target | N | requests | errors | completion tokens (mean / request) | tok/s "
        "| TTFT p50 | TTFT p95 | wall | peak RSS | load avg |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        ok = len(r.requests) - len(r.errors)
        mean = r.tokens / ok if ok else float("nan")
        rss = "-" if r.peak_rss_kb is None else f"{r.peak_rss_kb / 1024:.0f} MB{r.rss_note}"
        p50, p95 = percentile(r.ttfts, 50), percentile(r.ttfts, 95)
        rows.append(
            f"| {r.target} | {r.streams} | {len(r.requests)} | {len(r.errors)} "
            f"| {r.tokens} ({fmt(mean)}) | {fmt(r.tok_s)} | {fmt(p50, 2, ' s')} "
            f"| {fmt(p95, 2, ' s')} | {fmt(r.wall, 1, ' s')} | {rss} | {fmt(r.load, 2)} |"
        )
    return "\n".join(rows)


def vm_hwm_kb(pid: int) -> int | None:
    """Peak resident set size of a process (VmHWM), in kB; None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_hwm(pid: int) -> bool:
    """Reset a process's VmHWM to its current RSS (Linux >= 4.0, same user or root)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- the client ---------------------------------------------------------------------------------
async def request(
    client: httpx.AsyncClient,
    model: str,
    prompt: str,
    max_tokens: int,
    headers: dict[str, str],
) -> Tally:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0,
        "max_tokens": max_tokens,
    }
    tally = Tally(time.perf_counter())
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
            if r.status_code != 200:
                tally.error = f"HTTP {r.status_code}: {(await r.aread())[:200]!r}"
                return tally
            parser = SseParser()
            async for line in r.aiter_lines():
                payload = parser.line(line)
                if payload is not None:
                    tally.feed(payload, time.perf_counter())
            payload = parser.end()
            if payload is not None:
                tally.feed(payload, time.perf_counter())
    except httpx.HTTPError as exc:
        tally.error = f"{type(exc).__name__}: {exc}"
    if tally.error is None and not tally.done:
        tally.error = "the stream ended without [DONE]"
    return tally


async def measure(
    target: str,
    url: str,
    model: str,
    streams: int,
    rounds: int,
    max_tokens: int,
    headers: Sequence[dict[str, str]],
) -> Run:
    """N streams at once, each `rounds` requests in a row; headers[i] is stream i's."""
    run = Run(target, streams)
    # a fresh connection per request (loopback: well under a millisecond): llama-server can drop
    # an idle kept-alive connection just as the next request is written on it
    limits = httpx.Limits(max_connections=streams + 4, max_keepalive_connections=0)
    timeout = httpx.Timeout(900.0, connect=30.0)
    async with httpx.AsyncClient(base_url=url, timeout=timeout, limits=limits) as client:
        # one short warm-up: a fresh llama-server allocates on its first request
        warm = await request(client, model, "Say hello.", 8, headers[0])
        if warm.error:
            raise RuntimeError(f"{target}: the warm-up request failed: {warm.error}")

        async def stream(i: int) -> list[Tally]:
            return [
                await request(client, model, prompt_of(i, r, streams), max_tokens, headers[i])
                for r in range(rounds)
            ]

        t0 = time.perf_counter()
        done = await asyncio.gather(*(stream(i) for i in range(streams)))
        run.wall = time.perf_counter() - t0
    run.load = os.getloadavg()[0]
    run.requests = [t for ts in done for t in ts]
    return run


# -- the servers --------------------------------------------------------------------------------
class LlamaServer:
    """llama.cpp's llama-server on the GGUF with N slots, 2 threads."""

    def __init__(self, binary: Path, gguf: Path, streams: int, logdir: Path, threads: int) -> None:
        self.port = free_port()
        self.log = logdir / f"llama-server-{streams}.log"
        self.cmd = [
            str(binary),
            "-m",
            str(gguf),
            "-np",
            str(streams),
            "-c",
            str(streams * 2048),
            "-t",
            str(threads),
            "-tb",
            str(threads),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> float:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return wait_http(f"{self.url}/health", self.proc, self.log, 300, "llama-server")

    def stop(self) -> None:
        stop_process(self.proc, grace=30)


def revision(code: Path = ROOT) -> str:
    """The code measured: a checkout's commit and how many files differ from it (the server
    runs the work tree, where others may be editing), or an export's `.revision` file."""
    marker = code / ".revision"
    if not (code / ".git").exists() and marker.is_file():
        return f"{marker.read_text().strip()[:7]} (export at {code})"

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=code, capture_output=True, text=True).stdout

    changed = git("status", "--porcelain").splitlines()
    return f"{git('rev-parse', '--short', 'HEAD').strip()} (+{len(changed)} changed files)"


# -- the run ------------------------------------------------------------------------------------
def parse_streams(text: str) -> list[int]:
    out = [int(x) for x in text.split(",") if x.strip()]
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("--streams: comma-separated positive integers")
    return out


def run_all(args: argparse.Namespace, tmp: Path) -> dict[tuple[str, int], Run]:
    runs: dict[tuple[str, int], Run] = {}
    gguf = Path(args.gguf) if args.gguf else None
    if args.llama_server and gguf is None:
        sys.path.insert(0, str(Path(args.code).resolve()))  # the code Memento runs
        from app.llm.embedded import default_gguf_path

        gguf = default_gguf_path()
    memento: Server | None = None
    headers: list[dict[str, str]] = []  # an API key per stream, each its own user
    try:
        if args.memento:
            model = {"MEMENTO_MODEL": str(Path(args.gguf))} if args.gguf else None
            memento = Server(tmp, env=model, code=Path(args.code), timeout=900)
            keys = memento.make_keys(f"stream-{i}" for i in range(max(args.streams)))
            headers = [{"Authorization": f"Bearer {k}"} for k in keys.values()]
            up = memento.start()
            print(f"memento serve up in {up:.1f} s on {memento.url} (pid {memento.proc.pid})")
        for k, n in enumerate(args.streams):
            targets = []
            if memento is not None:
                targets.append("memento")
            if args.llama_server:
                targets.append("llama-server")
            if args.url:
                targets.append("url")
            if k % 2 == 1:
                targets.reverse()
            for target in targets:
                if target == "memento":
                    assert memento is not None and memento.proc is not None
                    pid = memento.proc.pid
                    reset = reset_hwm(pid)
                    run = asyncio.run(
                        measure(
                            "memento",
                            memento.url,
                            "memento",
                            n,
                            args.rounds,
                            args.max_tokens,
                            headers,
                        )
                    )
                    run.peak_rss_kb = vm_hwm_kb(pid)
                    run.rss_note = "" if reset else " (cumulative)"
                elif target == "llama-server":
                    assert gguf is not None
                    server = LlamaServer(Path(args.llama_server), gguf, n, tmp, args.threads)
                    try:
                        up = server.start()
                        print(f"llama-server -np {n} up in {up:.1f} s on {server.url}")
                        run = asyncio.run(
                            measure(
                                "llama-server",
                                server.url,
                                "llama",
                                n,
                                args.rounds,
                                args.max_tokens,
                                [{}] * n,  # no auth (Memento's keys stay Memento's)
                            )
                        )
                        if server.proc is not None:
                            run.peak_rss_kb = vm_hwm_kb(server.proc.pid)
                    finally:
                        server.stop()
                else:
                    key = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
                    run = asyncio.run(
                        measure(
                            "url", args.url, args.model, n, args.rounds, args.max_tokens, [key] * n
                        )
                    )
                runs[(run.target, n)] = run
                print(
                    f"  {run.target:>12} N={n:<3} {run.tok_s:7.1f} tok/s  "
                    f"TTFT p50 {fmt(percentile(run.ttfts, 50), 2)} s "
                    f"p95 {fmt(percentile(run.ttfts, 95), 2)} s  wall {run.wall:.1f} s  "
                    f"errors {len(run.errors)}",
                    flush=True,
                )
    finally:
        if memento is not None:
            memento.stop()
            problems = memento.problems()
            print(f"memento serve log (--log-level warning): {len(problems)} lines")
            for ln in problems[:10]:
                print(f"    {ln}")
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--memento", action="store_true", help="start and measure `memento serve`")
    ap.add_argument("--llama-server", metavar="PATH", help="a llama-server binary to measure")
    ap.add_argument("--url", help="an already running OpenAI-compatible server to measure")
    ap.add_argument("--api-key", help="bearer key for --url")
    ap.add_argument("--model", default="memento", help="the model field sent to --url")
    ap.add_argument("--gguf", help="the GGUF for both (default: the embedded SmolLM2)")
    ap.add_argument("--streams", type=parse_streams, default=[1, 4, 8, 16, 32])
    ap.add_argument("--rounds", type=int, default=2, help="requests per stream, in a row")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="llama-server -t / -tb")
    ap.add_argument(
        "--code",
        default=str(ROOT),
        help="run `memento serve` from this copy of the repo (default: this work tree), e.g.\n"
        "a `git archive HEAD | tar -x -C DIR` export with the commit in DIR/.revision",
    )
    args = ap.parse_args(argv)
    if not (args.memento or args.llama_server or args.url):
        ap.error("nothing to measure: give --memento, --llama-server PATH and/or --url URL")
    command = shlex.join(
        [
            "HF_HUB_OFFLINE=1",
            ".venv/bin/python",
            "benchmarks/throughput.py",
            *(argv or sys.argv[1:]),
        ]
    )
    code = Path(args.code).resolve()
    print(f"start: load average {os.getloadavg()[0]:.2f}; code at {revision(code)}", flush=True)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="memento-throughput-") as tmp:
        runs = run_all(args, Path(tmp))
    print()
    print(table(runs, args.streams))
    print()
    print(detail(runs.values()))
    mem = [r for r in runs.values() if r.target == "memento" and r.peak_rss_kb is not None]
    if mem:
        print()
        print(
            "Memento peak RSS (VmHWM) per N: "
            + ", ".join(f"N={r.streams} {r.peak_rss_kb / 1024:.0f} MB{r.rss_note}" for r in mem)
        )
    print()
    print(
        f"Greedy, max_tokens {args.max_tokens}, {args.rounds} rounds per stream, a short prompt "
        "of its own per request; aggregate tok/s = completion tokens of all requests / wall time "
        "of all streams; TTFT = request sent -> first non-empty content delta; ratio = Memento / "
        "llama-server."
    )
    print(f"Command: `{command}`")
    print(
        f"Run time: {(time.perf_counter() - started) / 60:.1f} min; code at {revision(code)}; "
        f"{os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.2f}"
    )
    errors = [e for r in runs.values() for e in r.errors]
    if errors:
        print(f"ERRORS ({len(errors)}):\n- " + "\n- ".join(errors[:20]))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
