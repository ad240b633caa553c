"""RSS of a server process with the bundled MiniLM, with and without heap trimming.

glibc keeps the memory torch frees after each embedding batch in its arenas; the indexer
gives it back with ``malloc_trim(0)`` (``memory._embed.return_free_memory``). This runs
the same load twice, each in a fresh process, once with trimming disabled, and writes
``benchmarks/results/heap_trim.md``. Run: ``python benchmarks/heap_trim.py [--sessions N]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "heap_trim.md"
LOG = "\n".join(
    f"2024-01-01 10:{i % 60:02d}:00 INFO worker {i} processed batch {i * 7}" for i in range(60)
)


def rss_mb() -> float:
    """Resident set size of this process, MB (from /proc)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def load(sessions: int, trim: bool) -> dict[str, object]:
    """Add 10 exchanges (2 with a tool output) per session through one engine."""
    import memory._indexer as indexer
    from memory import Engine

    if not trim:
        indexer.return_free_memory = lambda: None  # type: ignore[attr-defined]
    engine = Engine(os.path.join(tempfile.mkdtemp(), "trim.db"))
    warm = engine.open(session="warm-up", budget=2000, model="gpt-4o-mini")
    warm.add({"role": "user", "content": "hello"})
    warm.wait_until_indexed(120)
    base, marks = rss_mb(), []
    started = time.perf_counter()
    for s in range(sessions):
        mem = engine.open(session=f"s{s}", budget=2000, model="gpt-4o-mini")
        for t in range(10):
            mem.add(
                {"role": "user", "content": f"User {s}: order {t * 13} to Lyon, invoice {s * t}?"}
            )
            if t % 5 == 4:
                call = {
                    "id": f"c{t}",
                    "type": "function",
                    "function": {"name": "tail", "arguments": "{}"},
                }
                mem.add([{"role": "assistant", "content": "", "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": f"c{t}", "content": LOG}])  # fmt: skip
            mem.add({"role": "assistant", "content": f"Order {t * 13} ships Friday."})
            mem.assemble(system="Be brief.")
        if (s + 1) % 25 == 0:
            mem.wait_until_indexed(300)
            marks.append(round(rss_mb() - base))
    engine.close()
    return {"growth_mb": marks, "seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--child", choices=["trim", "plain"])
    args = parser.parse_args()
    if args.child:
        print(json.dumps(load(args.sessions, args.child == "trim")))
        return
    rows = {}
    for mode in ("plain", "trim"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--sessions", str(args.sessions)],
            capture_output=True, text=True, check=True, cwd=REPO,
        ).stdout  # fmt: skip
        rows[mode] = json.loads(out.strip().splitlines()[-1])
    lines = [
        "# Heap trimming after embedding batches",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- machine: {platform.platform()}, {os.cpu_count()} CPUs",
        f"- python: {platform.python_version()}",
        f"- command: `python benchmarks/heap_trim.py --sessions {args.sessions}`",
        "- load: per session 10 exchanges, 2 with a 60-line log output; bundled MiniLM; one engine",
        "",
        "| malloc_trim after each batch | RSS growth every 25 sessions (MB) | seconds |",
        "|---|---|---:|",
        f"| no | {rows['plain']['growth_mb']} | {rows['plain']['seconds']} |",
        f"| yes (the default) | {rows['trim']['growth_mb']} | {rows['trim']['seconds']} |",
        "",
    ]
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
