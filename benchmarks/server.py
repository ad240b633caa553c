"""Measure one ``Engine`` serving many sessions: memory, threads, files, latency, stalls.

Issue 13's server benchmark, with the bundled MiniLM and the default offline summarizer,
in SQLite files in a temporary directory. Each phase runs in a fresh subprocess, so its
readings (``/proc/self``) are its own:

- ``threads``: 1,000 sessions x 20 exchanges through one engine from 8 threads (each
  takes the next session and runs its conversation), then 10,000 further requests on
  random existing sessions, with RSS before and after ("no growth after warm-up");
- ``asyncio``: the same sessions from 200 asyncio tasks (``aadd``/``aassemble``), with a
  ticker task that sleeps 1 ms and records how late it wakes (the event loop's stalls);
- ``long-build``: a 50,000-turn session written through an engine (indexing and summaries
  given ``--index-wait`` seconds to catch up), then ``long-open``: in a fresh process
  (MiniLM already loaded, as in a running server) ``Engine(path)`` + ``open``, RSS, and
  the first ``assemble``.

Usage::

    .venv/bin/python benchmarks/server.py                 # writes results/server.md
    .venv/bin/python benchmarks/server.py --quick --out /tmp/server_quick.md
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_load import (
    BUDGET,
    MODEL,
    TOOL_EVERY,
    GCPauses,
    ProcReading,
    Recorder,
    exchange,
    percentile,
    read_proc,
    thread_names,
    trimmed,
)
from server_report import report

from memory import ConversationMemory, Engine
from memory._embed import MiniLMEmbeddings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks/results/server.md"
SYSTEM = "You are a helpful operations assistant. Use what you remember of the conversation."
LONG_SESSION = "long-session"
TICK_SECONDS = 0.001
QUICK = {"sessions": 40, "turns": 6, "further": 300, "long_turns": 1_500, "index_wait": 5.0}
Result = dict[str, Any]
_T = TypeVar("_T")


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000


def _timed(samples: list[float], call: Callable[[], _T]) -> _T:
    start = time.perf_counter()
    result = call()
    samples.append(_ms(start))
    return result


def _open(engine: Engine, session: str, rec: Recorder | None = None) -> ConversationMemory:
    samples = rec.open_ms if rec is not None else []
    return _timed(samples, lambda: engine.open(session=session, budget=BUDGET, model=MODEL))


def run_exchange(
    memory: ConversationMemory, number: int, rng: random.Random, rec: Recorder
) -> None:
    """One request cycle: user message, prompt, (tool round, prompt), reply; calls timed."""
    turn = exchange(rng, number)
    _timed(rec.add_ms, lambda: memory.add(turn.user))
    _timed(rec.assemble_ms, lambda: memory.assemble(system=SYSTEM))
    if turn.tool_round:
        _timed(rec.add_ms, lambda: memory.add(turn.tool_round))
        _timed(rec.assemble_ms, lambda: memory.assemble(system=SYSTEM))
    _timed(rec.add_ms, lambda: memory.add(turn.reply))
    rec.sample()


async def arun_exchange(
    memory: ConversationMemory, number: int, rng: random.Random, rec: Recorder
) -> None:
    """``run_exchange`` through the async API; each await is timed (queueing included)."""
    turn = exchange(rng, number)
    for messages, prompt in ((turn.user, True), (turn.tool_round, True), (turn.reply, False)):
        if not messages:
            continue
        start = time.perf_counter()
        await memory.aadd(messages)
        rec.add_ms.append(_ms(start))
        if prompt:
            start = time.perf_counter()
            await memory.aassemble(system=SYSTEM)
            rec.assemble_ms.append(_ms(start))
    rec.sample()


def warm_up() -> Result:
    """Load MiniLM and the token counter, and run each code path once, as a server has."""
    before = read_proc().rss_mb
    start = time.perf_counter()
    MiniLMEmbeddings().embed_query("warm up")  # the process's one copy of the model
    with Engine(":memory:") as engine:
        memory = _open(engine, "warm-up")
        run_exchange(memory, TOOL_EVERY - 1, random.Random(0), Recorder(0))
    return {"warm_up_s": time.perf_counter() - start, "warm_up_rss_mb": read_proc().rss_mb - before}


def settle() -> ProcReading:
    """Collect garbage and read the process."""
    gc.collect()
    return read_proc()


def phase_threads(args: argparse.Namespace) -> Result:
    """Sessions from ``--threads`` threads, then ``--further`` requests on old sessions."""
    engine = Engine(args.db)
    result = warm_up()
    rec, after = Recorder(args.sessions), Recorder(0)
    numbers, requests, extra = itertools.count(), itertools.count(), itertools.count()

    def conversations() -> None:
        while (n := next(numbers)) < args.sessions:
            memory, rng = _open(engine, f"user-{n}", rec), random.Random(n)
            for number in range(args.turns):
                run_exchange(memory, number, rng, rec)
            memory.close()
            rec.session_done()

    def further() -> None:
        rng = random.Random(threading.get_ident())
        while next(requests) < args.further:
            memory = _open(engine, f"user-{rng.randrange(args.sessions)}", after)
            run_exchange(memory, args.turns + next(extra), rng, after)
            memory.close()

    with GCPauses() as pauses:
        result |= _in_threads(conversations, args.threads) | rec.summary()
    result |= pauses.summary()
    before = settle()
    result |= {"further_wall_s": _in_threads(further, args.threads)["wall_s"]}
    after_reading = settle()
    result |= {"further_rss_before_mb": before.rss_mb, "further_rss_after_mb": after_reading.rss_mb}
    result["further_anon_growth_mb"] = after_reading.anon_rss_mb - before.anon_rss_mb
    result |= {f"further_{k}": v for k, v in after.summary().items() if k.endswith("_ms")}
    result["end_trimmed_rss_mb"] = trimmed().rss_mb
    result |= {"client_threads": args.threads + 1, "sessions_held": engine.sessions_held}
    result["thread_names"] = thread_names()
    engine.close()
    return result


def _in_threads(target: Callable[[], None], count: int) -> Result:
    start = time.perf_counter()
    threads = [threading.Thread(target=target, name=f"client-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"wall_s": time.perf_counter() - start}


async def _ticker(lateness: list[float], stop: asyncio.Event) -> None:
    while not stop.is_set():
        start = time.perf_counter()
        await asyncio.sleep(TICK_SECONDS)
        lateness.append(_ms(start) - TICK_SECONDS * 1000)


async def _async_phase(args: argparse.Namespace) -> Result:
    engine = Engine(args.db)
    result = warm_up()
    rec = Recorder(args.sessions)
    numbers = itertools.count()
    lateness: list[float] = []
    stop = asyncio.Event()

    async def conversations() -> None:
        while (n := next(numbers)) < args.sessions:
            start = time.perf_counter()
            memory = await engine.aopen(session=f"user-{n}", budget=BUDGET, model=MODEL)
            rec.open_ms.append(_ms(start))
            rng = random.Random(n)
            for number in range(args.turns):
                await arun_exchange(memory, number, rng, rec)
            memory.close()
            rec.session_done()

    start = time.perf_counter()
    ticker = asyncio.create_task(_ticker(lateness, stop))
    with GCPauses() as pauses:
        await asyncio.gather(*(conversations() for _ in range(args.tasks)))
    result["wall_s"] = time.perf_counter() - start
    result |= pauses.summary()
    stop.set()
    await ticker
    result |= rec.summary() | {"client_threads": 1, "sessions_held": engine.sessions_held}
    result["end_trimmed_rss_mb"] = trimmed().rss_mb
    result["thread_names"] = thread_names()
    result |= {"stall_p99_ms": percentile(lateness, 0.99), "stall_max_ms": max(lateness)}
    result |= {"stall_p50_ms": percentile(lateness, 0.5), "ticks": len(lateness)}
    engine.close()
    return result


def phase_asyncio(args: argparse.Namespace) -> Result:
    """Sessions from ``--tasks`` asyncio tasks with a 1 ms ticker watching the loop."""
    return asyncio.run(_async_phase(args))


def phase_long_build(args: argparse.Namespace) -> Result:
    """Write a ``--long-turns`` session through an engine, one exchange per ``add``."""
    engine = Engine(args.db)
    memory, rng = _open(engine, LONG_SESSION), random.Random(7)
    start, stored = time.perf_counter(), 0
    for number in itertools.count():
        if stored >= args.long_turns:
            break
        stored += len(memory.add(exchange(rng, number).messages))
        memory.assemble(system=SYSTEM)
    built_s = time.perf_counter() - start
    indexed = memory.wait_until_indexed(args.index_wait)
    summarized = memory.wait_for_summary(max(0.1, args.index_wait - time.perf_counter() + start))
    result = {"turns": stored, "exchanges": number, "build_s": built_s, "indexed": indexed}
    result |= {"summarized": summarized, "history_tokens": memory.history_tokens}
    engine.close()
    with sqlite3.connect(f"file:{args.db}?mode=ro", uri=True) as conn:
        chunks, vectors = conn.execute(
            "SELECT count(*), count(vector) FROM chunks WHERE session = ?", (LONG_SESSION,)
        ).fetchone()
    return result | {
        "chunks": chunks,
        "vectors": vectors,
        "db_mb": os.path.getsize(args.db) / 2**20,
    }


def phase_long_open(args: argparse.Namespace) -> Result:
    """Reopen the long session in this fresh process: open time, RSS, first assemble."""
    result = warm_up()
    before = settle()
    start = time.perf_counter()
    engine = Engine(args.db)
    memory = _open(engine, LONG_SESSION)
    result["open_s"] = time.perf_counter() - start
    result["open_rss_mb"] = read_proc().rss_mb - before.rss_mb
    start = time.perf_counter()
    prompt = memory.assemble(system=SYSTEM)
    result["first_assemble_ms"] = _ms(start)
    result["open_assemble_rss_mb"] = read_proc().rss_mb - before.rss_mb
    start = time.perf_counter()
    memory.assemble(system=SYSTEM)
    result |= {"second_assemble_ms": _ms(start), "prompt_tokens": prompt.tokens}
    engine.close()
    return result


PHASES: dict[str, Callable[[argparse.Namespace], Result]] = {
    "threads": phase_threads,
    "asyncio": phase_asyncio,
    "long-build": phase_long_build,
    "long-open": phase_long_open,
}


def run_phase(name: str, db: Path, argv: Sequence[str]) -> Result:
    """Run one phase in a fresh interpreter; return what it measured."""
    print(f"[{datetime.now():%H:%M:%S}] phase {name}...", file=sys.stderr, flush=True)
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        command = [sys.executable, __file__, *argv, "--phase", name, "--db", str(db)]
        subprocess.run([*command, "--phase-out", out.name], check=True)
        data: Result = json.loads(Path(out.name).read_text(encoding="utf-8"))
    print(f"  {json.dumps(data)}", file=sys.stderr, flush=True)
    return data


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (``--quick`` shrinks every size for a smoke run)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=1_000)
    parser.add_argument("--turns", type=int, default=20, help="exchanges per session")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tasks", type=int, default=200, help="asyncio tasks")
    parser.add_argument("--further", type=int, default=10_000, help="requests after warm-up")
    parser.add_argument("--long-turns", type=int, default=50_000, help="stored messages")
    parser.add_argument("--index-wait", type=float, default=180.0, help="seconds, long build")
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--phase-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        for name, value in QUICK.items():
            setattr(args, name, min(getattr(args, name), value))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run every phase in its own process, print the report and write it to ``--out``."""
    args = parse_args(argv)
    if args.phase is not None:
        data = PHASES[args.phase](args)
        args.phase_out.write_text(json.dumps(data), encoding="utf-8")
        return 0
    forwarded = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--check"]
    results: dict[str, Result] = {}
    with tempfile.TemporaryDirectory(prefix="attic-server-") as tmp:
        for name in PHASES:
            db = Path(tmp) / ("long.db" if name.startswith("long") else f"{name}.db")
            results[name] = run_phase(name, db, forwarded)
    text, passed = report(args, results)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
