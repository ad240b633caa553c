"""The Markdown report of ``benchmarks/server.py``: its metrics against issue 13's targets."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from typing import Any

from server_load import BUDGET, MODEL

__all__ = ["report", "table"]

Result = dict[str, Any]


def _row(metric: str, value: float, unit: str, target: float | None = None) -> tuple[str, bool]:
    shown = f"{value:,.1f} {unit}" if unit != "" else f"{value:,.0f}"
    if target is None:
        return f"| {metric} | {shown} | | |", True
    passed = value <= target
    limit = f"<= {target:,g} {unit}".rstrip()
    return f"| {metric} | {shown} | {limit} | {'PASS' if passed else 'FAIL'} |", passed


def table(threads: Result, loop: Result, long: Result, reopen: Result) -> tuple[list[str], bool]:
    """The results table (metric, value, target, PASS/FAIL) and whether every target holds."""
    rows: list[tuple[str, bool]] = []
    for name, run in (("threads", threads), ("asyncio", loop)):
        own = run["client_threads"]
        rows += [
            _row(f"{name}: peak threads, library's (OS threads - {own} client)",
                 run["threads_max"] - own, "", 12),
            _row(f"{name}: peak OS threads (/proc Threads)", run["threads_max"], ""),
            _row(f"{name}: peak python threads (active_count)", run["python_threads_max"], ""),
            _row(f"{name}: peak open files", run["open_files_max"], "", 40),
            _row(f"{name}: peak RSS", run["peak_rss_mb"], "MB"),
            _row(f"{name}: RSS growth, 1st -> last session", run["session_growth_mb"], "MB", 300),
            _row(f"{name}: of which anonymous (RssAnon)", run["session_anon_growth_mb"], "MB"),
            _row(f"{name}: RSS at the end after malloc_trim(0), less after the 1st session",
                 run["end_trimmed_rss_mb"] - run["rss_first_mb"], "MB"),
            _row(f"{name}: longest full GC pause", run["gc_full_max_ms"], "ms"),
            _row(f"{name}: add p50", run["add_p50_ms"], "ms"),
            _row(f"{name}: add p95", run["add_p95_ms"], "ms"),
            _row(f"{name}: assemble p50", run["assemble_p50_ms"], "ms"),
            _row(f"{name}: assemble p95", run["assemble_p95_ms"], "ms"),
            _row(f"{name}: engine.open p50", run["open_p50_ms"], "ms"),
            _row(f"{name}: engine.open max", run["open_max_ms"], "ms"),
            _row(f"{name}: wall time", run["wall_s"], "s"),
        ]  # fmt: skip
    growth = threads["further_rss_after_mb"] - threads["further_rss_before_mb"]
    rows += [
        _row("threads: RSS growth over further requests", growth, "MB", 20),
        _row("threads: of which anonymous (RssAnon)", threads["further_anon_growth_mb"], "MB"),
        _row("threads, further requests: assemble p95", threads["further_assemble_p95_ms"], "ms"),
        _row("asyncio: event-loop stall p99", loop["stall_p99_ms"], "ms", 20),
        _row("asyncio: event-loop stall max", loop["stall_max_ms"], "ms"),
        _row("long session: Engine(path) + open", reopen["open_s"] * 1000, "ms", 500),
        _row("long session: RSS growth, open", reopen["open_rss_mb"], "MB", 100),
        _row("long session: RSS growth, open + 1st assemble", reopen["open_assemble_rss_mb"],
             "MB", 100),
        _row("long session: first assemble", reopen["first_assemble_ms"], "ms", 50),
        _row("long session: second assemble", reopen["second_assemble_ms"], "ms"),
        _row("long session: build (add + assemble per exchange)", long["build_s"], "s"),
    ]  # fmt: skip
    lines = ["| metric | value | target | result |", "|---|---:|---|---|"]
    return lines + [line for line, _ in rows], all(ok for _, ok in rows)


def report(args: argparse.Namespace, results: dict[str, Result]) -> tuple[str, bool]:
    """Render the markdown report; return it and whether every target holds."""
    rows, passed = table(results["threads"], results["asyncio"], *_long(results))
    long, reopen = _long(results)
    command = shlex.join(["python", "benchmarks/server.py", *sys.argv[1:]])
    lines = [
        "# One engine, many sessions (issue 13)",
        "",
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}",
        f"- machine: {platform.platform()}, nproc {os.cpu_count()}",
        f"- python: {platform.python_implementation()} {platform.python_version()}",
        f"- command: `{command}`",
        f"- load: {args.sessions:,} sessions x {args.turns} exchanges (every 5th with a 2-4 KB "
        f"tool output), budget {BUDGET:,}, model {MODEL}, default MiniLM and summarizer; "
        f"{args.further:,} further requests; {args.threads} threads / {args.tasks} tasks",
        f"- long session: {long['turns']:,} turns ({long['exchanges']:,} exchanges), "
        f"{long['history_tokens']:,} tokens, {long['db_mb']:,.0f} MB file; "
        f"{long['vectors']:,} of {long['chunks']:,} chunks embedded when reopened (all of them: "
        f"{long['chunks'] * 384 * 4 / 2**20:,.0f} MB of float32 vectors)",
        f"- warm-up: MiniLM, token counter and one exchange in a `:memory:` engine before "
        f"every baseline, as in a running server: {reopen['warm_up_s']:.1f} s, "
        f"{reopen['warm_up_rss_mb']:,.0f} MB RSS",
        "",
        *rows,
        "",
        f"Overall: {'PASS' if passed else 'FAIL'}. Raw readings:",
        "",
        "```json",
        json.dumps(results, indent=1, sort_keys=True),
        "```",
    ]
    return "\n".join(lines) + "\n", passed


def _long(results: dict[str, Result]) -> tuple[Result, Result]:
    return results["long-build"], results["long-open"]
