"""The answer benchmark's replies and tables (benchmarks/answers.py): what one reply scored, and
the Markdown tables of a run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from benchmarks import answer_scoring as sc


@dataclass
class Reply:
    row: str
    question: str
    reply: str
    prompt_tokens: int
    score: dict[str, Any] = field(default_factory=dict)


def locomo_table(replies: Sequence[Reply], labels: Sequence[str], oracle_row: str) -> str:
    head = (
        "| context | n | F1 | oracle ratio | gold in reply | evidence in context | multi-hop | "
        "temporal | open | single-hop | leaks | repeats | loops | prompt tokens |"
    )
    rows = [head, "|---|" + "---|" * 13]
    by_row = {row: [r for r in replies if r.row == row] for row in labels}
    oracle = float(np.mean([r.score["f1"] for r in by_row.get(oracle_row, [])] or [np.nan]))
    for row, rs in by_row.items():
        if not rs:
            continue
        f1 = float(np.mean([r.score["f1"] for r in rs]))
        ratio = f1 / oracle if oracle > 0 else float("nan")  # an oracle at 0 or not asked
        cats = [
            np.mean([r.score["f1"] for r in rs if r.score["category"] == c] or [np.nan])
            for c in (1, 2, 3, 4)
        ]
        rows.append(
            f"| {row} | {len(rs)} | {f1:.3f} | {ratio:.2f} | "
            f"{np.mean([r.score['contains'] for r in rs]):.3f} | "
            f"{evidence(rs)} | "
            + " | ".join(f"{c:.3f}" for c in cats)
            + f" | {sum(r.score['leak'] for r in rs)} | {sc.repeats([r.reply for r in rs])} | "
            f"{sum(r.score['loops'] for r in rs)} | "
            f"{np.mean([r.prompt_tokens for r in rs]):.0f} |"
        )
    return "\n".join(rows)


def evidence(replies: Sequence[Reply]) -> str:
    """The mean share of gold turns shown, "-" where no reply measured it."""
    shares = [r.score["evidence"] for r in replies if not np.isnan(r.score.get("evidence", np.nan))]
    return f"{np.mean(shares):.3f}" if shares else "-"


def planted_table(by_language: dict[str, Sequence[Reply]], labels: Sequence[str]) -> str:
    rows = [
        "| context | English: reply names the fact | Korean | leaks | repeats | loops |",
        "|---|---|---|---|---|---|",
    ]
    for row in labels:
        cells, leaks, reps, loops = [], 0, 0, 0
        for replies in by_language.values():
            rs = [r for r in replies if r.row == row]
            cells.append(f"{sum(r.score['named'] for r in rs)}/{len(rs)}")
            leaks += sum(r.score["leak"] for r in rs)
            reps += sc.repeats([r.reply for r in rs])
            loops += sum(r.score["loops"] for r in rs)
        rows.append(f"| {row} | " + " | ".join(cells) + f" | {leaks} | {reps} | {loops} |")
    return "\n".join(rows)
