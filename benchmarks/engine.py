"""Engine speed on this machine: our MLXEngine vs stock mlx-lm vs llama.cpp, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/engine.py            # full (~15-25 min)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/engine.py --quick    # a few minutes

Variants (all on the embedded SmolLM2-135M Q4_1 GGUF, greedy, same token ids):
- stock: mlx-lm `stream_generate` on the model exactly as the GGUF loader builds it (Q4 layers,
  MLX's CPU quantized kernels), before `prepare_for_cpu`.
- f32 (full mode): stock `stream_generate` on the dequantized float32 model, without our numpy
  decode path: the "stock mlx-lm, dequantized float32" baseline of the README.
- ours: `MLXEngine.stream` as the service runs it (factory.load_engine, default Settings).
- llama.cpp: llama-cpp-python, n_threads=2, when importable (`pip install -e .[bench]`).
- ours, MLX prefill (`--compare-prefill`): the same engine with prompt chunks sent through MLX's
  llama model instead of the numpy prefill path (app/llm/cpu_prefill.py), switched per run, and
  the turn-N chat repeated on that path. `--mlx-prefill` runs "ours" on the old path only.

Runs are interleaved across variants and summarised by medians: the machine is shared and noisy,
so compare ratios from the same run, not numbers across runs. Turn-N time to first token goes
through MLXEngine's per-session KV prefix cache (`cache_key`). Peak RSS is measured in a child
process that only loads the default engine and serves a short and a long prompt.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from app.blas import load_blas  # noqa: E402

BLAS = load_blas()

import mlx.core as mx  # noqa: E402
from mlx_lm.generate import stream_generate  # noqa: E402
from mlx_lm.tokenizer_utils import TokenizerWrapper  # noqa: E402

from app.config import Settings  # noqa: E402
from app.llm.embedded import default_gguf_path  # noqa: E402
from app.llm.factory import load_engine  # noqa: E402
from app.llm.gguf import load_gguf  # noqa: E402
from app.llm.mlx_engine import MLXEngine  # noqa: E402
from app.llm.types import GenerationParams  # noqa: E402
from app.llm.worker import MLXWorker  # noqa: E402

SHORT_CHAT = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Write a long story about a dragon who learns to cook soup."},
]
FILLER = (
    "Section {i}. The committee reviewed the quarterly report on river water quality, noting "
    "that sample {i} showed nitrate levels within limits while turbidity rose after the storms. "
)


@dataclass
class Run:
    ttft: float  # seconds from request to the first generated token
    tokens: int  # generated tokens
    decode_s: float  # seconds from the first to the last token

    @property
    def decode_tps(self) -> float | None:
        return (self.tokens - 1) / self.decode_s if self.tokens > 1 and self.decode_s > 0 else None


@dataclass
class Results:
    short: dict[str, list[Run]] = field(default_factory=dict)
    long: dict[str, list[Run]] = field(default_factory=dict)
    long_tokens: dict[str, int] = field(default_factory=dict)

    def add(self, table: dict[str, list[Run]], name: str, run: Run) -> None:
        table.setdefault(name, []).append(run)


def med(xs: Sequence[float | None]) -> float | None:
    vals = [x for x in xs if x is not None]
    return statistics.median(vals) if vals else None


# -- variants ---------------------------------------------------------------------------------


class _HFShim:
    """Just enough of a Hugging Face tokenizer for mlx-lm's TokenizerWrapper/detokenizer."""

    def __init__(self, tok: Any) -> None:
        self._tok = tok
        self.eos_token_id = tok.eos_id
        self.bos_token = None
        self.chat_template = None

    def get_vocab(self) -> dict[str, int]:
        return {}

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tok.encode(text)

    def decode(self, ids: Sequence[int], **_: Any) -> str:
        return self._tok.decode(ids)

    def apply_chat_template(self, *_: Any, **__: Any) -> Any:
        raise NotImplementedError("the benchmark feeds token ids")


def stock_runner(worker: MLXWorker, model: Any, tokenizer: Any) -> Callable[[list[int], int], Run]:
    wrapper = TokenizerWrapper(_HFShim(tokenizer), eos_token_ids=sorted(tokenizer.stop_ids))

    def run(prompt: list[int], max_tokens: int) -> Run:
        def go() -> Run:
            t0 = time.perf_counter()
            stamps = [
                time.perf_counter() for _ in stream_generate(model, wrapper, prompt, max_tokens)
            ]
            return Run(stamps[0] - t0, len(stamps), stamps[-1] - stamps[0])

        return worker.call(go)

    return run


def use_numpy_prefill(engine: MLXEngine, on: bool) -> None:
    from app.llm.cpu_fast import set_numpy_prefill

    engine.worker.call(lambda: set_numpy_prefill(engine.model, on))


def ours_runner(
    engine: MLXEngine, numpy_prefill: bool = True
) -> Callable[[Sequence[dict[str, str]], int, str | None], Run]:
    def run(messages: Sequence[dict[str, str]], max_tokens: int, key: str | None = None) -> Run:
        use_numpy_prefill(engine, numpy_prefill)

        async def go() -> Run:
            params = GenerationParams(temperature=0.0, max_tokens=max_tokens)
            stamps: list[float] = []
            t0 = time.perf_counter()
            async for chunk in engine.stream(messages, params, cache_key=key):
                stamps.extend(time.perf_counter() for _ in chunk.token_ids)
            if not stamps:  # the model stopped at once: count the stop as the first token
                stamps.append(time.perf_counter())
            return Run(stamps[0] - t0, len(stamps), stamps[-1] - stamps[0])

        return asyncio.run(go())

    return run


def llama_runner(path: Path, n_ctx: int) -> tuple[Callable[[list[int], int], Run] | None, str]:
    try:
        from llama_cpp import Llama, __version__
    except ImportError:
        return None, "llama-cpp-python is not installed (pip install -e '.[bench]'): skipped"
    llm = Llama(model_path=str(path), n_threads=2, n_ctx=n_ctx, verbose=False)

    def run(prompt: list[int], max_tokens: int) -> Run:
        llm.reset()  # no prefix reuse between runs: every run prefills its whole prompt
        t0 = time.perf_counter()
        stamps = [
            time.perf_counter()
            for _ in llm.create_completion(
                prompt, max_tokens=max_tokens, temperature=0.0, stream=True
            )
        ]
        return Run(stamps[0] - t0, len(stamps), stamps[-1] - stamps[0])

    return run, f"llama-cpp-python {__version__}, 2 threads"


# -- prompts ------------------------------------------------------------------------------------


def long_chat(engine: MLXEngine, target: int) -> list[dict[str, str]]:
    """A chat whose templated prompt is about `target` tokens."""
    parts: list[str] = []
    while True:
        msgs = [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "".join(parts) + "\nSummarise the report in one line."},
        ]
        if engine.count(msgs) >= target:
            return msgs
        parts.append(FILLER.format(i=len(parts) + 1))


# -- measurements ---------------------------------------------------------------------------


def measure_turns(
    engine: MLXEngine, turns: int, reply_tokens: int, numpy_prefill: bool = True
) -> dict[str, Any]:
    """A chat of `turns` turns through one cache_key; TTFT per turn, and cold at the last turn."""
    run = ours_runner(engine, numpy_prefill)
    use_numpy_prefill(engine, numpy_prefill)
    history: list[dict[str, str]] = [{"role": "system", "content": "You are a helpful assistant."}]
    ttfts: list[float] = []
    last: list[dict[str, str]] = []
    key = f"bench-{os.getpid()}-{numpy_prefill}"
    for i in range(1, turns + 1):
        msgs = history + [{"role": "user", "content": f"Turn {i}: name one fruit and one colour."}]

        async def go(m: list[dict[str, str]] = msgs) -> tuple[float, str]:
            params = GenerationParams(temperature=0.0, max_tokens=reply_tokens)
            t0 = time.perf_counter()
            first: float | None = None
            text: list[str] = []
            async for chunk in engine.stream(m, params, cache_key=key):
                if first is None and (chunk.token_ids or chunk.finish_reason):
                    first = time.perf_counter()
                text.append(chunk.text)
            return (first or time.perf_counter()) - t0, "".join(text)

        ttft, reply = asyncio.run(go())
        ttfts.append(ttft)
        last = msgs
        history = msgs + [{"role": "assistant", "content": reply}]
    cold = [run(last, 1, None).ttft for _ in range(2)]
    return {
        "turns": turns,
        "prompt_tokens": engine.count(last),
        "turn1": ttfts[0],
        "first3": med(ttfts[:3]),
        "last": ttfts[-1],
        "last3": med(ttfts[-3:]),
        "cold_last": med(cold),
    }


def peak_rss_kb() -> int:
    """Peak RSS of this process image. /proc's VmHWM, not getrusage: ru_maxrss carries over the
    parent's peak through fork+exec (Linux folds the old memory map's high-water mark into it),
    which made a child of this 2 GB benchmark report the benchmark's own peak."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


def rss_child(long_target: int) -> None:
    """Child mode: load the default engine, serve a short and a long chat, print peak RSS."""
    worker = MLXWorker(name="mlx-rss")
    engine = load_engine(Settings(model=None, context_window=None), worker)
    run = ours_runner(engine)
    run(SHORT_CHAT, 16, None)
    run(long_chat(engine, long_target), 4, "rss")
    print(json.dumps({"peak_rss_mb": peak_rss_kb() / 1024}))
    worker.shutdown()


def measure_rss(long_target: int) -> float | None:
    cmd = [sys.executable, __file__, "--rss-child", "--long-tokens", str(long_target)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    for line in out.stdout.splitlines()[::-1]:
        if line.startswith("{"):
            return float(json.loads(line)["peak_rss_mb"])
    print(out.stderr[-2000:], file=sys.stderr)
    return None


# -- report -----------------------------------------------------------------------------------


def fmt(x: float | None, unit: str = "", digits: int = 1) -> str:
    return "—" if x is None else f"{x:.{digits}f}{unit}"


def ratio(a: float | None, b: float | None) -> str:
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}x"


def report(
    res: Results, labels: dict[str, str], all_turns: dict[str, dict[str, Any]], rss: Any
) -> None:
    print(
        "\n| | decode tok/s | prefill tok/s | TTFT short chat | TTFT long prompt "
        "| decode tok/s after the long prompt |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    summary: dict[str, dict[str, float | None]] = {}
    for name, label in labels.items():
        short, long = res.short.get(name, []), res.long.get(name, [])
        n_long = res.long_tokens.get(name)
        t_long = med([r.ttft for r in long])
        s = {
            "decode": med([r.decode_tps for r in short]),
            "prefill": (n_long / t_long) if n_long and t_long else None,
            "ttft_short": med([r.ttft for r in short]),
            "ttft_long": t_long,
            # Each decoded token attends over the whole long prompt: what a reply streams at
            # in a recalling strategy's ~2,000-token context.
            "decode_long": med([r.decode_tps for r in long]),
        }
        summary[name] = s
        long_cell = fmt(s["ttft_long"], " s", 2) + (f" ({n_long} tok)" if n_long else "")
        print(
            f"| {label} | {fmt(s['decode'])} | {fmt(s['prefill'])} | "
            f"{fmt(s['ttft_short'], ' s', 2)} | {long_cell} | {fmt(s['decode_long'])} |"
        )
    ours, stock, lcpp = summary.get("ours", {}), summary.get("stock", {}), summary.get("llama", {})
    print("\nRatios (same run):")
    print(
        f"- decode, ours / stock mlx-lm Q4: {ratio(ours.get('decode'), stock.get('decode'))}"
        " (target >= 3x)"
    )
    print(
        f"- decode, ours / llama.cpp: {ratio(ours.get('decode'), lcpp.get('decode'))}"
        " (goal >= 0.5x)"
    )
    print(
        f"- prefill, ours / llama.cpp: {ratio(ours.get('prefill'), lcpp.get('prefill'))}"
        " (target >= 0.8x)"
    )
    if "ours-mlx" in summary:
        print(
            "- prefill, ours / ours with MLX prefill: "
            f"{ratio(ours.get('prefill'), summary['ours-mlx'].get('prefill'))}"
        )
    for label, turns in all_turns.items():
        print(
            f"\nTurn-N TTFT ({label}, cache_key, {turns['turns']} turns, "
            f"{turns['prompt_tokens']}-token prompt at the last turn):"
        )
        print("| | TTFT |\n| --- | --- |")
        print(f"| turn 1 | {fmt(turns['turn1'], ' s', 3)} |")
        print(f"| turns 1-3 (median) | {fmt(turns['first3'], ' s', 3)} |")
        print(f"| turn {turns['turns']}, with KV reuse | {fmt(turns['last'], ' s', 3)} |")
        print(f"| last 3 turns (median), with KV reuse | {fmt(turns['last3'], ' s', 3)} |")
        print(f"| turn {turns['turns']}, no reuse (cold) | {fmt(turns['cold_last'], ' s', 3)} |")
        print(
            f"- turn {turns['turns']} / turn 1 with reuse (medians of 3): "
            f"{ratio(turns['last3'], turns['first3'])} (target <= 1.5x); "
            f"reuse speed-up at turn {turns['turns']}: {ratio(turns['cold_last'], turns['last'])}"
        )
    if rss is not None:
        print(
            f"\nPeak RSS, default engine serving a short and a long chat: {rss:.0f} MB "
            "(target <= 1200 MB)"
        )


# -- main ---------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer rounds/tokens/turns (minutes)")
    ap.add_argument("--rounds", type=int, help="interleaved rounds per measurement")
    ap.add_argument("--decode-tokens", type=int, help="tokens generated per decode run")
    ap.add_argument("--long-tokens", type=int, default=1500, help="long prompt length (tokens)")
    ap.add_argument("--turns", type=int, help="turns in the turn-N TTFT chat")
    ap.add_argument("--no-stock", action="store_true", help="skip stock mlx-lm")
    ap.add_argument("--no-llama", action="store_true", help="skip llama.cpp")
    ap.add_argument("--no-rss", action="store_true", help="skip the peak-RSS child process")
    ap.add_argument(
        "--compare-prefill",
        action="store_true",
        help="also time ours with prompt chunks on MLX (the old prefill path)",
    )
    ap.add_argument(
        "--mlx-prefill", action="store_true", help="run ours with prompt chunks on MLX only"
    )
    ap.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.rss_child:
        rss_child(args.long_tokens)
        return
    quick = args.quick
    rounds = args.rounds or (2 if quick else 3)
    n_dec = args.decode_tokens or (32 if quick else 64)
    turns_n = args.turns or (12 if quick else 50)

    print(f"BLAS: {BLAS}; device: {mx.default_device()}; mode: {'quick' if quick else 'full'}")
    worker = MLXWorker(name="mlx-bench")
    engine = load_engine(Settings(model=None, context_window=None), worker)
    print(f"ours: {engine.info.get('prepare')}; prefill_step_size={engine.prefill_step_size}")
    tok = engine.tokenizer
    path = default_gguf_path()
    short_ids = engine.encode_prompt(SHORT_CHAT)
    long_msgs = long_chat(engine, args.long_tokens)
    long_ids = engine.encode_prompt(long_msgs)

    labels: dict[str, str] = {}
    short_fns: dict[str, Callable[[], Run]] = {}
    long_fns: dict[str, Callable[[], Run]] = {}
    res = Results()
    if not args.no_llama:
        lrun, desc = llama_runner(path, n_ctx=max(4096, len(long_ids) + 256))
        print(f"llama.cpp: {desc}")
        if lrun is not None:
            labels["llama"] = f"llama.cpp ({desc})"
            short_fns["llama"] = lambda: lrun(short_ids, n_dec)
            long_fns["llama"] = lambda: lrun(long_ids, n_dec)
    stock_long_ids = long_ids
    if not args.no_stock:
        stock = worker.call(lambda: load_gguf(path).model)
        srun = stock_runner(worker, stock, tok)
        labels["stock"] = "stock mlx-lm, Q4 as loaded"
        short_fns["stock"] = lambda: srun(short_ids, max(8, n_dec // 2))
        # The Q4 path prefills at ~7 tok/s: in quick mode time a shorter prompt, once.
        stock_long_ids = long_ids if not quick else long_ids[:256]
        long_fns["stock"] = lambda: srun(stock_long_ids, 1)
        if not quick:
            from app.llm.cpu_fast import prepare_for_cpu

            f32 = worker.call(lambda: load_gguf(path).model)
            worker.call(lambda: prepare_for_cpu(f32, numpy_decode=False))
            frun = stock_runner(worker, f32, tok)
            labels["f32"] = "stock mlx-lm, dequantized float32"
            short_fns["f32"] = lambda: frun(short_ids, n_dec)
            long_fns["f32"] = lambda: frun(long_ids, n_dec)
    numpy_prefill = not args.mlx_prefill
    orun = ours_runner(engine, numpy_prefill)
    labels["ours"] = "ours (MLXEngine)" + ("" if numpy_prefill else ", MLX prefill")
    short_fns["ours"] = lambda: orun(SHORT_CHAT, n_dec, None)
    long_fns["ours"] = lambda: orun(long_msgs, n_dec, None)
    if args.compare_prefill and numpy_prefill:
        mrun = ours_runner(engine, numpy_prefill=False)
        labels["ours-mlx"] = "ours (MLXEngine), MLX prefill (old path)"
        short_fns["ours-mlx"] = lambda: mrun(SHORT_CHAT, n_dec, None)
        long_fns["ours-mlx"] = lambda: mrun(long_msgs, n_dec, None)
    for name in long_fns:
        res.long_tokens[name] = len(stock_long_ids) if name == "stock" else len(long_ids)

    for fn in short_fns.values():  # warm-up: first-call costs (allocations, thread pools)
        fn()
    for r in range(rounds):
        for name, fn in short_fns.items():
            res.add(res.short, name, fn())
        for name, fn in long_fns.items():
            if name == "stock" and r > 0:
                continue  # minutes per run: once is enough to show the gap
            res.add(res.long, name, fn())
        print(f"round {r + 1}/{rounds} done", flush=True)
    all_turns = {labels["ours"]: measure_turns(engine, turns_n, 12, numpy_prefill)}
    if "ours-mlx" in labels:
        all_turns[labels["ours-mlx"]] = measure_turns(engine, turns_n, 12, numpy_prefill=False)
    use_numpy_prefill(engine, numpy_prefill)
    rss = None if args.no_rss else measure_rss(args.long_tokens)
    report(res, labels, all_turns, rss)
    cmd = " ".join(shlex.quote(a) for a in sys.argv[1:])
    print(f"\nCommand: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/engine.py {cmd}".rstrip())
    print(f"Machine: {os.cpu_count()} CPUs, load average at the end {os.getloadavg()[0]:.1f}")
    worker.shutdown()


if __name__ == "__main__":
    main()
