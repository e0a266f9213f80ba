"""The throughput benchmark's pure helpers: percentiles, the event-stream parser, the per-request
tally of a streamed chat completion and the tables (no server, no model)."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from benchmarks.throughput import (
    Run,
    SseParser,
    Tally,
    detail,
    parse_streams,
    percentile,
    prompt_of,
    sse_data,
    table,
)


def chunk(content: str | None = None, usage: int | None = None) -> str:
    body: dict[str, object] = {"object": "chat.completion.chunk", "choices": []}
    if content is not None:
        body["choices"] = [{"index": 0, "delta": {"content": content}, "finish_reason": None}]
    if usage is not None:
        body["usage"] = {"prompt_tokens": 9, "completion_tokens": usage, "total_tokens": 9 + usage}
    return json.dumps(body)


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert percentile([4.0], 95) == 4.0
    assert percentile(list(map(float, range(101))), 95) == 95.0
    assert math.isnan(percentile([], 50))


def test_sse_data_yields_each_events_payload() -> None:
    lines = [": keep-alive", 'data: {"a": 1}', "", "", "event: x", "data: 1", "data: 2", ""]
    assert list(sse_data([*lines, "data: [DONE]"])) == ['{"a": 1}', "1\n2", "[DONE]"]
    p = SseParser()
    assert p.line("data:{}") is None  # no space after the colon is fine too
    assert p.line("") == "{}"
    assert p.end() is None


def test_tally_of_a_stream_with_a_usage_chunk() -> None:
    events = [
        chunk(""),  # the role chunk: empty content is not a first token
        chunk("Once"),
        chunk(" upon"),
        json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]}),
        chunk(usage=7),
        "[DONE]",
    ]
    t = Tally(start=10.0)
    for i, data in enumerate(events):
        t.feed(data, now=10.0 + i)
    assert t.ttft == 1.0  # the first non-empty delta, not the role chunk
    assert t.deltas == 2 and "".join(t.text) == "Once upon"
    assert t.tokens == 7  # the server's count wins over counted deltas
    assert t.done and t.error is None


def test_tally_counts_deltas_without_usage_and_records_errors() -> None:
    t = Tally(start=0.0)
    for data in (chunk("a"), chunk("b"), chunk("c"), "[DONE]"):
        t.feed(data, now=0.5)
    assert t.tokens == 3 and t.ttft == 0.5
    bad = Tally(start=0.0)
    bad.feed(json.dumps({"error": {"message": "boom", "type": "server_error"}}), now=1.0)
    assert bad.error is not None and "boom" in bad.error and bad.ttft is None
    junk = Tally(start=0.0)
    junk.feed("not json", now=1.0)
    assert junk.error is not None


def test_run_aggregates_ok_requests_only() -> None:
    a, b, c = Tally(0.0, first=0.2), Tally(0.0, first=0.4), Tally(0.0, first=0.1)
    a.usage_tokens, b.usage_tokens, c.usage_tokens = 100, 60, 50
    c.error = "HTTP 500"
    run = Run("memento", 2, wall=4.0, requests=[a, b, c])
    assert run.tokens == 160 and run.tok_s == 40.0
    assert run.ttfts == [0.2, 0.4] and run.errors == ["HTTP 500"]


def test_table_has_a_row_per_n_and_the_ratio() -> None:
    def run(target: str, n: int, tokens: int, wall: float, ttft: float) -> Run:
        t = Tally(0.0, first=ttft, usage_tokens=tokens)
        return Run(target, n, wall=wall, requests=[t])

    runs = {
        ("memento", 1): run("memento", 1, 100, 4.0, 0.3),
        ("llama-server", 1): run("llama-server", 1, 100, 1.0, 0.2),
        ("memento", 4): run("memento", 4, 100, 2.0, 1.0),
    }
    lines = table(runs, [1, 4]).splitlines()
    assert lines[0].startswith("| concurrent streams | Memento aggregate tok/s | TTFT p95 |")
    assert lines[1] == "| --- | --- | --- | --- | --- | --- |"
    assert lines[2] == "| 1 | 25.0 | 0.30 s | 100.0 | 0.20 s | 0.25x |"
    assert lines[3] == "| 4 | 50.0 | 1.00 s | - | - | - |"  # llama-server not run at N=4


def test_detail_row_has_mean_tokens_rss_and_load() -> None:
    t = Tally(0.0, first=0.5, usage_tokens=128)
    run = Run("memento", 1, wall=2.0, requests=[t], peak_rss_kb=800 * 1024, load=1.5)
    run.rss_note = " (cumulative)"
    row = detail([run]).splitlines()[2]
    assert row == (
        "| memento | 1 | 1 | 0 | 128 (128.0) | 64.0 | 0.50 s | 0.50 s | 2.0 s "
        "| 800 MB (cumulative) | 1.50 |"
    )


def test_prompts_are_distinct_within_a_run() -> None:
    for streams in (1, 4, 32, 40):
        prompts = [prompt_of(i, r, streams) for i in range(streams) for r in range(2)]
        assert len(set(prompts)) == len(prompts)
        assert all(p.startswith("Tell me a short story about ") for p in prompts)


def test_parse_streams() -> None:
    assert parse_streams("1,4, 8") == [1, 4, 8]
    with pytest.raises(argparse.ArgumentTypeError):
        parse_streams("0,4")
