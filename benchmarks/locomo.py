"""LoCoMo evidence recall: does the assembled prompt still hold the turns a question needs?

Feeds each LoCoMo conversation turn by turn (speaker A as user, speaker B as assistant,
each session opened by a system message with its date), then for every question of
categories 1-4 calls ``assemble(query=question)`` under several prompt budgets and
measures *evidence recall*: the share of the question's evidence turns whose text appears
in the prompt (whitespace runs compared as one space, ends trimmed). Also measures assemble
latency with a summarizer that takes 2 s per call versus one that answers at once, and
the share of consecutive prompts whose prefix (system + summary) is unchanged.

Data: ../shared/data/locomo/locomo_dev.json (CC BY-NC 4.0, not shipped). Run:
    .venv/bin/python benchmarks/locomo.py [--budgets 1000 2000 4000 8000] [--limit N]
        [--embedder onnx-int8|onnx|torch]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from memory import ConversationMemory
from memory._assemble import Prompt
from memory._embed import DEFAULT_MINILM_BACKEND, MiniLMEmbeddings
from memory._options import LOOKUP_RECALL_SHARE
from memory._summarize import ExtractiveSummarizer, SummaryResult

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "locomo" / "locomo_dev.json"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "locomo.md"
SYSTEM = "You are a friendly assistant who remembers the user's life."
MODEL = "gpt-4"  # cl100k_base, as the baselines


def session_numbers(conversation: dict[str, Any]) -> list[int]:
    """Return the conversation's session numbers that hold turns, in order."""
    numbers = []
    for key, value in conversation.items():
        if key.startswith("session_") and not key.endswith("date_time") and isinstance(value, list):
            numbers.append(int(key.split("_")[1]))
    return sorted(numbers)


FEEDINGS = ("markers", "plain")
ABLATIONS = ("names", "sessions")
"""Ablations: ``names``: names, no session messages; ``sessions``: session messages,
no names (both with timestamps)."""
FEEDINGS_TEXT = (
    "`markers`: a system message per session with its date, speakers as the messages' "
    "`name`; `plain`: what a plain chat app sends, each turn's text as a user or assistant "
    "message with its session's time as `timestamp`, no names, no session messages."
)
"""``markers``: a system message per session with its date, speakers as ``name``.
``plain``: what a plain chat app sends: each turn's text as a user or assistant message
with its session's time as ``timestamp``; no names, no session messages."""


def session_time(when: str) -> datetime | None:
    """LoCoMo's ``"1:56 pm on 8 May, 2023"`` as a datetime (UTC), None if unreadable."""
    try:
        return datetime.strptime(when, "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)
    except ValueError:
        return None


def turn_messages(
    sample: dict[str, Any], feeding: str = "markers"
) -> Iterator[tuple[str | None, BaseMessage, datetime | None]]:
    """Yield ``(dia_id, message, time)``: per session (a system marker with its date in the
    ``markers`` feeding), its turns."""
    conversation = sample["conversation"]
    speaker_a = conversation["speaker_a"]
    for number in session_numbers(conversation):
        when = conversation.get(f"session_{number}_date_time", "")
        at = session_time(when)
        if feeding in ("markers", "sessions"):
            yield None, SystemMessage(f"Session {number} · {when}"), None
        for position, turn in enumerate(conversation[f"session_{number}"]):
            text = turn["text"]
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            kind = HumanMessage if turn["speaker"] == speaker_a else AIMessage
            if feeding == "markers":
                yield turn["dia_id"], kind(text, name=turn["speaker"]), None
            elif feeding in ("names", "sessions"):
                sent = None if at is None else at + timedelta(seconds=position)
                name = turn["speaker"] if feeding == "names" else None
                yield turn["dia_id"], kind(text, name=name), sent
            else:  # a second apart, so the turns keep their order in time
                sent = None if at is None else at + timedelta(seconds=position)
                yield turn["dia_id"], kind(text), sent


def spaced(text: str) -> str:
    """``text`` with each run of whitespace made one space and its ends trimmed, for
    asking whether a prompt holds a turn: a recalled turn is quoted with its ends trimmed,
    and 91 of LoCoMo's 4,124 turns start or end with a space (compared as sent, they read as
    missing from a prompt that holds them)."""
    return " ".join(text.split())


def shows_date(sent: str, evidence: str, at: datetime | None, when: str) -> bool:
    """Whether the prompt shows the date of an evidence turn it holds: the session's
    date text (markers) or the ISO date (plain) appears before the turn's text (both
    ``spaced``)."""
    found = sent.find(evidence)
    if found < 0:
        return False
    before = sent[:found]
    return (bool(when) and when in before) or (at is not None and at.date().isoformat() in before)


class TimedSummarizer(ExtractiveSummarizer):
    """The extractive summarizer behind a fixed delay, standing in for a slow model."""

    def __init__(self, counter: Any, *, delay: float, max_summary_tokens: int) -> None:
        super().__init__(counter, max_summary_tokens=max_summary_tokens)
        self.delay = delay
        self.name = f"extractive+{delay:g}s"

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        """Wait, then summarize."""
        time.sleep(self.delay)
        return super().summarize(previous_summary, evicted)


CATEGORIES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


def prompt_text(prompt: Prompt) -> str:
    """Every text piece the prompt sends (string contents and text blocks), joined."""
    pieces: list[str] = []
    for message in prompt.messages:
        content = message.content
        if isinstance(content, str):
            pieces.append(content)
        else:
            pieces += [str(b.get("text", "")) for b in content if isinstance(b, dict)]
    return "\n".join(pieces)


Score = tuple[int, float, float | None]
"""``(category, evidence recall, share of held evidence shown with its date or None)``."""


def evidence_recall(
    sample: dict[str, Any],
    budgets: Sequence[int],
    feeding: str = "markers",
    embedder: Embeddings | None = None,
    cache: Path | None = None,
) -> dict[int, list[Score]]:
    """Feed one conversation, then score every category 1-4 question at each budget.

    ``embedder`` None is the library's default (the bundled MiniLM, ONNX int8).
    ``cache``: a folder where each conversation's store is kept (a SQLite file per
    conversation, feeding and embedder) and reused when it is there, not fed again: for
    comparing ranking code on the same stores (stale once what is stored changes).
    Returns, per budget, a ``Score`` for each question (the date share for temporal
    questions whose prompt holds evidence)."""
    texts: dict[str, str] = {}
    times: dict[str, tuple[datetime | None, str]] = {}
    conversation = sample["conversation"]
    path, fed = ":memory:", False
    if cache is not None:
        kind = getattr(embedder, "backend", None) or type(embedder).__name__
        cache.mkdir(parents=True, exist_ok=True)
        path = str(cache / f"{sample['sample_id']}-{feeding}-{kind}.sqlite")
        fed = Path(path).exists()
    with ConversationMemory.open(
        path, session=sample["sample_id"], budget=max(budgets), model=MODEL, embedder=embedder
    ) as mem:
        for dia_id, message, at in turn_messages(sample, feeding):
            if not fed:
                mem.add(message, timestamp=at)
            if dia_id is not None:
                texts[dia_id] = str(message.content)
                number = dia_id.split(":")[0][1:]
                times[dia_id] = (at, conversation.get(f"session_{number}_date_time", ""))
        mem.wait_until_indexed(timeout=600)
        mem.wait_for_summary(timeout=600)
        scores: dict[int, list[Score]] = {b: [] for b in budgets}
        for qa in sample["qa"]:
            if qa.get("category") not in (1, 2, 3, 4):
                continue
            ids = [e for e in qa.get("evidence", []) if e in texts]
            if not ids:
                continue
            for budget in budgets:
                prompt = mem.assemble(system=SYSTEM, query=qa["question"], budget=budget)
                assert prompt.tokens <= budget, (prompt.tokens, budget)
                sent = spaced(prompt_text(prompt))
                held = [e for e in ids if spaced(texts[e]) in sent]
                dated = None
                if qa["category"] == 2 and held:
                    shown = [shows_date(sent, spaced(texts[e]), *times[e]) for e in held]
                    dated = sum(shown) / len(held)
                scores[budget].append((qa["category"], len(held) / len(ids), dated))
    return scores


def latency_and_prefix(sample: dict[str, Any], delay: float, budget: int) -> dict[str, float]:
    """Chat through one conversation, timing ``assemble`` after every user turn."""
    timings: list[float] = []
    extended: list[bool] = []  # did each prompt extend the previous one (minus recall)?
    # Fake embeddings isolate what is measured: whether a slow summarizer slows assemble.
    # (With MiniLM, the background embedding of each new turn competes for the 2 cores.)
    fake = DeterministicFakeEmbedding(size=64)
    with ConversationMemory.open(
        ":memory:", session="latency", budget=budget, model=MODEL, embedder=fake
    ) as mem:
        slow = TimedSummarizer(mem.counter, delay=delay, max_summary_tokens=int(budget * 0.15))
        mem._summaries.summarizer = slow
        previous: Prompt | None = None
        for _, message, _ in turn_messages(sample):
            mem.add(message)
            if isinstance(message, HumanMessage):
                started = time.perf_counter()
                prompt = mem.assemble(system=SYSTEM)
                timings.append(time.perf_counter() - started)
                if previous is not None:
                    stable = previous.messages[: previous.stable_count]
                    extended.append(prompt.messages[: len(stable)] == stable)
                previous = prompt
        folds = sum(1 for a in mem.summary_attempts() if a.error is None)
    same = sum(extended)
    return {
        "p50_ms": statistics.median(timings) * 1000,
        "p95_ms": statistics.quantiles(timings, n=20)[18] * 1000,
        "prefix_stable": same / max(1, len(extended)),
        "folds": folds,
        "calls": len(timings),
    }


def by_category(scores: dict[int, list[Score]]) -> list[str]:
    """A table of evidence recall per question category and budget."""
    budgets = sorted(scores)
    lines = [
        "| category | questions | " + " | ".join(f"{b:,}" for b in budgets) + " |",
        "|---|---:|" + "---:|" * len(budgets),
    ]
    for number, name in CATEGORIES.items():
        rows = {b: [r for c, r, _ in scores[b] if c == number] for b in budgets}
        if rows[budgets[0]]:
            cells = " | ".join(f"{statistics.mean(rows[b]):.3f}" for b in budgets)
            lines.append(f"| {number} {name} | {len(rows[budgets[0]])} | {cells} |")
    return lines


def plot(results: dict[int, float], out: Path) -> str:
    """Draw recall vs budget as a PNG if matplotlib is installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "(matplotlib not installed: no plot)"
    figure, axis = plt.subplots(figsize=(6, 3.5))
    budgets = sorted(results)
    axis.plot(budgets, [results[b] for b in budgets], marker="o", label="context-attic")
    axis.plot([2000, 4000], [0.780, 0.847], marker="x", linestyle="--", label="hybrid baseline")
    axis.plot([2000, 4000], [0.075, 0.145], marker="x", linestyle=":", label="last-N turns")
    axis.set_xscale("log")
    axis.set_xticks(budgets, [f"{b:,}" for b in budgets])
    axis.minorticks_off()
    axis.set_xlabel("prompt budget (tokens)")
    axis.set_ylabel("evidence recall")
    axis.set_ylim(0, 1.02)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    return f"![evidence recall vs budget]({out.name})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--limit", type=int, default=None, help="conversations to use")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--delay", type=float, default=2.0, help="slow summarizer's seconds")
    parser.add_argument(
        "--feedings", nargs="+", choices=FEEDINGS + ABLATIONS, default=list(FEEDINGS)
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep each conversation's store in this folder and reuse it (ranking changes "
        "only: delete it when what is stored changes)",
    )
    parser.add_argument(
        "--no-latency", dest="latency", action="store_false", help="skip the latency part"
    )
    parser.add_argument(
        "--embedder",
        choices=["onnx-int8", "onnx", "torch"],
        default=DEFAULT_MINILM_BACKEND,
        help="how the bundled MiniLM runs (default: the library's default)",
    )
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: LoCoMo data not found at {args.data}")
        return 0
    samples = json.loads(args.data.read_text(encoding="utf-8"))[: args.limit]
    started = time.time()
    embedder = MiniLMEmbeddings(backend=args.embedder)
    by_feeding: dict[str, dict[int, list[Score]]] = {}
    for feeding in args.feedings:
        scores: dict[int, list[Score]] = {b: [] for b in args.budgets}
        for sample in samples:
            for budget, values in evidence_recall(
                sample, args.budgets, feeding, embedder, args.cache
            ).items():
                scores[budget].extend(values)
            print(f"{feeding} {sample['sample_id']}: done ({time.time() - started:.0f}s)",
                  file=sys.stderr)  # fmt: skip
        by_feeding[feeding] = scores
    recall = {
        f: {b: statistics.mean(r for _, r, _ in v) for b, v in scores.items()}
        for f, scores in by_feeding.items()
    }
    dated = {
        f: {b: [d for _, _, d in v if d is not None] for b, v in scores.items()}
        for f, scores in by_feeding.items()
    }
    fast = latency_and_prefix(samples[0], 0.0, 4000) if args.latency else None
    slow = latency_and_prefix(samples[0], args.delay, 4000) if args.latency else None
    first = by_feeding[args.feedings[0]]
    lines = [
        "# LoCoMo evidence recall",
        "",
        f"Command: `python benchmarks/locomo.py {' '.join(argv or sys.argv[1:])}`  ",
        f"Run {date.today().isoformat()} on {platform.machine()} ({platform.processor() or 'cpu'}),"
        f" Python {platform.python_version()}; {len(samples)} conversations, "
        f"{len(first[args.budgets[0]])} questions (categories 1-4), tokens counted with "
        f"cl100k_base ({MODEL}); default options (offline extractive summarizer, bundled "
        f"MiniLM embeddings, {embedder.backend}); one memory per conversation opened with "
        f"the largest budget, "
        f"each question asked with `assemble(query=question, budget=B)` (an explicit query: "
        f"recalled turns may take up to {LOOKUP_RECALL_SHARE:.0%} of the budget); "
        f"{time.time() - started:.0f} s in all. Feedings: {FEEDINGS_TEXT}",
        "",
        "| feeding | prompt budget | evidence recall | target | temporal: evidence shown with "
        "its date | issue's baseline, 2 conversations: hybrid | same: last-N |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    targets = {2000: ">= 0.90", 4000: ">= 0.95"}
    # Quoted from the issue that set the targets, measured on the first 2 conversations.
    two = args.limit == 2
    hybrid = {2000: "0.780", 4000: "0.847"} if two else {}
    last_n = {2000: "0.075", 4000: "0.145"} if two else {}
    for feeding in args.feedings:
        for budget in sorted(recall[feeding]):
            shares = dated[feeding][budget]
            shown = f"{statistics.mean(shares):.3f} ({len(shares)})" if shares else "-"
            lines.append(
                f"| {feeding} | {budget:,} | {recall[feeding][budget]:.3f} | "
                f"{targets.get(budget, '')} | {shown} | {hybrid.get(budget, '')} | "
                f"{last_n.get(budget, '')} |"
            )
    lines += [
        "",
        "Every prompt was within its budget (checked for each question). Evidence recall is "
        "the share of a question's evidence turns whose text the prompt holds, whitespace "
        "runs compared as one space and ends trimmed (a recalled turn is quoted trimmed).",
        "",
    ]
    for feeding in args.feedings:
        lines += ["", f"Evidence recall per category, {feeding} feeding:", ""]
        lines += by_category(by_feeding[feeding])
    lines += ["", plot(recall[args.feedings[0]], args.out.with_suffix(".png"))]
    if fast is None or slow is None:
        return _write(args.out, lines)
    lines += [
        "",
        "## Latency and prompt-cache stability (chatting through "
        f"{samples[0]['sample_id']} at 4,000 tokens, `assemble()` after every user turn, "
        "fake embeddings so only the summarizer differs)",
        "",
        "| summarizer | assemble p50 ms | p95 ms | calls | folds | prefix unchanged |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in (("answers at once", fast), (f"takes {args.delay:g} s", slow)):
        lines.append(
            f"| {name} | {row['p50_ms']:.2f} | {row['p95_ms']:.2f} | {row['calls']:.0f} | "
            f"{row['folds']:.0f} | {row['prefix_stable']:.1%} |"
        )
    ratio = slow["p50_ms"] / fast["p50_ms"]
    lines += ["", f"p50 ratio slow/fast: {ratio:.2f} (target <= 1.1)."]
    return _write(args.out, lines)


def _write(out: Path, lines: list[str]) -> int:
    text = "\n".join(lines) + "\n"
    print(text)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
