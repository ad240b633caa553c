"""What prompts cost under provider prompt caching: context-attic vs raw history vs peers.

Replays the LoCoMo dev conversations as chats (a prompt before every assistant reply) and
the SWE-agent dev transcripts (a prompt before every assistant step) through four
strategies: context-attic (``open/add/assemble``), the raw history, langchain-core
``trim_messages`` and langchain's ``SummarizationMiddleware``. Every prompt is converted to
OpenAI chat format, tokenized with o200k_base and billed under OpenAI's caching rule (at
0%, 50% and 90% off cached tokens) and Anthropic's (reads 0.1x, writes 1.25x); see
``cache_cost.py`` for the exact rules and their sources. Issue 12's targets are checked.

Data: ../shared/data (LoCoMo CC BY-NC 4.0; SWE-agent MIT), not shipped. Run:
    .venv/bin/python benchmarks/cost.py [--budgets 4000 8000 16000]
        [--limit-conversations N] [--limit-transcripts N] [--out results/cost.md]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is not a package

from cache_cost import Segment, Tokenizer, price_call
from cost_report import (
    PEERS,
    RAW,
    SUMMARIZER_IN_RATIO,
    SUMMARIZER_OUT_RATIO,
    Run,
    conversation_table,
    dataset_table,
    plot,
    targets,
)
from cost_strategies import (
    LOCOMO_SYSTEM,
    SUMMARY_SHARE,
    Chat,
    Counter,
    FixedSummaryModel,
    Middleware,
    Ours,
    Raw,
    Sent,
    Trim,
    call_points,
    locomo_chat,
    swe_transcripts,
)
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import convert_to_messages
from locomo import spaced

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_LOCOMO = DATA / "locomo" / "locomo_dev.json"
DEFAULT_AGENT = DATA / "agent_transcripts" / "swe_agent_dev.jsonl"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "cost.md"


class Strategy(Protocol):
    """What the replay needs of a strategy."""

    name: str

    def call(self, new: Any) -> Sent:
        """Take the messages since the last call; return what the next call sends."""
        ...

    def recall_text(self, question: str) -> str:
        """Return what a question after the conversation would be sent with."""
        ...


class Setup:
    """What every replay shares: tokenizer, counter, embedder, summarizer choice."""

    def __init__(self, embedder: Embeddings, *, llm_summarizer: bool) -> None:
        self.tokenizer = Tokenizer()
        self.counter = Counter(self.tokenizer)
        self.embedder = embedder
        self.llm_summarizer = llm_summarizer

    def strategies(self, system: str | None, budget: int, session: str) -> list[Strategy]:
        """Build context-attic, trim_messages and the middleware for one run at one budget."""
        summarizer = None
        if self.llm_summarizer:
            size = int(budget * SUMMARY_SHARE * 0.9)  # under our cap, which refuses > 1.2x
            summarizer = FixedSummaryModel(summary_tokens=size, tokenizer=self.tokenizer)
        return [
            Ours(self.tokenizer, system, budget, session, self.embedder, summarizer),
            Trim(self.counter, system, budget),
            Middleware(self.counter, system, budget),
        ]


def replay(
    setup: Setup,
    dataset: str,
    conversation: str,
    system: str | None,
    chat: Chat,
    budgets: Sequence[int],
    questions: Sequence[tuple[str, list[str]]] = (),
) -> list[Run]:
    """Replay one conversation through every strategy; price each call; score evidence."""
    lc = convert_to_messages(chat)
    named: list[tuple[Strategy, Run]] = [
        (Raw(setup.tokenizer, system), Run(dataset, conversation, RAW, None))
    ]
    for budget in budgets:
        for strategy in setup.strategies(system, budget, f"{conversation}-{budget}"):
            named.append((strategy, Run(dataset, conversation, strategy.name, budget)))
    previous: dict[int, list[Segment]] = {}
    start = 0
    for point in [*call_points(chat), len(chat)]:
        for index, (strategy, run) in enumerate(named):
            new = chat[start:point] if isinstance(strategy, Raw | Ours) else lc[start:point]
            sent = strategy.call(new)
            if point == len(chat):
                continue  # the tail after the last reply: fed, not billed
            run.calls.append(
                price_call(previous.get(index), sent.segments,
                           summarizer_in=sent.summarizer_in, summarizer_out=sent.summarizer_out)
            )  # fmt: skip
            run.refused += sent.refused
            previous[index] = sent.segments
        start = point
    for strategy, run in named:
        if questions:
            shares = []
            for question, evidence in questions:
                text = spaced(strategy.recall_text(question))
                shares.append(sum(spaced(e) in text for e in evidence) / len(evidence))
            run.recall = sum(shares) / len(shares)
        if isinstance(strategy, Ours):
            strategy.close()
    return [run for _, run in named]


def locomo_runs(setup: Setup, args: argparse.Namespace) -> tuple[list[Run], list[str]]:
    """Replay the LoCoMo conversations."""
    samples = json.loads(args.locomo_data.read_text(encoding="utf-8"))
    samples = samples[: args.limit_conversations]
    runs: list[Run] = []
    for sample in samples:
        chat, texts = locomo_chat(sample)
        questions = []
        if not args.no_recall:
            for qa in sample["qa"]:
                evidence = [texts[e] for e in qa.get("evidence", []) if e in texts]
                if qa.get("category") in (1, 2, 3, 4) and evidence:
                    questions.append((str(qa["question"]), evidence))
        runs += replay(setup, "LoCoMo", sample["sample_id"], LOCOMO_SYSTEM, chat,
                       args.budgets, questions)  # fmt: skip
        print(f"LoCoMo {sample['sample_id']}: done ({time.time() - args.began:.0f}s)",
              file=sys.stderr)  # fmt: skip
    return runs, [s["sample_id"] for s in samples]


def agent_runs(setup: Setup, args: argparse.Namespace) -> tuple[list[Run], list[str]]:
    """Replay the SWE-agent transcripts."""
    runs: list[Run] = []
    ids = []
    for run_id, system, chat in swe_transcripts(args.agent_data, args.limit_transcripts):
        runs += replay(setup, "SWE-agent", run_id, system, chat, args.budgets)
        ids.append(run_id)
    print(f"SWE-agent: {len(ids)} transcripts ({time.time() - args.began:.0f}s)",
          file=sys.stderr)  # fmt: skip
    return runs, ids


def longest(runs: Sequence[Run], dataset: str) -> str:
    """The run of a data set with the most model calls."""
    raws = [r for r in runs if r.dataset == dataset and r.strategy == RAW]
    return max(raws, key=lambda r: len(r.calls)).conversation


def versions() -> str:
    """Installed versions of the packages compared."""
    found = []
    for name in ("context-attic", "langchain-core", "langchain", "tiktoken"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[4000, 8000, 16000])
    parser.add_argument("--limit-conversations", type=int, default=None, help="LoCoMo (0 skips)")
    parser.add_argument("--limit-transcripts", type=int, default=None, help="SWE-agent (0 skips)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--locomo-data", type=Path, default=DEFAULT_LOCOMO)
    parser.add_argument("--agent-data", type=Path, default=DEFAULT_AGENT)
    parser.add_argument("--fake-embedder", action="store_true", help="no MiniLM for ours")
    parser.add_argument(
        "--llm-summarizer", action="store_true", help="ours uses the fake fixed-size summarizer"
    )
    parser.add_argument("--no-recall", action="store_true", help="skip LoCoMo evidence recall")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target fails")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; write the Markdown results and the plot."""
    args = parse(argv)
    args.began = time.time()
    command = shlex.join(["benchmarks/cost.py", *(sys.argv[1:] if argv is None else argv)])
    have_locomo = args.locomo_data.exists() and args.limit_conversations != 0
    have_agent = args.agent_data.exists() and args.limit_transcripts != 0
    if not (have_locomo or have_agent):
        print("skipped: no data (see ../shared/data/README.md) or both limits are 0")
        return 0
    embedder: Embeddings = DeterministicFakeEmbedding(size=64)
    if not args.fake_embedder:
        from memory._embed import MiniLMEmbeddings

        embedder = MiniLMEmbeddings()
    from cost_strategies import CachedEmbeddings

    setup = Setup(CachedEmbeddings(embedder), llm_summarizer=args.llm_summarizer)
    runs: list[Run] = []
    datasets: list[tuple[str, list[str]]] = []
    if have_locomo:
        found, ids = locomo_runs(setup, args)
        runs += found
        datasets.append(("LoCoMo", ids))
    if have_agent:
        found, ids = agent_runs(setup, args)
        runs += found
        datasets.append(("SWE-agent", ids))
    verdicts = targets(runs, [d for d, _ in datasets], args.budgets)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # LoCoMo's first conversation (the conv-26), SWE-agent's longest transcript.
    shown = [(d, ids[0] if d == "LoCoMo" else longest(runs, d)) for d, ids in datasets]
    picture = plot(runs, shown, args.budgets[0], args.out.with_suffix(".png"))
    lines = header(args, command, datasets)
    lines += ["## Targets (issue 12), context-attic", "", "```", *verdicts, "```", ""]
    for dataset, _ in datasets:
        lines += [f"## {dataset}", ""]
        for budget in args.budgets:
            lines += dataset_table(runs, dataset, budget)
    lines += [picture, ""]
    for dataset, _ in datasets:
        lines += conversation_table(runs, dataset, args.budgets)
    lines += notes(args)
    lines.append(f"Full run: {time.time() - args.began:.0f} s.")
    text = "\n".join(lines) + "\n"
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return 1 if args.check and any(v.startswith("FAIL") for v in verdicts) else 0


def header(args: argparse.Namespace, command: str, datasets: Sequence[tuple[str, Sequence[str]]]
           ) -> list[str]:  # fmt: skip
    """The results file's opening: command, date, machine, data."""
    used = "; ".join(f"{name}: {len(ids)} ({', '.join(ids)})" for name, ids in datasets)
    embedder = "DeterministicFakeEmbedding(64)" if args.fake_embedder else "bundled MiniLM"
    summarizer = "fake fixed-size chat model" if args.llm_summarizer else "offline extractive"
    return [
        "# Prompt cost under provider prompt caching",
        "",
        f"Command: `{command}`  ",
        f"Run {date.today().isoformat()} on {platform.machine()} ({os.cpu_count()} CPUs), "
        f"Python {platform.python_version()}; {versions()}.  ",
        f"Data used: {used}.  ",
        f"context-attic: `ConversationMemory.open(':memory:', budget=B, model='gpt-4o-mini')`, "
        f"{embedder} embedder, {summarizer} summarizer; public API only "
        "(`add`, `assemble(system=...)`, `prompt.to_openai()`, `prompt.report`).",
        "",
        "Ratios are each strategy's effective input cost over raw history's on the same "
        "runs (below 1: cheaper). @d%: OpenAI's rule with cached tokens d% off; Anthropic: "
        "reads 0.1x, writes 1.25x. '+summ.' adds the summarizer's spend; 'max/conv' is the "
        "worst single conversation or transcript (summarizer included).",
        "",
    ]


def notes(args: argparse.Namespace) -> list[str]:
    """How the numbers are made."""
    return [
        "## How it is measured",
        "",
        "- A model call before every assistant message; the strategies see the messages "
        "before it. LoCoMo is fed as a plain chat: speaker A as user, speaker B as "
        "assistant, each text prefixed with the speaker's name and a session's first "
        "message with its date, no system markers; system prompt "
        f"{LOCOMO_SYSTEM!r}. SWE-agent: the transcript's system message is the system prompt.",
        "- Tokens: each prompt goes through `convert_to_openai_messages` and becomes a flat "
        "o200k_base sequence: per message `<start>role[:name]<sep>` + content + tool_calls "
        "JSON + tool_call_id + `<end>` (markers one token each), then the reply priming "
        "`<start>assistant<sep>`. `trim_messages` and the middleware count with the same "
        "tokens.",
        "- OpenAI rule: cached = the longest common token prefix with the previous prompt "
        "of the same run, 0 if under 1,024 tokens, else rounded down to a multiple of 128 "
        "(https://platform.openai.com/docs/guides/prompt-caching: automatic for prompts of "
        "1,024+ tokens, hits in 128-token increments). Cost = uncached + (1 - d) x cached.",
        "- Anthropic rule (https://docs.anthropic.com/en/docs/build-with-claude/prompt-"
        "caching): a breakpoint at the end of every prompt; read = the leading whole "
        "messages identical to the previous prompt's (if >= 1,024 tokens) at 0.1x; the rest "
        "of a prompt of >= 1,024 tokens is written at 1.25x; the reply priming and prompts "
        "under 1,024 tokens at 1x. Exact for raw history, optimistic for the others.",
        f"- Summarizer spend priced as gpt-4o-mini against a gpt-4o main model: input "
        f"{SUMMARIZER_IN_RATIO:.2f}x and output {SUMMARIZER_OUT_RATIO:.2f}x the main input "
        "price ($0.15/$0.60 vs $2.50 per Mtok). context-attic's comes from "
        "`prompt.report.summarizer_input_tokens/summarizer_output_tokens` (0 with the "
        "offline extractive summarizer: it calls no model); the middleware's from its fake "
        f"model: prompt tokens in, a summary of {SUMMARY_SHARE:.0%} of the budget out.",
        "- `trim_messages(strategy='last', start_on='human', include_system=True, "
        "max_tokens=B)`. `SummarizationMiddleware(trigger=('tokens', B - system), "
        "keep=('tokens', (B - system - summary) // 2))`, its `before_model` called on the "
        "state before every call and its update applied; the system prompt is sent apart.",
        "- context-attic: before each call the replay waits for background folds and "
        "indexing, so runs are deterministic. A call it refuses (`BudgetError`) is billed as "
        "the raw history ('refused').",
        f"- Peers: {', '.join(PEERS[1:])}. Evidence recall (LoCoMo, categories 1-4): the "
        "share of a question's evidence turns whose text is in what the strategy would "
        "send after the whole conversation (context-attic: `assemble(query=question)` at "
        "B; trim: the history plus the question trimmed; middleware: its final state). "
        "`benchmarks/locomo.py` measures context-attic's recall its own way (cl100k, memory "
        "opened at the largest budget).",
        "",
    ]


if __name__ == "__main__":
    sys.exit(main())
