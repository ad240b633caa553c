"""Measure reopening a long session: open time, memory growth, first and later assembles.

Builds a 50,000-turn session (synthetic but chat-like: user questions, assistant answers,
tool rounds, a dated system header now and then) in a temporary SQLite file through
``ConversationMemory.add``, waits until it is indexed and summarized, then measures in a
fresh subprocess (imports done first, so only the memory's own work is timed):

- ``ConversationMemory.open`` time (deterministic fake embedder, offline summarizer);
- RSS growth over the open, and the peak RSS growth up to the end of the first assemble
  (``/proc/self/status``; the peak is reset before the open through ``clear_refs``);
- the first ``assemble()`` (no query) and the p50 of 20 later ones.

Targets: open <= 0.5 s, RSS growth <= 100 MB, first assemble <= 50 ms.

Usage::

    .venv/bin/python benchmarks/long_session.py                      # this checkout
    .venv/bin/python benchmarks/long_session.py --before ../main     # side by side

``--before`` names another checkout of the repository (the code before a change): each
measurement alternates between it and this checkout, on the same file.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
REPO_ROOT = SCRIPT.parents[1]
DEFAULT_OUT = REPO_ROOT / "benchmarks/results/long_session.md"
DEFAULT_TURNS = 50_000
DEFAULT_RUNS = 3
LATER_ASSEMBLES = 20
SESSION = "long"
SYSTEM_PROMPT = "You are a helpful assistant. Use what you remember of the conversation."
TARGETS = {"open_s": 0.5, "rss_growth_mb": 100.0, "first_assemble_ms": 50.0}
NOTES = """Reading the table: "before" opens by building a `Turn` (and reading the payload) of every
stored message; "after" reads the turns' outline (schema 3 keeps their tool call ids and
names as columns) and reads messages only for the window a prompt sends, a block the
summarizer folds, or the lines recall quotes. The peak RSS rows include the background
embedding worker loading every stored vector to rebuild its FAISS index, in both. The two
recall rows are the ranking of 50,000 turns for a new user turn (the turn-chunk map read on
the first ranking, BM25 over the query's words in FTS5, vector scores), which this change
does not touch; their spread between runs is the shared machine's.
"""

_TOPICS = (
    "the garden",
    "my sister's wedding",
    "the Lisbon trip",
    "our quarterly budget",
    "the new espresso machine",
    "learning the cello",
    "the marathon training plan",
    "the kitchen renovation",
    "Python type hints",
    "the book club",
    "the dentist appointment",
    "moving to Berlin",
)
_NAMES = ("Ana", "Ben", "Chloe", "Dmitri", "Esther", "Farid", "Grace", "Hiro")
_ASKS = (
    "Can you remind me what we decided about {topic}?",
    "I talked to {name} about {topic} today, what do you think?",
    "What should I do next about {topic}? I have about {n} minutes.",
    "Quick question on {topic}: is {n} too much?",
    "{name} says {topic} will cost {n} euros. Does that sound right?",
)
_ANSWERS = (
    "Last time we agreed that {topic} comes first, and {name} would help on weekends.",
    "I'd start small: spend {n} minutes on {topic} and see how it feels.",
    "That sounds reasonable. {name} knows {topic} well, so ask for a second opinion.",
    "Around {n} is typical for {topic}; anything above that deserves a quote.",
    "Write it down: {topic}, {n} units, follow up with {name} on Friday.",
)


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        topic=rng.choice(_TOPICS), name=rng.choice(_NAMES), n=rng.randint(2, 900)
    )


def _round(rng: random.Random, number: int) -> list[Any]:
    """One round of conversation: a user turn, maybe a tool call, an answer or two."""
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    messages: list[Any] = []
    if number % 150 == 0:  # a new day: a dated segment header
        messages.append(SystemMessage(f"Session on 2024-{number // 4500 % 12 + 1:02d}-01"))
    messages.append(HumanMessage(" ".join(_fill(rng, rng.choice(_ASKS)) for _ in range(2))))
    if number % 5 == 0:  # a tool round
        call = f"call_{number}"
        args = {"query": rng.choice(_TOPICS), "limit": rng.randint(1, 9)}
        messages.append(
            AIMessage("", tool_calls=[{"name": "search_notes", "args": args, "id": call}])
        )
        notes = [
            {"date": f"2024-03-{d:02d}", "note": _fill(rng, rng.choice(_ANSWERS))}
            for d in range(1, 4)
        ]
        messages.append(ToolMessage(json.dumps(notes), tool_call_id=call))
    sentences = rng.randint(1, 4)
    messages.append(AIMessage(" ".join(_fill(rng, rng.choice(_ANSWERS)) for _ in range(sentences))))
    return messages


def conversation(turns: int) -> list[Any]:
    """``turns`` messages: whole rounds, then a user turn and a tool call with its result
    last (an agent resumes after a tool ran: the state a session is reopened in)."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    rng = random.Random(13)
    messages: list[Any] = []
    number = 0
    while True:
        chunk = _round(rng, number)
        if len(messages) + len(chunk) > turns - 3:
            break
        messages += chunk
        number += 1
    while len(messages) < turns - 3:
        messages.append(HumanMessage("ok") if len(messages) % 2 else AIMessage("Noted."))
    call = {"name": "search_notes", "args": {"query": "Lisbon"}, "id": "call_last"}
    return [
        *messages,
        HumanMessage("Find my notes on the Lisbon trip and summarize the plan."),
        AIMessage("", tool_calls=[call]),
        ToolMessage(
            json.dumps([{"date": "2024-03-02", "note": "Flights booked"}]), tool_call_id="call_last"
        ),
    ]


def build(path: str, turns: int) -> float:
    """Store a session of ``turns`` messages, indexed and summarized; return the seconds."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from memory import ConversationMemory

    messages = conversation(turns)
    started = time.perf_counter()
    embedder = DeterministicFakeEmbedding(size=64)
    with ConversationMemory.open(path, session=SESSION, embedder=embedder) as memory:
        for start in range(0, len(messages), 60):
            memory.add(messages[start : start + 60])
            if start % 6_000 == 0:
                print(f"  {start:,} turns", file=sys.stderr, flush=True)
        memory.wait_until_indexed()
        memory.wait_for_summary()
    return time.perf_counter() - started


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure(path: str) -> dict[str, float]:
    """Open the session and assemble (run in a fresh process); return the figures.

    The tokenizer and the store's modules are loaded first and timed apart: a process
    pays for them once, on its first session. Then: open; assemble as an agent resuming
    after a tool result (no recall), at once, then ``LATER_ASSEMBLES`` times once the
    background work the open started is done; then the same after a new user turn
    (recall ranks the history).
    """
    from langchain_core.embeddings import DeterministicFakeEmbedding
    from langchain_core.messages import HumanMessage

    from memory import ConversationMemory
    from memory._tokens import resolve_counter

    embedder = DeterministicFakeEmbedding(size=64)
    gc.collect()
    cold = _rss_kb("VmRSS")
    started = time.perf_counter()
    resolve_counter(None, model=None, margin=None)
    importlib.import_module("stores.sqlite_store")  # imported by the first open
    tokenizer_s = time.perf_counter() - started
    gc.collect()
    with contextlib.suppress(OSError):  # reset the peak RSS (VmHWM) to the current RSS
        Path("/proc/self/clear_refs").write_text("5")
    before = _rss_kb("VmRSS")
    started = time.perf_counter()
    memory = ConversationMemory.open(path, session=SESSION, embedder=embedder)
    open_s = time.perf_counter() - started
    after_open = _rss_kb("VmRSS")
    first_ms = _assemble_ms(memory)
    _settle(memory)
    later_ms = statistics.median(_assemble_ms(memory) for _ in range(LATER_ASSEMBLES))
    memory.add(HumanMessage("Quick question on the Lisbon trip: what did Dmitri say about it?"))
    user_first_ms = _assemble_ms(memory)
    _settle(memory)
    user_later_ms = statistics.median(_assemble_ms(memory) for _ in range(LATER_ASSEMBLES))
    peak = _rss_kb("VmHWM")
    settled = _rss_kb("VmRSS")
    memory.close()
    return {
        "tokenizer_s": tokenizer_s,
        "tokenizer_mb": (before - cold) / 1024,
        "open_s": open_s,
        "rss_growth_mb": (after_open - before) / 1024,
        "peak_growth_mb": (peak - before) / 1024,
        "settled_growth_mb": (settled - before) / 1024,
        "first_assemble_ms": first_ms,
        "later_p50_ms": later_ms,
        "user_first_assemble_ms": user_first_ms,
        "user_later_p50_ms": user_later_ms,
    }


def _assemble_ms(memory: Any) -> float:
    started = time.perf_counter()
    memory.assemble(system=SYSTEM_PROMPT)
    return (time.perf_counter() - started) * 1000


def _settle(memory: Any) -> None:
    """Wait for the background work an open or an add starts (embedding, summaries)."""
    memory.wait_until_indexed(timeout=120)
    memory.wait_for_summary(timeout=120)


def _measure_in(checkout: Path, path: str) -> dict[str, float]:
    """Measure a copy of the session (the run adds a turn) with ``checkout``'s code.

    The copy is opened once first, untimed but reported: a release whose schema is newer
    than the file's upgrades it then, once.
    """
    env = dict(os.environ, PYTHONPATH=str(checkout))
    with tempfile.TemporaryDirectory() as directory:
        copy = os.path.join(directory, "copy.db")
        shutil.copy2(path, copy)
        if os.path.isdir(path + ".faiss"):
            shutil.copytree(path + ".faiss", copy + ".faiss")
        figures: dict[str, float] = {}
        for flag in ("--upgrade", "--measure"):
            done = subprocess.run(
                [sys.executable, str(SCRIPT), flag, copy],
                env=env,
                cwd=checkout,
                capture_output=True,
                text=True,
                check=True,
            )
            figures.update(json.loads(done.stdout.strip().splitlines()[-1]))
    return figures


def upgrade(path: str) -> dict[str, float]:
    """Open the store once (migrating its schema, if older); return the seconds taken."""
    import stores.sqlite_store
    from stores import open_store

    assert stores.sqlite_store  # imported before timing
    started = time.perf_counter()
    open_store(path).close()
    return {"upgrade_s": time.perf_counter() - started}


_ROWS = (
    ("open_s", "open (s)", "{:.3f}"),
    ("rss_growth_mb", "RSS growth over open (MB)", "{:.0f}"),
    ("first_assemble_ms", "first assemble, agent resuming after a tool result (ms)", "{:.1f}"),
    (
        "later_p50_ms",
        f"p50 of {LATER_ASSEMBLES} later assembles, background work done (ms)",
        "{:.1f}",
    ),
    ("user_first_assemble_ms", "first assemble after a new user turn: recall (ms)", "{:.1f}"),
    ("user_later_p50_ms", f"p50 of {LATER_ASSEMBLES} later assembles, same turn (ms)", "{:.1f}"),
    ("peak_growth_mb", "peak RSS growth, open to background work settled (MB)", "{:.0f}"),
    ("settled_growth_mb", "RSS growth once background work settled (MB)", "{:.0f}"),
    ("tokenizer_s", "tokenizer and store modules, once per process, before open (s)", "{:.3f}"),
    ("tokenizer_mb", "their RSS (MB)", "{:.0f}"),
    ("upgrade_s", "first open of the file by this release: schema upgrade, once (s)", "{:.3f}"),
)


def report(
    args: argparse.Namespace,
    build_s: float | None,
    load: tuple[float, float],
    results: dict[str, list[dict[str, float]]],
) -> str:
    """Render the results as Markdown (medians over the runs)."""
    columns = list(results)
    lines = [
        "# Reopening a long session",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs, shared: load average "
        f"{load[0]:.1f} at the start, {load[1]:.1f} at the end",
        f"- python: {platform.python_version()}",
        f"- session: {args.turns:,} turns, "
        + (f"built in {build_s:.0f} s " if build_s is not None else "an existing file ")
        + "(SQLite, DeterministicFakeEmbedding(size=64), offline extractive summarizer, "
        "default budget), written by the first checkout's code",
        f"- command: `python benchmarks/long_session.py {' '.join(args.argv)}`".rstrip(),
        "- checkouts: " + ", ".join(f"{name} = `{path}`" for name, path in args.checkouts.items()),
        f"- medians of {args.runs} runs, each in a fresh process, alternating checkouts",
        "",
        "| measure | " + " | ".join(columns) + " | target |",
        "|---|" + "---:|" * (len(columns) + 1),
    ]
    for key, label, style in _ROWS:
        cells = [style.format(statistics.median(r[key] for r in results[c])) for c in columns]
        target = TARGETS.get(key)
        lines.append(
            f"| {label} | " + " | ".join(cells) + f" | {'<= ' + str(target) if target else ''} |"
        )
    return "\n".join(lines) + "\n\n" + NOTES


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=DEFAULT_TURNS)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--before", type=Path, help="another checkout, measured as 'before'")
    parser.add_argument("--db", help="reuse (or create) this SQLite file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--upgrade", help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Build the session, measure each checkout, write the report."""
    args = parse_args(argv)
    if args.measure or args.upgrade:
        print(json.dumps(measure(args.measure) if args.measure else upgrade(args.upgrade)))
        return 0
    if args.build:
        print(json.dumps({"build_s": build(args.build, args.turns)}))
        return 0
    checkouts = {"after": REPO_ROOT}
    if args.before is not None:
        checkouts = {"before": args.before.resolve(), **checkouts}
    with tempfile.TemporaryDirectory() as directory:
        path = args.db or os.path.join(directory, "long.db")
        build_s = None
        if not os.path.exists(path):  # written by the oldest code, as a real upgrade finds it
            print(f"building {args.turns:,} turns in {path}...", file=sys.stderr, flush=True)
            done = subprocess.run(
                [sys.executable, str(SCRIPT), "--build", path, "--turns", str(args.turns)],
                env=dict(os.environ, PYTHONPATH=str(next(iter(checkouts.values())))),
                capture_output=True,
                text=True,
                check=True,
            )
            build_s = json.loads(done.stdout.strip().splitlines()[-1])["build_s"]
        load = os.getloadavg()[0]
        results: dict[str, list[dict[str, float]]] = {name: [] for name in checkouts}
        for run in range(args.runs):
            for name, checkout in checkouts.items():
                figures = _measure_in(checkout, path)
                print(f"run {run + 1} {name}: {figures}", file=sys.stderr, flush=True)
                results[name].append(figures)
        args.checkouts = checkouts
        text = report(args, build_s, (load, os.getloadavg()[0]), results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
