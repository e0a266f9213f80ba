"""In-process profile of the store side of a scope recall (issue 19): Store.scope_histories over
one user's 100 sessions x 100 messages, asked from a new session, warm (nothing changed since
the last read), against one session's warm Store.history, and against the read as it was
before (kept below: scope_sessions() then HistoryCache.read_many(), two read transactions).

The three are timed interleaved in one process, so a shared machine's load hits them alike:
read the result as ratios, never as absolute numbers across runs.

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/scope_read_profile.py \
        [--reps 300] [--sessions 100] [--messages 100] [--pg URL] [--analyze] [--profile]

--pg runs it on PostgreSQL as well, in a fresh schema of that database (dropped afterwards),
e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test. A freshly filled PostgreSQL has no
planner statistics until autovacuum's ANALYZE; --analyze runs one first (the read before this
change planned its grouped count far worse without them: ~22 ms against ~8 ms).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# run as a script, this folder comes first on the path, and its memory.py hides the package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]

from sqlalchemy import text  # noqa: E402

from app.store.records import NewMessage  # noqa: E402
from app.store.relationships import ScopeHistory  # noqa: E402
from app.store.repo import Store  # noqa: E402


def legacy_scope_histories(store: Store, user_id: str, exclude: str) -> list[ScopeHistory]:
    """Store.scope_histories before ScopeReader (commit 072511b), for the comparison."""
    sessions = store.scope_sessions(user_id, "pippa", "user", exclude)
    with store._read() as db:
        histories = store.history_cache.read_many(db, [s.id for s, _ in sessions])
    out = []
    for record, forgotten in sessions:
        turns = histories.get(record.id, [])
        if forgotten:
            turns = [m for m in turns if m.id not in forgotten]
        out.append(ScopeHistory(record, turns))
    return out


def fill(store: Store, sessions: int, messages: int) -> tuple[str, str, str]:
    """One user's sessions of `messages` complete turns each; the user, one of them, a new one."""
    user = store.get_or_create_user("bench").id
    first = ""
    for i in range(sessions):
        sid = store.create_session(user, "pippa", "hybrid").id
        first = first or sid
        batch = [
            NewMessage(role="user" if j % 2 == 0 else "assistant", content=f"turn {i}.{j} " * 20)
            for j in range(messages)
        ]
        store.add_messages(user, sid, batch)
    return user, first, store.create_session(user, "pippa", "hybrid").id


def pct(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(len(xs) * q))]


def run(store: Store, args: argparse.Namespace) -> None:
    user, one, new = fill(store, args.sessions, args.messages)
    if args.analyze:  # the planner's statistics, as autovacuum would have gathered by now
        with store._tx() as db:
            db.execute(text("ANALYZE"))
    cases: dict[str, Callable[[], object]] = {
        "scope_histories (new)": lambda: store.scope_histories(user, "pippa", "user", new),
        "scope_histories (before)": lambda: legacy_scope_histories(store, user, new),
        "history (one session)": lambda: store.history(user, one),
    }
    new_out = store.scope_histories(user, "pippa", "user", new)
    old_out = legacy_scope_histories(store, user, new)
    assert [(h.session, h.history) for h in new_out] == [(h.session, h.history) for h in old_out]
    for f in cases.values():  # warm: every cache filled
        f()
    times: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for rep in range(args.reps):
        for name in names[rep % 3 :] + names[: rep % 3]:  # rotated: no case always runs first
            t = time.perf_counter()
            cases[name]()
            times[name].append((time.perf_counter() - t) * 1e3)
    one_p50 = statistics.median(times["history (one session)"])
    old_p50 = statistics.median(times["scope_histories (before)"])
    print(
        f"\n{store.backend}: {args.sessions} sessions x {args.messages} messages, {args.reps} reps"
    )
    print(f"{'':28}{'p50 ms':>9}{'p95 ms':>9}{'/ one':>8}{'/ before':>10}")
    for name, xs in times.items():
        p50 = statistics.median(xs)
        print(f"{name:28}{p50:9.2f}{pct(xs, 0.95):9.2f}{p50 / one_p50:8.2f}x{p50 / old_p50:9.2f}x")
    if args.profile:
        for name in ("scope_histories (new)", "scope_histories (before)"):
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(100):
                cases[name]()
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
            print(f"\n--- {name}, 100 reads, by own time ---\n{out.getvalue()}")


@contextmanager
def pg_schema(url: str) -> Iterator[str]:
    import psycopg

    schema = "memento_bench_" + secrets.token_hex(6)
    raw = url.replace("+psycopg", "")
    with psycopg.connect(raw, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(raw, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--sessions", type=int, default=100)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--pg", help="also on this PostgreSQL database (a fresh schema of it)")
    p.add_argument("--analyze", action="store_true", help="ANALYZE the filled database first")
    p.add_argument("--profile", action="store_true", help="cProfile 100 reads of each scope read")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'memento.db'}")
        try:
            run(store, args)
        finally:
            store.close()
    if args.pg:
        with pg_schema(args.pg) as url:
            store = Store(url)
            try:
                run(store, args)
            finally:
                store.close()


if __name__ == "__main__":
    main()
