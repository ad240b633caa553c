"""Measure how ``add`` and ``assemble`` latency grows with the length of a session.

Replays the turns of the LoCoMo dev conversations (``../shared/data/locomo/locomo_dev.json``,
repeated as needed) into sessions of 100, 1,000 and 10,000 turns, one ``add`` per turn,
in a SQLite file (WAL, on disk) and in ``":memory:"``. Once a session reaches its size,
``assemble`` is timed under a budget of 4,000 prompt tokens. Reopening the largest file
session is timed too. Targets: ``assemble`` p50 at the largest size within 1.5x of p50 at
the smallest (cost stays flat as history grows), and at most 2 ms at the largest size.

Usage::

    .venv/bin/python benchmarks/assembly_latency.py
    .venv/bin/python benchmarks/assembly_latency.py --sizes 100 1000 --repeats 50 --out /tmp/x.md

The data is not part of the repository; without it the script says so and exits with 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import shlex
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from itertools import cycle, islice
from pathlib import Path

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from memory import Budget, ConversationMemory
from memory._embed import MiniLMEmbeddings
from memory._options import DEFAULT_RECALL_SHARE

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO_ROOT / ".." / "shared/data/locomo/locomo_dev.json"
DEFAULT_OUT = REPO_ROOT / "benchmarks/results/assembly_latency.md"
DEFAULT_SIZES = (100, 1_000, 10_000)
DEFAULT_REPEATS = 200
DEFAULT_WARMUP = 10
DEFAULT_ROUNDS = 10
DEFAULT_REOPENS = 5
DEFAULT_PROMPT_TOKENS = 4_000
DEFAULT_MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "You are a warm, attentive friend. Use what you remember of the conversation."
SESSION = "bench"
STORES = ["file", ":memory:"]  # set from --stores
TARGET_P50_MS = 2.0
TARGET_FLATNESS = 1.5
TARGET_RECALL_P50_MS = 5.0
"""With ``--query`` (recall on): assemble p50 at the largest size (50,000 turns)."""
FLATNESS_SIZE = 10_000
"""With ``--query``: the size whose p50 is held to ``TARGET_FLATNESS`` x the smallest's."""
QUERY: list[str | None] = [None]  # set from --query
SEARCH_REPEATS = 100
RECALL_LIMIT = 450
"""Turns the search ranks, as a 4,000-token lookup asks (3,600 tokens / 8 per turn)."""
_SESSION_KEY = re.compile(r"session_(\d+)")
_PACKAGES = ("context-attic", "langchain-core", "tiktoken", "sqlite-utils")

# Deterministic fake embeddings by default: this benchmark times assembly itself (window,
# summary, recall search over the index), not the MiniLM model; locomo.py reports the real
# model. ``--embedder minilm`` embeds with it (384-d: what vector search costs in use; a
# 50,000-turn session then takes ~30 minutes to build on 2 cores).
EMBEDDER: Embeddings = DeterministicFakeEmbedding(size=64)
RECALL_SHARE = [DEFAULT_RECALL_SHARE]  # set from --recall-share


@dataclass(frozen=True, slots=True)
class SizeResult:
    """Timings of one session size in one store (nanoseconds)."""

    store: str
    turns: int
    history_tokens: int
    add_ns: list[int]
    assemble_ns: list[int]
    prompt_tokens: int
    turns_kept: int
    build_s: float
    search_ns: list[int]


@dataclass(frozen=True, slots=True)
class ReopenResult:
    """Timings of reopening an existing file session (nanoseconds)."""

    turns: int
    open_ns: list[int]
    first_assemble_ns: list[int]


def load_turns(path: Path) -> list[dict[str, str]]:
    """Read LoCoMo conversations as OpenAI chat dicts, speaker_a as user, in order.

    Args:
        path: The LoCoMo JSON file (a list of samples with a ``conversation``).

    Returns:
        Every turn of every conversation, sessions in numeric order.
    """
    samples = json.loads(path.read_text(encoding="utf-8"))
    turns: list[dict[str, str]] = []
    for sample in samples:
        conversation = sample["conversation"]
        numbers = sorted(
            int(match.group(1))
            for key in conversation
            if (match := _SESSION_KEY.fullmatch(key)) is not None
        )
        for number in numbers:
            for turn in conversation[f"session_{number}"]:
                role = "user" if turn["speaker"] == conversation["speaker_a"] else "assistant"
                text = turn["text"]
                if turn.get("blip_caption"):
                    text += f" [shares a photo: {turn['blip_caption']}]"
                turns.append({"role": role, "content": text})
    return turns


def _elapsed_ns(start: int) -> int:
    return time.perf_counter_ns() - start


def build_session(
    path: str, turns: Sequence[dict[str, str]], size: int, *, budget: Budget
) -> tuple[ConversationMemory, list[int], float]:
    """Open a session and add ``size`` turns one at a time, timing each ``add``.

    Returns:
        The open memory (the caller closes it), the ``add`` timings and the build seconds.
    """
    started = time.perf_counter()
    mem = ConversationMemory.open(
        path,
        session=SESSION,
        budget=budget,
        model=DEFAULT_MODEL,
        embedder=EMBEDDER,
        recall_share=RECALL_SHARE[0],
    )
    add_ns = []
    try:
        for message in islice(cycle(turns), size):
            start = time.perf_counter_ns()
            mem.add(message)
            add_ns.append(_elapsed_ns(start))
    except BaseException:
        mem.close()
        raise
    return mem, add_ns, time.perf_counter() - started


def time_assemble(
    mems: Sequence[ConversationMemory], *, repeats: int, warmup: int, rounds: int
) -> list[list[int]]:
    """Time ``repeats`` ``assemble`` calls on each memory, interleaved in ``rounds``.

    Interleaving spreads a burst of background load over every size alike, so it cannot
    skew the ratio between sizes.
    """
    for mem in mems:
        for _ in range(warmup):
            mem.assemble(system=SYSTEM_PROMPT, query=QUERY[0])
    gc.collect()  # start the timed calls without the build's garbage pending
    timings: list[list[int]] = [[] for _ in mems]
    per_round = -(-repeats // rounds)
    while len(timings[0]) < repeats:
        for mem, samples in zip(mems, timings, strict=True):
            for _ in range(min(per_round, repeats - len(samples))):
                start = time.perf_counter_ns()
                mem.assemble(system=SYSTEM_PROMPT, query=QUERY[0])
                samples.append(_elapsed_ns(start))
    return timings


def time_search(mem: ConversationMemory, query: str | None) -> list[int]:
    """Time the recall search alone: ranking the turns before the last 40 for ``query``."""
    if query is None:
        return []
    state = mem._state
    before = max(state.view.last_seq - 40, 1)
    samples = []
    for _ in range(SEARCH_REPEATS):
        start = time.perf_counter_ns()
        state.recall.ranker.rank(
            query, before_seq=before, layout=state.view.layout(), limit=RECALL_LIMIT
        )
        samples.append(_elapsed_ns(start))
    return samples


def measure_store(
    store: str,
    sizes: Sequence[int],
    turns: Sequence[dict[str, str]],
    *,
    tmp: Path,
    args: argparse.Namespace,
) -> list[SizeResult]:
    """Build one session per size in ``store``, then time ``assemble`` on all of them."""
    budget = Budget(context_window=args.budget)
    built = []
    with ExitStack() as stack:
        for size in sizes:
            print(f"{store}: building {size:,} turns...", file=sys.stderr, flush=True)
            path = str(tmp / f"s{size}.db") if store == "file" else ":memory:"
            mem, add_ns, build_s = build_session(path, turns, size, budget=budget)
            stack.enter_context(mem)
            mem.wait_until_indexed(timeout=3600)  # no embedding in the background while timed
            mem.wait_for_summary(timeout=3600)  # nor folding (it holds the GIL in turns)
            built.append((mem, add_ns, build_s))
        print(f"{store}: timing assemble...", file=sys.stderr, flush=True)
        timings = time_assemble(
            [mem for mem, _, _ in built],
            repeats=args.repeats,
            warmup=args.warmup,
            rounds=args.rounds,
        )
        results = []
        for size, (mem, add_ns, build_s), assemble_ns in zip(sizes, built, timings, strict=True):
            prompt = mem.assemble(system=SYSTEM_PROMPT, query=QUERY[0])
            search_ns = time_search(mem, QUERY[0])
            results.append(
                SizeResult(
                    store=store,
                    turns=size,
                    history_tokens=mem.history_tokens,
                    add_ns=add_ns,
                    assemble_ns=assemble_ns,
                    prompt_tokens=prompt.tokens,
                    turns_kept=prompt.report.turns_kept,
                    build_s=build_s,
                    search_ns=search_ns,
                )
            )
    return results


def warm_up(turns: Sequence[dict[str, str]], budget: Budget) -> None:
    """Load the tokenizer and import lazily loaded modules before anything is timed."""
    with ConversationMemory.open(
        ":memory:",
        session=SESSION,
        budget=budget,
        model=DEFAULT_MODEL,
        embedder=EMBEDDER,
        recall_share=RECALL_SHARE[0],
    ) as mem:
        mem.add(list(turns[:10]))
        mem.assemble(system=SYSTEM_PROMPT)


def measure_reopen(path: str, turns: int, *, budget: Budget, reopens: int) -> ReopenResult:
    """Time ``ConversationMemory.open`` on an existing file, and the first ``assemble``."""
    open_ns, first_assemble_ns = [], []
    for _ in range(reopens):
        gc.collect()
        start = time.perf_counter_ns()
        mem = ConversationMemory.open(
            path,
            session=SESSION,
            budget=budget,
            model=DEFAULT_MODEL,
            embedder=EMBEDDER,
            recall_share=RECALL_SHARE[0],
        )
        open_ns.append(_elapsed_ns(start))
        with mem:
            start = time.perf_counter_ns()
            mem.assemble(system=SYSTEM_PROMPT)
            first_assemble_ns.append(_elapsed_ns(start))
    return ReopenResult(turns=turns, open_ns=open_ns, first_assemble_ns=first_assemble_ns)


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3f}"


def p50(samples: Sequence[int]) -> float:
    """Return the median of ``samples``."""
    return statistics.median(samples)


def p95(samples: Sequence[int]) -> float:
    """Return the 95th percentile of ``samples`` (inclusive interpolation)."""
    if len(samples) < 2:
        return float(samples[0])
    return statistics.quantiles(samples, n=20, method="inclusive")[-1]


def _versions() -> str:
    found = []
    for package in _PACKAGES:
        try:
            found.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            found.append(f"{package} (not installed)")
    return ", ".join([*found, f"SQLite {sqlite3.sqlite_version}"])


def header(args: argparse.Namespace, turns_available: int) -> list[str]:
    """Describe when, where and how the benchmark ran."""
    command = shlex.join(["python", "benchmarks/assembly_latency.py", *sys.argv[1:]])
    return [
        "# Assembly latency",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.platform()}, {platform.machine()}, {os.cpu_count()} CPUs",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- packages: {_versions()}",
        f"- data: LoCoMo dev, {turns_available:,} turns, repeated as needed; one `add` per turn",
        f"- embedder: {args.embedder}"
        + (" (deterministic fake, 64-d)" if args.embedder == "fake" else " (bundled, 384-d)"),
        f"- recall of evicted turns: recall_share={RECALL_SHARE[0]} (0 = off: the window, "
        "summary and budget logic alone)"
        + (
            f"; every `assemble` asks `query={QUERY[0]!r}` (a lookup: recall may take 90% of "
            "the budget); search = ranking the evicted turns alone"
            if QUERY[0]
            else ""
        )
        + "\n"
        f"- model: {DEFAULT_MODEL}; budget: {args.budget:,} prompt tokens; "
        f"{args.repeats} timed `assemble` calls per session after {args.warmup} warm-up calls, "
        f"interleaved across sizes in {args.rounds} rounds",
        "- file: a SQLite file (WAL, synchronous=NORMAL) in a temporary directory",
        f"- command: `{command}`",
    ]


def results_table(results: Iterable[SizeResult]) -> list[str]:
    """Render one row per store and session size."""
    lines = [
        "| store | turns | history tokens | add p50 ms | add p95 ms | assemble p50 ms "
        "| assemble p95 ms | prompt tokens | turns kept | assemble p50 µs per kept turn "
        "| build s | search p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.store} | {r.turns:,} | {r.history_tokens:,} | {_ms(p50(r.add_ns))} "
            f"| {_ms(p95(r.add_ns))} | {_ms(p50(r.assemble_ns))} | {_ms(p95(r.assemble_ns))} "
            f"| {r.prompt_tokens:,} | {r.turns_kept} "
            f"| {p50(r.assemble_ns) / 1e3 / max(r.turns_kept, 1):.2f} | {r.build_s:.2f} "
            f"| {_ms(p50(r.search_ns)) if r.search_ns else '-'} |"
        )
    return lines


def target_rows(results: Sequence[SizeResult]) -> tuple[list[str], bool]:
    """Check the targets at the smallest and largest sizes; return rows and overall pass."""
    lines = ["| target | store | measured | result |", "|---|---|---:|---|"]
    passed = True
    for store in STORES:
        by_size = {r.turns: r for r in results if r.store == store}
        if not by_size:
            continue
        small, large = by_size[min(by_size)], by_size[max(by_size)]
        limit_ms = TARGET_P50_MS if QUERY[0] is None else TARGET_RECALL_P50_MS
        flat = large if QUERY[0] is None else by_size.get(FLATNESS_SIZE, large)
        large_p50 = p50(large.assemble_ns)
        ratio = p50(flat.assemble_ns) / p50(small.assemble_ns)
        checks = [
            (
                f"assemble p50 at {large.turns:,} turns <= {limit_ms:g} ms",
                f"{_ms(large_p50)} ms",
                large_p50 / 1e6 <= limit_ms,
            ),
            (
                f"assemble p50 {flat.turns:,} / {small.turns:,} turns <= {TARGET_FLATNESS:g}x",
                f"{ratio:.2f}x",
                ratio <= TARGET_FLATNESS,
            ),
        ]
        for name, measured, ok in checks:
            passed = passed and ok
            lines.append(f"| {name} | {store} | {measured} | {'pass' if ok else '**FAIL**'} |")
    return lines, passed


def reopen_table(reopen: ReopenResult) -> list[str]:
    """Render the reopen timings."""
    return [
        "| store | turns | reopens | open p50 ms | open max ms | first assemble p50 ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| file | {reopen.turns:,} | {len(reopen.open_ns)} | {_ms(p50(reopen.open_ns))} "
        f"| {_ms(max(reopen.open_ns))} | {_ms(p50(reopen.first_assemble_ns))} |",
    ]


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, not {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LoCoMo JSON file")
    parser.add_argument("--sizes", type=_positive_int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument(
        "--repeats", type=_positive_int, default=DEFAULT_REPEATS, help="timed assemble calls"
    )
    parser.add_argument(
        "--rounds", type=_positive_int, default=DEFAULT_ROUNDS, help="interleaving rounds"
    )
    parser.add_argument("--warmup", type=int, default=DEFAULT_WARMUP, help="untimed calls first")
    parser.add_argument("--reopens", type=int, default=DEFAULT_REOPENS, help="0 to skip")
    parser.add_argument("--budget", type=_positive_int, default=DEFAULT_PROMPT_TOKENS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="markdown results file")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--recall-share", type=float, default=DEFAULT_RECALL_SHARE, help="0 turns recall off"
    )
    parser.add_argument("--query", default=None, help="ask this in every assemble (recall on)")
    parser.add_argument(
        "--stores", nargs="+", choices=["file", ":memory:"], default=["file", ":memory:"]
    )
    parser.add_argument("--embedder", choices=["fake", "minilm"], default="fake")
    return parser.parse_args(argv)


def run(args: argparse.Namespace, turns: Sequence[dict[str, str]]) -> tuple[list[str], bool]:
    """Measure every store and size; return the report's lines and whether targets pass."""
    budget = Budget(context_window=args.budget)
    sizes = sorted(set(args.sizes))
    results: list[SizeResult] = []
    reopen: ReopenResult | None = None
    warm_up(turns, budget)
    with tempfile.TemporaryDirectory(prefix="attic-bench-") as tmp:
        for store in STORES:
            results += measure_store(store, sizes, turns, tmp=Path(tmp), args=args)
        if args.reopens > 0:
            print("file: timing reopen...", file=sys.stderr, flush=True)
            path = str(Path(tmp) / f"s{sizes[-1]}.db")
            reopen = measure_reopen(path, sizes[-1], budget=budget, reopens=args.reopens)
    targets, passed = target_rows(results)
    lines = [*header(args, len(turns)), "", *results_table(results), "", "## Targets", ""]
    lines += targets
    if reopen is not None:
        lines += ["", "## Reopening the largest session", "", *reopen_table(reopen)]
    return lines, passed


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the markdown report and write it to ``--out``."""
    global EMBEDDER
    args = parse_args(argv)
    if args.embedder == "minilm":
        EMBEDDER = MiniLMEmbeddings()
    RECALL_SHARE[0] = args.recall_share
    QUERY[0] = args.query
    STORES[:] = args.stores
    if not args.data.is_file():
        print(f"skipped: LoCoMo data not found at {args.data} (see ../shared/data/README.md)")
        return 0
    lines, passed = run(args, load_turns(args.data))
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report, encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
