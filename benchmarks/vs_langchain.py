"""context-attic beside LangChain's own context tools, same summarizer, same budget.

Replays real agent runs (``../shared/data/agent_transcripts/swe_agent_dev.jsonl``) and
LoCoMo conversations (``../shared/data/locomo/locomo_dev.json``) through five ways of
building what a model call is sent:

- langchain-core ``trim_messages`` as its docs recommend for chat models (``start_on="human"``,
  ``end_on=("human", "tool")``), and plain (``strategy="last"`` only);
- langchain ``SummarizationMiddleware`` with its default ``keep`` (20 messages) and with a
  token ``keep``; its ``before_model`` hook is called directly and its state update applied;
- langchain-classic ``ConversationSummaryBufferMemory`` as a classic agent uses it: the
  turns' inputs and final answers are saved, this turn's tool calls are the scratchpad;
- ours: ``ConversationMemory`` (``add`` + ``assemble``).

Every system counts with the same tiktoken counter and summarizes with the same
deterministic fake chat model (the first sentence of each transcript line, newest kept,
capped at 15% of the budget). Skips cleanly (exit 0) when the data is absent. Run:
    .venv/bin/python benchmarks/vs_langchain.py [--budgets 4000 2000] [--locomo-limit 3]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import os
import platform
import re
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
    trim_messages,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict

from memory import ConversationMemory
from memory._errors import BudgetError
from memory._summarize import SUMMARY_PROMPT as OUR_SUMMARY_PROMPT
from memory._tokens import TiktokenCounter, counter_for_model

SUMMARY_HEADER = '<memory source="running summary'
"""How ours' summary block starts (memory.context.summary_block), in the first user turn."""
RECALL_HEADER = '<memory source="recalled'
REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
DEFAULT_AGENT_DATA = DATA / "agent_transcripts" / "swe_agent_dev.jsonl"
DEFAULT_LOCOMO_DATA = DATA / "locomo" / "locomo_dev.json"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "vs_langchain.md"
MODEL = "gpt-4o-mini"
SUMMARY_SHARE = 0.15  # the fake summarizer's cap, as our own summary cap
TOO_LONG = "too long to summarize"
LOCOMO_SYSTEM = "You are a friendly assistant who remembers the user's life."
SYSTEMS = (
    "trim_messages (recommended)",
    "trim_messages (plain)",
    "SummarizationMiddleware (keep 20 msgs)",
    "SummarizationMiddleware (keep tokens)",
    "ConversationSummaryBufferMemory",
    "context-attic",
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from langchain.agents.middleware.summarization import (
        DEFAULT_SUMMARY_PROMPT,
        SummarizationMiddleware,
    )
    from langchain_classic.memory import ConversationSummaryBufferMemory
    from langchain_classic.memory.prompt import SUMMARY_PROMPT as CLASSIC_SUMMARY_PROMPT

sys.path.insert(0, str(Path(__file__).resolve().parent))
from locomo import spaced, turn_messages  # noqa: E402  (benchmarks/ is not a package)

# --- shared pieces: one counter, one summarizer ------------------------------------------


class CachedCounter:
    """Our tiktoken counter, memoized per message so replays stay fast for everyone."""

    def __init__(self, counter: TiktokenCounter) -> None:
        self.counter = counter
        self._cache: dict[tuple[str, ...], int] = {}

    def message(self, message: BaseMessage) -> int:
        """Count one message in OpenAI's chat format."""
        calls = getattr(message, "tool_calls", None) or []
        key = (
            message.type,
            message.content if isinstance(message.content, str) else json.dumps(message.content),
            json.dumps(calls, sort_keys=True, default=str) if calls else "",
            str(getattr(message, "tool_call_id", "") or ""),
            str(message.name or ""),
        )
        if key not in self._cache:
            self._cache[key] = self.counter.count_message(message)
        return self._cache[key]

    def __call__(self, messages: Sequence[Any]) -> int:
        """Count a prompt (LangChain's ``token_counter`` signature)."""
        msgs = convert_to_messages(list(messages))
        return self.counter.reply_priming + sum(self.message(m) for m in msgs)


_TAG = re.compile(r"</?message[^>]*>")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_PROMPT_LINES = frozenset(
    line.strip()
    for prompt in (DEFAULT_SUMMARY_PROMPT, CLASSIC_SUMMARY_PROMPT.template, OUR_SUMMARY_PROMPT)
    for line in prompt.splitlines()
    if line.strip() and "{" not in line
) | {
    "(none yet)",
    "You write faithful, compact summaries.",
    "Here is a summary of the conversation to date:",
    SUMMARY_HEADER.strip(),
}


class FirstSentenceModel(BaseChatModel):
    """A deterministic fake summarizer: the first sentence of each line, newest kept.

    Prompt-template lines of the three systems are dropped, so every system's summary is
    made of conversation text only; the answer is capped at ``max_tokens``, keeping the
    newest sentences (a rolling summary).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)
    max_tokens: int
    count_text: Callable[[str], int]
    count_messages: Callable[[Sequence[BaseMessage]], int]

    @property
    def _llm_type(self) -> str:
        return "first-sentence-fake"

    def _summarize(self, text: str) -> str:
        kept: list[str] = []
        for raw in text.splitlines():
            line = _TAG.sub("", raw).strip()
            if not line or line in _PROMPT_LINES:
                continue
            sentence = " ".join(_SENTENCE.split(line, maxsplit=1)[0].split()[:40])
            if sentence not in kept:
                kept.append(sentence)
        chosen: list[str] = []
        used = 0
        for sentence in reversed(kept):
            tokens = self.count_text(sentence) + 1
            if used + tokens > self.max_tokens:
                break
            chosen.append(sentence)
            used += tokens
        return "\n".join(reversed(chosen)) or "Nothing to report."

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **_: Any
    ) -> ChatResult:
        text = "\n".join(m.text for m in messages)
        return ChatResult(generations=[ChatGeneration(message=AIMessage(self._summarize(text)))])

    def get_num_tokens(self, text: str) -> int:
        """Count with the shared counter (no GPT-2 download)."""
        return self.count_text(text)

    def get_num_tokens_from_messages(self, messages: list[BaseMessage], tools: Any = None) -> int:
        """Count with the shared counter (no GPT-2 download)."""
        return self.count_messages(messages)


def fake_model(count: CachedCounter, budget: int) -> FirstSentenceModel:
    """Return the summarizer every system gets at this budget."""
    return FirstSentenceModel(
        max_tokens=int(budget * SUMMARY_SHARE),
        count_text=count.counter.count,
        count_messages=count,
    )


def fresh(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """Copy messages, so no system sees another's edits (ids set by the middleware)."""
    return [m.model_copy(deep=True) for m in messages]


def text_of(message: BaseMessage) -> str:
    """Return a message's text content."""
    return message.text if not isinstance(message.content, str) else message.content


# --- the five systems ---------------------------------------------------------------------


class Trim:
    """``trim_messages`` over the whole history (stateless)."""

    def __init__(self, count: CachedCounter, budget: int, *, recommended: bool) -> None:
        self.count = count
        self.budget = budget
        self.extra: dict[str, Any] = (
            {"start_on": "human", "end_on": ("human", "tool")} if recommended else {}
        )
        self.history: list[BaseMessage] = []

    def feed(self, new: Sequence[BaseMessage]) -> None:
        """Remember new messages."""
        self.history.extend(fresh(new))

    def send(self, system: SystemMessage | None, tail: Sequence[BaseMessage] = ()) -> Any:
        """Return what a call sends."""
        head = [system] if system is not None else []
        return trim_messages(
            [*head, *self.history, *tail],
            max_tokens=self.budget,
            token_counter=self.count,
            strategy="last",
            include_system=True,
            **self.extra,
        )


class ProbedMiddleware(SummarizationMiddleware):  # type: ignore[type-arg]
    """``SummarizationMiddleware`` that notes what its pre-summary trim dropped."""

    dropped = 0
    placeholder = 0

    def _trim_messages_for_summary(self, messages: list[Any]) -> list[Any]:
        trimmed = super()._trim_messages_for_summary(messages)
        self.dropped += len(messages) - len(trimmed)
        if not trimmed:
            self.placeholder += len(messages)
        return trimmed


class Middleware:
    """``SummarizationMiddleware``: state messages, rewritten by ``before_model``."""

    def __init__(
        self, count: CachedCounter, budget: int, system_tokens: int, *, keep_tokens: bool
    ) -> None:
        room = max(1, budget - system_tokens)
        keep = (
            ("tokens", max(1, (room - int(budget * SUMMARY_SHARE)) // 2))
            if keep_tokens
            else ("messages", 20)
        )
        self.middleware = ProbedMiddleware(
            model=fake_model(count, budget),
            trigger=("tokens", room),
            keep=keep,
            token_counter=count,
        )
        self.state: list[BaseMessage] = []

    def feed(self, new: Sequence[BaseMessage]) -> None:
        """Add new messages to the graph state."""
        self.state.extend(fresh(new))

    def _run(self, state: list[BaseMessage]) -> list[BaseMessage]:
        update = self.middleware.before_model(cast(Any, {"messages": state}), cast(Any, None))
        if update is None:
            return state
        return list(update["messages"][1:])  # [RemoveMessage(REMOVE_ALL), *new]

    def call(self, system: SystemMessage | None) -> list[BaseMessage]:
        """Run the hook before a model call; return what the call sends."""
        self.state = self._run(self.state)
        return [*([system] if system is not None else []), *self.state]

    def ask(self, system: SystemMessage, question: HumanMessage) -> list[BaseMessage]:
        """Send a question after the conversation, leaving the state as it was."""
        return [system, *self._run([*self.state, question])]


class Classic:
    """``ConversationSummaryBufferMemory`` in a classic agent: memory + input + scratchpad."""

    def __init__(self, count: CachedCounter, budget: int, system_tokens: int) -> None:
        self.limit = max(50, budget - system_tokens - int(budget * SUMMARY_SHARE))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.memory = ConversationSummaryBufferMemory(
                llm=fake_model(count, budget), max_token_limit=self.limit, return_messages=True
            )
        self.inputs: list[BaseMessage] = []
        self.scratch: list[BaseMessage] = []

    def _close_turn(self) -> None:
        if not self.inputs:
            return
        answer = "\n".join(
            text_of(m) for m in self.scratch if isinstance(m, AIMessage) and not m.tool_calls
        )
        self.memory.save_context(
            {"input": "\n\n".join(text_of(m) for m in self.inputs)}, {"output": answer}
        )
        self.inputs, self.scratch = [], []

    def feed(self, new: Sequence[BaseMessage]) -> None:
        """Save finished turns; keep this turn's input and tool steps."""
        for message in fresh(new):
            if isinstance(message, HumanMessage | SystemMessage):
                if self.scratch:
                    self._close_turn()
                self.inputs.append(message)
            else:
                self.scratch.append(message)

    def call(self, system: SystemMessage | None) -> list[BaseMessage]:
        """Return what the agent sends: system, memory, this turn's input and steps."""
        history = self.memory.load_memory_variables({})["history"]
        head = [system] if system is not None else []
        return [*head, *history, *self.inputs, *self.scratch]

    def ask(self, system: SystemMessage, question: HumanMessage) -> list[BaseMessage]:
        """Send a question after the conversation (the last turn saved first)."""
        self._close_turn()
        return [system, *self.memory.load_memory_variables({})["history"], question]


class Ours:
    """``ConversationMemory``: ``add`` the new messages, ``assemble`` the prompt."""

    def __init__(self, budget: int, embedder: Embeddings, session: str) -> None:
        self.memory = ConversationMemory.open(
            ":memory:", session=session, budget=budget, model=MODEL, embedder=embedder,
            summarizer=fake_model(CachedCounter(counter_for_model(MODEL)), budget),
        )  # fmt: skip
        self.waited = 0.0

    def feed(self, new: Sequence[BaseMessage]) -> None:
        """Store new messages (session markers too)."""
        if new:
            self.memory.add(fresh(new))

    def settle(self, *, index: bool = False) -> None:
        """Wait for background folds (and indexing), so the run is deterministic."""
        started = time.perf_counter()
        self.memory.wait_for_summary(60)
        if index:
            self.memory.wait_until_indexed(600)
        self.waited += time.perf_counter() - started

    def call(self, system: SystemMessage | None, **kwargs: Any) -> list[BaseMessage] | None:
        """Return the assembled prompt, or None when ours refuses (``BudgetError``)."""
        try:
            prompt = self.memory.assemble(
                system=text_of(system) if system is not None else None, **kwargs
            )
        except BudgetError:
            return None
        return list(prompt.messages)


# --- metrics ------------------------------------------------------------------------------


def pairing_errors(sent: Sequence[BaseMessage]) -> list[str]:
    """Return why a provider would reject this message list (empty: it would not)."""
    errors = []
    conversation = [m for m in sent if not isinstance(m, SystemMessage)]
    if conversation and isinstance(conversation[0], ToolMessage):
        errors.append("tool message first")
    issued: set[str] = set()
    for index, message in enumerate(sent):
        if isinstance(message, ToolMessage) and message.tool_call_id not in issued:
            errors.append("orphan tool result")
        if isinstance(message, AIMessage) and message.tool_calls:
            ids = {c["id"] for c in message.tool_calls if c.get("id")}
            issued |= ids
            answered = set()
            for following in sent[index + 1 :]:
                if not isinstance(following, ToolMessage):
                    break
                answered.add(following.tool_call_id)
            if ids - answered:
                errors.append("unanswered tool call")
    return errors


def head_of(sent: Sequence[BaseMessage]) -> tuple[str, ...]:
    """Return the leading system and summary messages (not ours' per-query recall block)."""
    head = []
    for message in sent:
        is_summary = message.additional_kwargs.get("lc_source") == "summarization"
        is_summary = is_summary or text_of(message).startswith(SUMMARY_HEADER)
        if not (isinstance(message, SystemMessage) or is_summary):
            break
        if not text_of(message).startswith(RECALL_HEADER):
            head.append(f"{message.type}:{text_of(message)}")
    return tuple(head)


def same(a: BaseMessage, b: BaseMessage) -> bool:
    """Whether two messages would serialize identically for a provider."""
    return (
        a.type == b.type
        and a.content == b.content
        and (getattr(a, "tool_calls", None) or []) == (getattr(b, "tool_calls", None) or [])
        and getattr(a, "tool_call_id", None) == getattr(b, "tool_call_id", None)
    )


@dataclass
class Tally:
    """Per-system results over many calls."""

    tokens: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    over_budget: int = 0
    rejected: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    no_conversation: int = 0
    refused: int = 0
    head_same: int = 0
    head_pairs: int = 0
    cached: list[float] = field(default_factory=list)
    lost: int = 0
    dropped: int = 0
    recall: dict[int, list[float]] = field(default_factory=dict)
    add_seconds: list[float] = field(default_factory=list)


def score_call(
    tally: Tally,
    sent: list[BaseMessage] | None,
    previous: list[BaseMessage] | None,
    count: CachedCounter,
    budget: int,
    seconds: float,
) -> None:
    """Record one model call's prompt."""
    tally.seconds.append(seconds)
    if sent is None:
        tally.refused += 1
        return
    tokens = count(sent)
    tally.tokens.append(tokens)
    tally.over_budget += tokens > budget
    errors = pairing_errors(sent)
    tally.rejected += bool(errors)
    for reason in set(errors):
        tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
    tally.no_conversation += not any(not isinstance(m, SystemMessage) for m in sent)
    if previous is not None:
        tally.head_pairs += 1
        tally.head_same += head_of(sent) == head_of(previous)
        common = 0
        for a, b in zip(previous, sent, strict=False):
            if not same(a, b):
                break
            common += 1
        tally.cached.append((count(sent[:common]) - 3) / max(1, tokens - 3) if common else 0.0)


# --- the agent replay ---------------------------------------------------------------------


def transcripts(path: Path, limit: int | None) -> Iterator[tuple[str, list[BaseMessage]]]:
    """Yield ``(id, messages)`` for each agent run."""
    with path.open() as lines:
        for line in itertools.islice(lines, limit):
            record = json.loads(line)
            yield record["id"], convert_to_messages(record["messages"])


def replay_run(
    run_id: str,
    messages: list[BaseMessage],
    budgets: Sequence[int],
    count: CachedCounter,
    results: dict[int, dict[str, Tally]],
) -> int:
    """Replay one agent run at every budget, one model call per assistant message."""
    system = messages[0] if isinstance(messages[0], SystemMessage) else None
    conversation = messages[1:] if system is not None else messages
    system_tokens = count([system]) if system is not None else 0
    points = [i for i, m in enumerate(conversation) if isinstance(m, AIMessage)]
    for budget in budgets:
        tallies = results[budget]
        trims = {
            SYSTEMS[0]: Trim(count, budget, recommended=True),
            SYSTEMS[1]: Trim(count, budget, recommended=False),
        }
        middlewares = {
            SYSTEMS[2]: Middleware(count, budget, system_tokens, keep_tokens=False),
            SYSTEMS[3]: Middleware(count, budget, system_tokens, keep_tokens=True),
        }
        classic = Classic(count, budget, system_tokens)
        ours = Ours(budget, DeterministicFakeEmbedding(size=64), f"{run_id}-{budget}")
        previous: dict[str, list[BaseMessage] | None] = dict.fromkeys(SYSTEMS)
        start = 0
        for point in points:
            new = conversation[start:point]
            start = point
            sent: dict[str, list[BaseMessage] | None] = {}
            timing: dict[str, float] = {}
            for name, trim in trims.items():
                began = time.perf_counter()
                trim.feed(new)
                sent[name] = trim.send(system)
                timing[name] = time.perf_counter() - began
            for name, middleware in middlewares.items():
                began = time.perf_counter()
                middleware.feed(new)
                sent[name] = middleware.call(system)
                timing[name] = time.perf_counter() - began
            began = time.perf_counter()
            classic.feed(new)
            sent[SYSTEMS[4]] = classic.call(system)
            timing[SYSTEMS[4]] = time.perf_counter() - began
            began = time.perf_counter()
            ours.feed(new)
            added = time.perf_counter() - began
            ours.settle(index=True)  # not timed: in production assemble never waits
            began = time.perf_counter()
            sent[SYSTEMS[5]] = ours.call(system)
            assembled = time.perf_counter() - began
            timing[SYSTEMS[5]] = added + assembled
            tallies[SYSTEMS[5]].add_seconds.append(added)
            for name in SYSTEMS:
                score_call(tallies[name], sent[name], previous[name], count, budget, timing[name])
                previous[name] = sent[name]
        for name, middleware in middlewares.items():
            tallies[name].lost += middleware.middleware.placeholder
            tallies[name].dropped += middleware.middleware.dropped
        ours.memory.close()
    return len(points)


def stitched(path: Path) -> list[BaseMessage]:
    """One long tool-calling run: the first such run, then every other's tool rounds.

    The tool-calling runs are short (~7k tokens); joined, their rounds make a run long
    enough to show what happens when an agent's evicted part passes 4,000 tokens. Tool
    call ids get a per-run prefix so they stay unique.
    """
    joined: list[BaseMessage] = []
    for index, (_, messages) in enumerate(transcripts(path, None)):
        if not any(isinstance(m, ToolMessage) for m in messages):
            continue
        for message in messages if not joined else messages[2:]:
            if isinstance(message, ToolMessage):
                message = message.model_copy(
                    update={"tool_call_id": f"r{index}-{message.tool_call_id}"}
                )
            elif isinstance(message, AIMessage) and message.tool_calls:
                calls = [{**c, "id": f"r{index}-{c['id']}"} for c in message.tool_calls]
                message = AIMessage(message.content, tool_calls=calls)
            joined.append(message)
    return joined


# --- LoCoMo evidence recall ---------------------------------------------------------------


class CachedEmbeddings(Embeddings):
    """Memoize an embedder, so the per-budget memories embed each text once."""

    def __init__(self, inner: Embeddings) -> None:
        self.inner = inner
        self._cache: dict[str, list[float]] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts not seen before; reuse the rest."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            self._cache.update(zip(missing, self.inner.embed_documents(missing), strict=True))
        return [self._cache[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        """Embed a query (not cached: queries differ)."""
        return self.inner.embed_query(text)


def locomo_recall(
    path: Path,
    budgets: Sequence[int],
    limit: int,
    count: CachedCounter,
    embedder: Embeddings,
    results: dict[int, dict[str, Tally]],
) -> tuple[int, int]:
    """Feed each conversation to every system, score category 1-4 questions' evidence."""
    samples = json.loads(path.read_text())[:limit]
    questions = 0
    system = SystemMessage(LOCOMO_SYSTEM)
    system_tokens = count([system])
    for sample in samples:
        turns = list(turn_messages(sample))
        texts = {dia: text_of(m) for dia, m in turns if dia is not None}
        messages = [m for _, m in turns]
        qas = [
            qa
            for qa in sample["qa"]
            if qa.get("category") in (1, 2, 3, 4)
            and any(e in texts for e in qa.get("evidence", []))
        ]
        questions += len(qas)
        for budget in budgets:
            trims = [Trim(count, budget, recommended=r) for r in (True, False)]
            middlewares = [
                Middleware(count, budget, system_tokens, keep_tokens=k) for k in (False, True)
            ]
            classic = Classic(count, budget, system_tokens)
            ours = Ours(budget, embedder, f"{sample['sample_id']}-{budget}")
            start = 0
            for point, message in enumerate(messages):
                if not isinstance(message, AIMessage):
                    continue  # a model call writes each assistant turn
                new = messages[start:point]
                start = point
                for part in (*trims, *middlewares, classic, ours):
                    part.feed(new)
                for middleware in middlewares:
                    middleware.call(system)
                ours.settle()
            for part in (*trims, *middlewares, classic, ours):
                part.feed(messages[start:])
            ours.settle(index=True)
            for qa in qas:
                question = HumanMessage(qa["question"])
                evidence = [texts[e] for e in qa["evidence"] if e in texts]
                asked = count([question]) - 3
                views: dict[str, list[BaseMessage] | None] = {
                    SYSTEMS[0]: trims[0].send(system, [question]),
                    SYSTEMS[1]: trims[1].send(system, [question]),
                    SYSTEMS[2]: middlewares[0].ask(system, question),
                    SYSTEMS[3]: middlewares[1].ask(system, question),
                    SYSTEMS[4]: classic.ask(system, question),
                }
                began = time.perf_counter()
                ours_view = ours.call(system, query=qa["question"], budget=budget - asked)
                results[budget][SYSTEMS[5]].seconds.append(time.perf_counter() - began)
                views[SYSTEMS[5]] = None if ours_view is None else [*ours_view, question]
                for name, view in views.items():
                    sent_text = spaced("\n".join(text_of(m) for m in view or []))
                    share = sum(spaced(e) in sent_text for e in evidence) / len(evidence)
                    results[budget][name].recall.setdefault(budget, []).append(share)
            ours.memory.close()
    return len(samples), questions


# --- report -------------------------------------------------------------------------------


def mean(values: Sequence[float]) -> float:
    """Mean, 0 for none."""
    return statistics.fmean(values) if values else 0.0


def versions() -> str:
    """Installed versions of the packages compared."""
    names = ("langchain-core", "langchain", "langchain-classic", "langgraph", "tiktoken")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} -")
    return ", ".join(found)


def agent_table(title: str, budget: int, tallies: dict[str, Tally]) -> list[str]:
    """One Markdown table of an agent replay at one budget."""
    rows = [
        f"### {title}",
        "",
        "| system | mean tokens/call | max | over budget | refused | provider rejects "
        "| system only | facts lost (placeholder) | msgs never summarized "
        "| head unchanged | cached prefix | ms/call |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, t in tallies.items():
        calls = len(t.seconds)
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(t.reasons.items()))
        rejects = f"{t.rejected}" + (f" ({reasons})" if reasons else "")
        rows.append(
            f"| {name} | {mean(t.tokens):,.0f} | {max(t.tokens, default=0):,} "
            f"| {t.over_budget}/{calls} | {t.refused} | {rejects} | {t.no_conversation} "
            f"| {t.lost} | {t.dropped} | {t.head_same / max(1, t.head_pairs):.0%} "
            f"| {mean(t.cached):.0%} | {mean(t.seconds) * 1000:.2f} |"
        )
    ours = tallies[SYSTEMS[-1]]
    add_ms = mean(ours.add_seconds) * 1000
    rows += [
        "",
        f"context-attic per call: `add` {add_ms:.2f} ms + `assemble` "
        f"{mean(ours.seconds) * 1000 - add_ms:.2f} ms.",
    ]
    return [*rows, ""]


def locomo_table(
    budgets: Sequence[int], results: dict[int, dict[str, Tally]], samples: int, questions: int
) -> list[str]:
    """The LoCoMo evidence-recall table."""
    head = " | ".join(f"recall @ {b:,}" for b in budgets)
    rows = [
        f"### LoCoMo evidence recall ({samples} conversations, {questions} questions, "
        "categories 1-4)",
        "",
        f"| system | {head} |",
        "|---|" + "---:|" * len(budgets),
    ]
    for name in SYSTEMS:
        cells = " | ".join(f"{mean(results[b][name].recall.get(b, [])):.3f}" for b in budgets)
        rows.append(f"| {name} | {cells} |")
    ms = " / ".join(f"{mean(results[b][SYSTEMS[5]].seconds) * 1000:.1f}" for b in budgets)
    rows += ["", f"context-attic `assemble(query=...)` per question, mean ms: {ms}.", ""]
    return rows


def settings_text(budgets: Sequence[int]) -> list[str]:
    """The exact settings, as Markdown bullets."""
    shown = " and ".join(f"{b:,}" for b in budgets)
    return [
        "## Settings",
        "",
        f"- Budgets: {shown} prompt tokens, counted for every system with "
        f"`counter_for_model({MODEL!r})` (tiktoken o200k_base, OpenAI chat overhead); "
        "LangChain's `token_counter` is that counter over a message list.",
        "- Summarizer, the same for all: a deterministic fake chat model that keeps the "
        "first sentence (at most 40 words) of each transcript line, drops the three "
        f"systems' prompt-template lines, and keeps the newest sentences within "
        f"{SUMMARY_SHARE:.0%} of the budget (our own summary cap).",
        "- `trim_messages(strategy='last', include_system=True, max_tokens=B)`; "
        "recommended adds `start_on='human', end_on=('human', 'tool')` (its docs' chat-model "
        "recipe), plain adds nothing.",
        "- `SummarizationMiddleware(model=fake, trigger=('tokens', B - system), "
        "token_counter=counter)` with `keep=('messages', 20)` (default) or "
        "`keep=('tokens', (B - system - summary cap) // 2)`; `trim_tokens_to_summarize` "
        "default (4,000). The system prompt is sent apart, as `create_agent(system_prompt=)` "
        "does. `before_model` is called directly and its `RemoveMessage(REMOVE_ALL)` update "
        "applied to the state.",
        "- `ConversationSummaryBufferMemory(llm=fake, max_token_limit=B - system - summary "
        "cap, return_messages=True)`, used as a classic agent does: each turn's inputs and "
        "final answer are saved with `save_context`; tool calls and results are not saved but "
        "sent, this turn only, as the agent scratchpad. LoCoMo session markers join the next "
        "input.",
        "- context-attic: `ConversationMemory.open(':memory:', budget=B, model='gpt-4o-mini', "
        "summarizer=fake)`, defaults otherwise (tool outputs over 500 tokens archived as "
        "digests, recall share 0.6); `DeterministicFakeEmbedding(64)` in the agent replay, "
        "the bundled MiniLM for LoCoMo. Before each call the replay waits for background "
        "folds and indexing (untimed) so runs are deterministic; in production `assemble` "
        "never waits. Time per call = `add` + `assemble`.",
        "- Provider rejects: a tool result whose call is not earlier in the sent list, a tool "
        "call not followed by all its results, or a tool message first. Facts lost: messages "
        "replaced by 'Previous conversation was too long to summarize.'. Msgs never "
        "summarized: messages the middleware's pre-summary trim (4,000 tokens, "
        "start_on='human') left out of the summarizer's input (placeholder cases included); "
        "ours summarizes long input in pieces, so 0 by construction. Head unchanged: "
        "consecutive calls whose leading system/summary messages are identical (ours' "
        "per-query recall block excluded). Cached prefix: mean share of a call's tokens in "
        "messages identical, in order, to the previous call's (what a provider prompt cache "
        "could reuse).",
        "- LoCoMo: a model call before every assistant turn; then each question is appended "
        "as the last human message of each system's view (ours: `assemble(query=question, "
        "budget=B - question tokens)` plus the question). Recall: share of the question's "
        "evidence turn texts found verbatim in what is sent.",
        "",
        "## Caveats",
        "",
        "- The summarizer is a fake: real summaries paraphrase, so summary-borne recall "
        "differs; every system gets the same fake, so the comparison holds, not the levels.",
        "- 'System only': calls where nothing but the system prompt was sent (`trim_messages` "
        "found no room or no human message to start on); 'refused': ours raised "
        "`BudgetError` because the system prompt plus the current user turn exceed the "
        "budget (SWE-agent system prompts are 350-2,000 tokens and some observations "
        "4,800).",
        "- Most SWE-agent runs here send tool observations as user messages; only the "
        "function-calling runs exercise tool-call pairing, hence the stitched long run.",
        "- Times are single-threaded Python on a shared machine; ours includes a SQLite write "
        "and a recall search per call, the others work on in-memory lists.",
        "",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent-data", type=Path, default=DEFAULT_AGENT_DATA)
    parser.add_argument("--locomo-data", type=Path, default=DEFAULT_LOCOMO_DATA)
    parser.add_argument("--budgets", type=int, nargs="+", default=[4000, 2000])
    parser.add_argument("--transcripts", type=int, default=None, help="agent runs (all)")
    parser.add_argument("--locomo-limit", type=int, default=3, help="conversations (0 skips)")
    parser.add_argument("--fake-embedder", action="store_true", help="no MiniLM for LoCoMo")
    parser.add_argument("--long-budgets", type=int, nargs="*", default=[8000, 4000])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    if not args.agent_data.exists():
        print(f"skipped: {args.agent_data} is absent (see ../shared/data/README.md)")
        return 0
    began = time.perf_counter()
    count = CachedCounter(counter_for_model(MODEL))
    results = {b: {name: Tally() for name in SYSTEMS} for b in args.budgets}
    runs = calls = 0
    for run_id, messages in transcripts(args.agent_data, args.transcripts):
        runs += 1
        calls += replay_run(run_id, messages, args.budgets, count, results)
    lines = [
        "# context-attic vs LangChain's context tools",
        "",
        f"Run {date.today().isoformat()} on {platform.machine()} "
        f"({os.cpu_count()} CPUs), Python {platform.python_version()}; {versions()}. "
        f"Agent replay: {runs} SWE-agent runs, {calls} model calls each budget.",
        "",
    ]
    for budget in args.budgets:
        lines += agent_table(f"Agent replay, budget {budget:,} tokens", budget, results[budget])
    if args.long_budgets:
        long_run = stitched(args.agent_data)
        long = {b: {name: Tally() for name in SYSTEMS} for b in args.long_budgets}
        long_calls = replay_run("stitched", long_run, args.long_budgets, count, long)
        lines += [
            f"Long run: the {long_calls} tool-calling rounds of the SWE-agent runs that use "
            f"function calling, joined behind the first one's system prompt and task "
            f"({count(long_run):,} tokens, one user message; call ids made unique). "
            "Constructed to show an agent whose evicted part passes 4,000 tokens.",
            "",
        ]
        for budget in args.long_budgets:
            title = f"Long stitched agent run, budget {budget:,} tokens"
            lines += agent_table(title, budget, long[budget])
    if args.locomo_limit and args.locomo_data.exists():
        embedder: Embeddings = DeterministicFakeEmbedding(size=64)
        if not args.fake_embedder:
            from memory._embed import MiniLMEmbeddings

            embedder = MiniLMEmbeddings()
        tallies = {b: {name: Tally() for name in SYSTEMS} for b in args.budgets}
        samples, questions = locomo_recall(
            args.locomo_data, args.budgets, args.locomo_limit, count, CachedEmbeddings(embedder),
            tallies,
        )  # fmt: skip
        lines += locomo_table(args.budgets, tallies, samples, questions)
    else:
        lines += ["LoCoMo: skipped (data absent or --locomo-limit 0).", ""]
    lines += settings_text(args.budgets)
    lines.append(f"Full run: {time.perf_counter() - began:.0f} s.")
    report = "\n".join(lines) + "\n"
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
