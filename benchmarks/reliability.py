"""Reliability and security at full counts: crashes, concurrency, hostile input, a 50 MB output.

Runs what ``tests/reliability/`` runs, with the counts turned up:

- crash safety: a child process adding turns and ~3 KB tool outputs (archived) under a
  1,500-token budget (summaries fold during the run) is killed with SIGKILL at random
  moments, 60 times over 5 fresh files; after each kill the file is reopened and checked
  (every acknowledged add intact and in order, seqs contiguous, every tool result with its
  call, every archived original passing its SHA-256 check); after every third kill the
  FAISS files are deleted, truncated or overwritten and must be rebuilt from the stored
  vectors;
- concurrency: 4 processes of 2 writer threads each append to one shared session and to
  their own sessions of one SQLite file for 20 s; every writer's turns are checked;
- hostile input: the hypothesis properties of ``tests/reliability/fuzz.py`` with many
  more examples, and the recall isolation probes;
- one 50 MB tool output: ``add`` timed, the original read back exactly.

Usage::

    .venv/bin/python benchmarks/reliability.py
    .venv/bin/python benchmarks/reliability.py --kills 12 --seconds 5 --examples 200 --out /tmp/r.md
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memory._errors import ContextAtticError
from memory.tool import handle_tool_call

REPO_ROOT = Path(__file__).resolve().parents[1]
HELPERS = REPO_ROOT / "tests" / "reliability"
DEFAULT_OUT = REPO_ROOT / "benchmarks/results/reliability.md"
KILLS_PER_FILE = 12
BIG_OUTPUT_BYTES = 50 * 1024 * 1024


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"reliability_{name}", HELPERS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("harness")
fuzz = _load("fuzz")


def crash_run(workdir: Path, kills: int, seed: int) -> dict[str, Any]:
    """Kill the crash child ``kills`` times; check the store after each kill."""
    rng = random.Random(seed)
    phases: Counter[str] = Counter()
    tampered: Counter[str] = Counter()
    acked_total = turns = archived = summaries = 0
    started = time.perf_counter()
    for first in range(0, kills, KILLS_PER_FILE):
        db = workdir / f"crash{first}.db"
        acked: dict[int, list[int]] = {}
        for kill in range(first, min(kills, first + KILLS_PER_FILE)):
            phases[harness.kill_once(db, "crash", acked, delay=rng.uniform(0.02, 1.2)).phase] += 1
            check = harness.check_after_crash(db, "crash", acked)
            if kill % 3 == 2:
                how = ("delete", "truncate", "garbage")[kill // 3 % 3]
                if harness.tamper_index(db, how, rng):
                    tampered[how] += 1
                harness.check_index_rebuilt(db, "crash", acked)
        acked_total += len(acked)
        turns += check.turns
        archived += check.archived
        with sqlite3.connect(db) as conn:
            summaries += conn.execute("SELECT COUNT(*) FROM summaries").fetchone()[0]
    return {
        "kills": kills,
        "phases": dict(phases),
        "tampered": dict(tampered),
        "acked": acked_total,
        "turns": turns,
        "archived": archived,
        "summaries": summaries,
        "seconds": time.perf_counter() - started,
    }


def concurrency_run(workdir: Path, seconds: float) -> dict[str, Any]:
    """Run 4 processes x 2 threads for ``seconds``; check every writer's turns."""
    db = workdir / "shared.db"
    results = harness.run_writers(db, processes=4, threads=2, seconds=seconds)
    turns = harness.check_writers(db, results)
    return {
        "writers": len(results),
        "adds": sum(r.shared + r.own for r in results),
        "turns": turns,
        "seconds": seconds,
        "errors": sum(len(r.errors) for r in results),
    }


def _count(strategy: Any, examples: int, body: Callable[..., None]) -> int:
    tried = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    @given(strategy)
    def run(value: Any) -> None:
        nonlocal tried
        tried += 1
        body(value)

    run()
    return tried


def fuzz_run(workdir: Path, examples: int) -> dict[str, int]:
    """Run every hostile-input property with ``examples`` examples; return inputs tried."""
    tried: dict[str, int] = {}
    with harness.open_memory(":memory:", "fuzz", budget=4000) as mem:
        tried["hostile text in every message field"] = _count(
            fuzz.openai_messages(), examples, lambda m: fuzz.add_or_refuse(mem, m)
        )
    with harness.open_memory(":memory:", "fuzz", budget=4000) as mem:
        tried["malformed OpenAI / Anthropic payloads"] = _count(
            fuzz.malformed, examples, lambda p: fuzz.add_or_refuse(mem, p, exact=False)
        )
    db = workdir / "sessions.db"

    def one_session(session: str) -> None:
        try:
            memory = harness.open_memory(db, session, budget=4000)
        except ContextAtticError:
            return
        with memory:
            fuzz.add_or_refuse(memory, {"role": "user", "content": "hello"})

    tried["session names (SQL, paths, unicode)"] = _count(fuzz.hostile_text, examples, one_session)
    tried["recall ref / query from another session"] = _isolation(workdir, examples)
    return tried


def _isolation(workdir: Path, examples: int) -> int:
    db = workdir / "isolation.db"
    with (
        harness.open_memory(db, "alice", budget=4000) as alice,
        harness.open_memory(db, "bob", budget=4000) as bob,
    ):
        for i in range(1, 8, 3):  # tool items: archived logs with unique markers
            alice.add(harness.item_messages(i - 1) + harness.item_messages(i))
            bob.add(harness.item_messages(i + 1001) + harness.item_messages(i + 1002))
        bob_words = [harness.marker(i + 1002) for i in range(1, 8, 3)]
        bob_refs = [r.ref for r in bob.archive.refs()] + [r.sha256 for r in bob.archive.refs()]
        encodable = fuzz.hostile_text.filter(lambda s: s.encode("utf-8", "ignore").decode() == s)
        probe = st.one_of(st.sampled_from(bob_refs + bob_words), encodable, st.none())

        def check(args: tuple[str | None, str | None]) -> None:
            ref, query = args
            text = handle_tool_call(alice.archive, json.dumps({"ref": ref, "query": query}))
            for echoed in (ref, query):
                if echoed and echoed.strip():
                    text = text.replace(echoed.strip(), "")
            assert not any(word in text for word in bob_words), (ref, query)

        return _count(st.tuples(probe, probe), examples, check)


def big_output_run(workdir: Path) -> dict[str, float]:
    """Add one 50 MB log as a tool output; time it and read it back."""
    lines, size, k = [], 0, 0
    while size < BIG_OUTPUT_BYTES:
        line = f"12:{k // 60 % 60:02d}:{k % 60:02d} INFO request {k} served in {k % 97} ms"
        lines.append(line)
        size += len(line) + 1
        k += 1
    lines[len(lines) // 2] = "12:30:00 ERROR disk quota exceeded on /var/data"
    log = "\n".join(lines)
    with harness.open_memory(workdir / "big.db", "big", budget=8000) as mem:
        call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        started = time.perf_counter()
        mem.add(
            [
                {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": "c", "content": log},
            ]
        )
        add_s = time.perf_counter() - started
        (record,) = mem.archive.refs()
        started = time.perf_counter()
        assert mem.archive.get(record.ref) == log
        get_s = time.perf_counter() - started
        started = time.perf_counter()
        assert "disk quota exceeded" in mem.recall(ref=record.ref, query="disk quota exceeded")
        recall_s = time.perf_counter() - started
        prompt = mem.assemble(query="why did it stop?")
    return {
        "bytes": len(log.encode()),
        "add_s": add_s,
        "get_s": get_s,
        "recall_s": recall_s,
        "tokens": record.tokens,
        "digest_tokens": record.digest_tokens,
        "prompt_tokens": prompt.tokens,
    }


def render(
    crash: dict[str, Any],
    conc: dict[str, Any],
    tried: dict[str, int],
    big: dict[str, float],
    command: str,
) -> str:
    """Render the results as Markdown."""
    phases = ", ".join(f"{n} during {p}" for p, n in sorted(crash["phases"].items()))
    tampered = ", ".join(f"{n} {how}" for how, n in sorted(crash["tampered"].items()))
    rows = "\n".join(f"| {name} | {n:,} |" for name, n in tried.items())
    rate = conc["turns"] / conc["seconds"]
    return f"""# Reliability and security

- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}
- machine: {platform.platform()}, {platform.machine()}, Python {platform.python_version()}
- command: `{command}`
- embedder: `DeterministicFakeEmbedding(size=64)` (no model load); files in a temporary folder

## Summary

| measure | value |
|---|---:|
| SIGKILLs survived | {crash["kills"]} |
| hostile inputs tried | {sum(tried.values()):,} |
| turns/s held under concurrency (4 processes x 2 threads, one file) | {rate:,.0f} |
| data lost | 0 |
| `add` of one 50 MB tool output | {big["add_s"]:.1f} s |

## Crash safety

A child process adds items in a loop (a user turn, a tool call with a ~3 KB log that is
archived, an assistant reply; budget 1,500 tokens so summaries fold while it runs), printing
each acknowledged `add`, and is killed with SIGKILL after a random 0.02-1.2 s; 5 files,
{KILLS_PER_FILE} kills each. After every kill the file is reopened and checked.

| measure | value |
|---|---:|
| kills | {crash["kills"]} ({phases}) |
| acknowledged adds, all found intact and in order | {crash["acked"]:,} |
| turns stored (seqs contiguous, no orphan tool result) | {crash["turns"]:,} |
| archived originals, all passing SHA-256 | {crash["archived"]:,} |
| summary versions written by the killed processes | {crash["summaries"]:,} |
| FAISS files tampered with, then rebuilt from stored vectors | {tampered} |
| time | {crash["seconds"]:.0f} s |

## Concurrency

| measure | value |
|---|---:|
| writers | {conc["writers"]} threads in 4 processes |
| adds acknowledged | {conc["adds"]:,} |
| turns stored, each writer's exactly once and in its order | {conc["turns"]:,} |
| errors seen by writers (`database is locked` included) | {conc["errors"]} |
| duration | {conc["seconds"]:.0f} s |
| turns/s | {rate:,.0f} |

## Hostile input (hypothesis)

Each input ended in a `ContextAtticError` or a correct result; a refused `add` left the
history unchanged; recall never showed another session's data.

| property | inputs tried |
|---|---:|
{rows}

## One 50 MB tool output

| measure | value |
|---|---:|
| size | {big["bytes"]:,} bytes, {big["tokens"]:,} tokens |
| `add` (compress, chunk, archive) | {big["add_s"]:.1f} s |
| `archive.get` (exact, SHA-256 checked) | {big["get_s"]:.2f} s |
| `recall(ref, query)` | {big["recall_s"]:.2f} s |
| digest sent in prompts | {big["digest_tokens"]:,} tokens |
| assembled prompt | {big["prompt_tokens"]:,} tokens |
"""


def main(argv: list[str] | None = None) -> int:
    """Run every part and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        crash = crash_run(workdir, args.kills, args.seed)
        print(f"crash: {crash}", flush=True)
        conc = concurrency_run(workdir, args.seconds)
        print(f"concurrency: {conc}", flush=True)
        tried = fuzz_run(workdir, args.examples)
        print(f"fuzz: {tried}", flush=True)
        big = big_output_run(workdir)
        print(f"50 MB: {big}", flush=True)
    command = "python benchmarks/reliability.py " + " ".join(argv or sys.argv[1:])
    args.out.write_text(render(crash, conc, tried, big, command.strip()), encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
