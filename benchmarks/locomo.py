"""LoCoMo evidence recall: does the assembled prompt still hold the turns a question needs?

Feeds each LoCoMo conversation turn by turn (speaker A as user, speaker B as assistant,
each session opened by a system message with its date), then for every question of
categories 1-4 calls ``assemble(query=question)`` under several prompt budgets and
measures *evidence recall*: the share of the question's evidence turns whose text appears
in the prompt. Also measures assemble latency with a summarizer that takes 2 s per call
versus one that answers at once, and the share of consecutive prompts whose prefix
(system + summary) is unchanged.

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
from datetime import date
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


def turn_messages(sample: dict[str, Any]) -> Iterator[tuple[str | None, BaseMessage]]:
    """Yield ``(dia_id, message)``: a system marker per session, then its turns."""
    conversation = sample["conversation"]
    speaker_a = conversation["speaker_a"]
    for number in session_numbers(conversation):
        when = conversation.get(f"session_{number}_date_time", "")
        yield None, SystemMessage(f"Session {number} · {when}")
        for turn in conversation[f"session_{number}"]:
            text = turn["text"]
            if turn.get("blip_caption"):
                text += f" [shares a photo: {turn['blip_caption']}]"
            kind = HumanMessage if turn["speaker"] == speaker_a else AIMessage
            yield turn["dia_id"], kind(text, name=turn["speaker"])


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


def evidence_recall(
    sample: dict[str, Any], budgets: Sequence[int], embedder: Embeddings | None = None
) -> dict[int, list[tuple[int, float]]]:
    """Feed one conversation, then score every category 1-4 question at each budget.

    ``embedder`` None is the library's default (the bundled MiniLM, ONNX int8).
    Returns, per budget, ``(category, recall)`` for each question."""
    texts: dict[str, str] = {}
    with ConversationMemory.open(
        ":memory:", session=sample["sample_id"], budget=max(budgets), model=MODEL, embedder=embedder
    ) as mem:
        for dia_id, message in turn_messages(sample):
            mem.add(message)
            if dia_id is not None:
                texts[dia_id] = str(message.content)
        mem.wait_until_indexed(timeout=600)
        mem.wait_for_summary(timeout=600)
        scores: dict[int, list[tuple[int, float]]] = {b: [] for b in budgets}
        for qa in sample["qa"]:
            if qa.get("category") not in (1, 2, 3, 4):
                continue
            evidence = [texts[e] for e in qa.get("evidence", []) if e in texts]
            if not evidence:
                continue
            for budget in budgets:
                prompt = mem.assemble(system=SYSTEM, query=qa["question"], budget=budget)
                assert prompt.tokens <= budget, (prompt.tokens, budget)
                sent = prompt_text(prompt)
                recall = sum(e in sent for e in evidence) / len(evidence)
                scores[budget].append((qa["category"], recall))
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
        for _, message in turn_messages(sample):
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


def by_category(scores: dict[int, list[tuple[int, float]]]) -> list[str]:
    """A table of evidence recall per question category and budget."""
    budgets = sorted(scores)
    lines = [
        "| category | questions | " + " | ".join(f"{b:,}" for b in budgets) + " |",
        "|---|---:|" + "---:|" * len(budgets),
    ]
    for number, name in CATEGORIES.items():
        rows = {b: [r for c, r in scores[b] if c == number] for b in budgets}
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
    scores: dict[int, list[tuple[int, float]]] = {b: [] for b in args.budgets}
    embedder = MiniLMEmbeddings(backend=args.embedder)
    for sample in samples:
        for budget, values in evidence_recall(sample, args.budgets, embedder).items():
            scores[budget].extend(values)
        print(f"{sample['sample_id']}: done ({time.time() - started:.0f}s)", file=sys.stderr)
    recall = {b: statistics.mean(r for _, r in v) for b, v in scores.items()}
    fast = latency_and_prefix(samples[0], 0.0, 4000)
    slow = latency_and_prefix(samples[0], args.delay, 4000)
    lines = [
        "# LoCoMo evidence recall",
        "",
        f"Run {date.today().isoformat()} on {platform.machine()} ({platform.processor() or 'cpu'}),"
        f" Python {platform.python_version()}; {len(samples)} conversations, "
        f"{len(scores[args.budgets[0]])} questions (categories 1-4), tokens counted with "
        f"cl100k_base ({MODEL}); default options (offline extractive summarizer, bundled "
        f"MiniLM embeddings, {embedder.backend}); one memory per conversation opened with "
        f"the largest budget, "
        f"each question asked with `assemble(query=question, budget=B)` (an explicit query: "
        f"recalled turns may take up to {LOOKUP_RECALL_SHARE:.0%} of the budget); "
        f"{time.time() - started:.0f} s in all.",
        "",
        "| prompt budget | evidence recall | target | baseline: hybrid | baseline: last-N |",
        "|---:|---:|---:|---:|---:|",
    ]
    targets = {2000: ">= 0.85", 4000: ">= 0.92"}
    hybrid = {2000: "0.780", 4000: "0.847"}
    last_n = {2000: "0.075", 4000: "0.145"}
    for budget in sorted(recall):
        lines.append(
            f"| {budget:,} | {recall[budget]:.3f} | {targets.get(budget, '')} | "
            f"{hybrid.get(budget, '')} | {last_n.get(budget, '')} |"
        )
    lines += ["", "Every prompt was within its budget (checked for each question).", ""]
    lines += by_category(scores)
    lines += [
        "",
        plot(recall, args.out.with_suffix(".png")),
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
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
