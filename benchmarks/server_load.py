"""The chat traffic and process readings of ``benchmarks/server.py``.

Chat text is made from word lists with a seeded ``random.Random``: user messages of 30-80
words with names, places and numbers, assistant replies, and every fifth exchange a tool
round whose output is 2-4 KB of log lines or JSON (above the archive's compression
threshold, so archiving and chunk embedding are exercised). Process readings come from
``/proc/self`` (psutil is not a dependency).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import math
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BUDGET",
    "MODEL",
    "TOOL_EVERY",
    "Exchange",
    "GCPauses",
    "ProcReading",
    "Recorder",
    "exchange",
    "percentile",
    "read_proc",
    "thread_names",
    "trimmed",
]

BUDGET = 2_000
"""Prompt budget of every session: small enough that folds and summaries happen."""
MODEL = "gpt-4o-mini"
TOOL_EVERY = 5
"""Every fifth exchange has a tool round (a tool call and its 2-4 KB result)."""

Message = dict[str, Any]

_NAMES = (
    "Alice", "Bruno", "Chen", "Dmitri", "Esther", "Farah", "Gustavo", "Hana", "Ibrahim",
    "Jonas", "Keiko", "Lena", "Mateo", "Nadia", "Oskar", "Priya", "Quentin", "Rosa",
)  # fmt: skip
_PLACES = (
    "Lisbon", "the Berlin office", "Osaka", "the warehouse in Leeds", "Nairobi", "Denver",
    "the Utrecht lab", "Montreal", "the data centre in Frankfurt", "Porto", "Seoul",
)  # fmt: skip
_TOPICS = (
    "the quarterly budget", "the invoice backlog", "our deployment pipeline",
    "the customer churn report", "the new pricing page", "the database migration",
    "the hiring plan", "the flaky integration tests", "the marketing launch",
    "the support queue", "the mobile release", "the vendor contract", "the security audit",
)  # fmt: skip
_VERBS = (
    "review", "estimate", "summarize", "double-check", "compare", "plan", "reschedule",
    "explain", "prioritize", "draft", "fix", "track",
)  # fmt: skip
_FILLER = (
    "I think", "honestly", "as we discussed", "if possible", "before Friday", "by the way",
    "to be fair", "for the record", "in the meantime", "as a first step", "roughly",
    "according to the last report", "compared with last month", "given the constraints",
)  # fmt: skip
_TOOLS = ("search_logs", "get_order", "query_metrics", "read_ticket")
_LEVELS = ("INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR")


_TEMPLATES = (
    "{filler}, {name} asked me to {verb} {topic} for {place}, and the figure there is {number}.",
    "Can you {verb} {topic}? {name} says {place} is at {number} and wants an answer soon.",
    "We met {name} in {place} on day {day}; {filler}, {topic} came up and {number} was quoted.",
    "{filler}, the numbers for {topic} look off: {number} in {place}, per {name}'s sheet.",
    "Remind me what {name} decided about {topic} last week, {filler}, it was about {number}.",
)


def _sentence(rng: random.Random) -> str:
    number = rng.choice(
        (f"{rng.randint(2, 97)}%", f"${rng.randint(120, 98_000):,}", f"{rng.randint(3, 400)} units")
    )
    text = rng.choice(_TEMPLATES).format(
        filler=rng.choice(_FILLER),
        name=rng.choice(_NAMES),
        verb=rng.choice(_VERBS),
        topic=rng.choice(_TOPICS),
        place=rng.choice(_PLACES),
        number=number,
        day=rng.randint(1, 28),
    )
    return text[0].upper() + text[1:]


def _words(rng: random.Random, low: int, high: int) -> str:
    wanted = rng.randint(low, high)
    words: list[str] = []
    while len(words) < wanted:
        words += _sentence(rng).split()
    return " ".join(words[:wanted]).rstrip(",.") + "."


def _log_output(rng: random.Random, size: int) -> str:
    lines: list[str] = []
    total = 0
    while total < size:
        level = rng.choice(_LEVELS)
        line = (
            f"2026-11-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
            f":{rng.randint(0, 59):02d}Z {level} worker-{rng.randint(1, 12)} "
            f"order={rng.randint(10_000, 99_999)} user={rng.choice(_NAMES).lower()} "
            f"latency_ms={rng.randint(3, 2_500)} {rng.choice(_TOPICS)}"
        )
        if level == "ERROR":
            line += f" Traceback: TimeoutError after {rng.randint(1, 30)}s"
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def _json_output(rng: random.Random, size: int) -> str:
    rows: list[dict[str, Any]] = []
    text = ""
    while len(text) < size:
        rows.append(
            {
                "id": rng.randint(1, 10**6),
                "customer": rng.choice(_NAMES),
                "city": rng.choice(_PLACES),
                "amount": round(rng.uniform(3, 9_000), 2),
                "status": rng.choice(("paid", "open", "refunded", "disputed")),
                "note": _sentence(rng),
            }
        )
        text = json.dumps({"results": rows, "count": len(rows)}, indent=1)
    return text


@dataclass(frozen=True, slots=True)
class Exchange:
    """One exchange: the user's message, an optional tool round, the assistant's reply."""

    user: Message
    tool_round: list[Message]
    reply: Message

    @property
    def messages(self) -> list[Message]:
        """Every message of the exchange, in order."""
        return [self.user, *self.tool_round, self.reply]


def exchange(rng: random.Random, number: int) -> Exchange:
    """Make exchange ``number`` (0-based) of a session; every fifth has a tool round."""
    user: Message = {"role": "user", "content": _words(rng, 30, 80)}
    reply: Message = {"role": "assistant", "content": _words(rng, 25, 90)}
    if number % TOOL_EVERY != TOOL_EVERY - 1:
        return Exchange(user, [], reply)
    call_id = f"call_{number}_{rng.randint(0, 10**9)}"
    tool = rng.choice(_TOOLS)
    size = rng.randint(2_048, 3_800)  # outputs end within a line or row of it
    output = _log_output(rng, size) if rng.random() < 0.5 else _json_output(rng, size)
    arguments = json.dumps({"query": rng.choice(_TOPICS), "limit": rng.randint(5, 50)})
    call: Message = {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": tool, "arguments": arguments}}
        ],
    }
    result: Message = {"role": "tool", "tool_call_id": call_id, "content": output}
    return Exchange(user, [call, result], reply)


@dataclass(frozen=True, slots=True)
class ProcReading:
    """The process's resident memory, threads and open file descriptors, now."""

    rss_mb: float
    anon_rss_mb: float
    peak_rss_mb: float
    threads: int
    python_threads: int
    open_files: int


def read_proc() -> ProcReading:
    """Read ``/proc/self/status`` (VmRSS, VmHWM, Threads) and count ``/proc/self/fd``."""
    fields: dict[str, str] = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value.strip()
    return ProcReading(
        rss_mb=int(fields["VmRSS"].split()[0]) / 1024,
        anon_rss_mb=int(fields["RssAnon"].split()[0]) / 1024,
        peak_rss_mb=int(fields["VmHWM"].split()[0]) / 1024,
        threads=int(fields["Threads"]),
        python_threads=threading.active_count(),
        open_files=len(os.listdir("/proc/self/fd")),
    )


def trimmed() -> ProcReading:
    """Collect garbage, hand freed heap back to the OS (glibc ``malloc_trim``), read.

    What RSS drops by here was free memory the allocator kept, not live data.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: a plain reading
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return read_proc()


def thread_names() -> dict[str, int]:
    """Count the Python threads by name (digits dropped) and the native threads beside them."""
    names = Counter(re.sub(r"[-_]?\d+$", "", t.name) for t in threading.enumerate())
    names["(native)"] = len(os.listdir("/proc/self/task")) - threading.active_count()
    return dict(names.most_common())


def percentile(samples: Sequence[float], share: float) -> float:
    """Return the nearest-rank percentile (``share`` in 0..1) of ``samples``; nan if none."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


class Recorder:
    """Call latencies and peak readings of one run, from many threads or tasks.

    Args:
        sessions: Sessions the run completes; the RSS is read when the first and the
            last of them is done (0: not tracked).
    """

    def __init__(self, sessions: int) -> None:
        self.sessions = sessions
        self.open_ms: list[float] = []
        self.add_ms: list[float] = []
        self.assemble_ms: list[float] = []
        self._lock = threading.Lock()
        self._done = 0
        self._session_rss: dict[int, ProcReading] = {}
        self._peak = {"threads_max": 0, "python_threads_max": 0, "open_files_max": 0}

    def sample(self) -> None:
        """Read the process and keep the peaks."""
        reading = read_proc()
        now = {
            "threads_max": reading.threads,
            "python_threads_max": reading.python_threads,
            "open_files_max": reading.open_files,
        }
        with self._lock:
            for key, value in now.items():
                self._peak[key] = max(self._peak[key], value)

    def session_done(self) -> None:
        """Count a finished session; read the RSS after the first and the last."""
        with self._lock:
            self._done += 1
            if self._done in (1, self.sessions):
                self._session_rss[self._done] = read_proc()

    def summary(self) -> dict[str, float]:
        """Percentiles (ms), peaks and the RSS growth from the first to the last session."""
        found: dict[str, float] = {
            "open_p50_ms": percentile(self.open_ms, 0.5),
            "open_max_ms": max(self.open_ms, default=math.nan),
            "add_calls": len(self.add_ms),
            "add_p50_ms": percentile(self.add_ms, 0.5),
            "add_p95_ms": percentile(self.add_ms, 0.95),
            "assemble_calls": len(self.assemble_ms),
            "assemble_p50_ms": percentile(self.assemble_ms, 0.5),
            "assemble_p95_ms": percentile(self.assemble_ms, 0.95),
            "peak_rss_mb": read_proc().peak_rss_mb,
            **self._peak,
        }
        if len(self._session_rss) == 2:
            first, last = self._session_rss[1], self._session_rss[self.sessions]
            found |= {"rss_first_mb": first.rss_mb, "rss_last_mb": last.rss_mb}
            found["session_growth_mb"] = last.rss_mb - first.rss_mb
            found["session_anon_growth_mb"] = last.anon_rss_mb - first.anon_rss_mb
        return found


class GCPauses:
    """Time the garbage collector's passes (``gc.callbacks``) while in a ``with`` block."""

    def __init__(self) -> None:
        self.pauses_ms: list[float] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return  # the young generations take microseconds
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses_ms.append((time.perf_counter() - self._started) * 1000)

    def __enter__(self) -> GCPauses:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def summary(self) -> dict[str, float]:
        """Full collections: how many, the longest and the total (ms)."""
        return {
            "gc_full_count": len(self.pauses_ms),
            "gc_full_max_ms": max(self.pauses_ms, default=0.0),
            "gc_full_total_ms": sum(self.pauses_ms),
        }
