"""Running summaries of evicted turns: a cheap chat model, or an offline extractive default.

A ``Summarizer`` turns the previous summary plus newly evicted messages into the next
summary. ``LLMSummarizer`` asks any LangChain chat model, with a prompt that keeps names,
numbers, dates, decisions, preferences and open tasks; evicted text longer than the
model's own context is summarized in pieces, each folded into the running summary, never
replaced by a placeholder. ``ExtractiveSummarizer`` needs no model: it keeps the most
informative sentences (numbers, dates, names, rare words) verbatim.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.runnables import Runnable

from memory._answer_check import check_on_task
from memory._errors import SummarizerError
from memory._supersede import supersessions
from memory._timestamps import format_time, message_time
from memory._tokens import TokenCounter
from memory.pricing import model_name_of

__all__ = [
    "DEFAULT_SUMMARY_TOKENS",
    "SUMMARY_PROMPT",
    "ExtractiveSummarizer",
    "LLMSummarizer",
    "Summarizer",
    "SummaryResult",
    "render_transcript",
]

DEFAULT_SUMMARY_TOKENS = 600
EXTRACT_RATIO = 0.25
"""Most of its input (previous summary plus evicted sentences) an extractive summary
keeps. Each fold sends one uncached prompt, so a summary that keeps almost all it
replaces costs a cache miss and saves little: at 8,000 tokens a 3,070-token first fold
was summarized in 1,323 tokens, and that prompt cost more than the raw history's at 50%
off (SWE-agent BabyTimeCapsule-10, benchmarks/cost.py)."""
EXTRACT_FLOOR = 100
"""Tokens an extractive summary may always keep (up to its cap): a few sentences of
facts are not cut to a quarter."""
DEFAULT_SUMMARIZER_CONTEXT = 8000
SUMMARY_PROMPT = """You maintain the running summary of a long conversation.
Update the summary below with the new messages. Keep every name, number, date, place,
decision, preference, commitment and open task, with the date it was said when the
messages give one; drop pleasantries and repetition. When a new message changes or
corrects a fact, keep only the new value (say that it changed). Write plain sentences or
short bullets, oldest facts first, at most {max_tokens} tokens.
Reply with the updated summary only.

Current summary:
{summary}

New messages:
{messages}"""
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]+|\d[\d,.:/-]*")
_DATE_HINT = re.compile(
    r"\b(\d{1,4}[-/]\d{1,2}([-/]\d{1,4})?|\d{1,2}:\d{2}|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|"
    r"nov|dec)[a-z]*|monday|tuesday|wednesday|thursday|friday|saturday|sunday|yesterday|"
    r"tomorrow|today|last \w+|next \w+)\b",
    re.IGNORECASE,
)


_DAY_PREFIX = re.compile(r"^\[\d{4}-\d{2}-\d{2}\] ")


@dataclass(frozen=True, slots=True)
class SummaryResult:
    """A new summary and what it cost to make."""

    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    calls: int = 0


@runtime_checkable
class Summarizer(Protocol):
    """Folds newly evicted messages into the running summary."""

    @property
    def name(self) -> str:
        """Identify the summarizer (recorded with every summary)."""
        ...

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        """Return the next summary.

        Raises:
            SummarizerError: the model failed or returned nothing usable.
        """
        ...


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") if isinstance(b, dict) else str(b) for b in content]
    return " ".join(p for p in parts if p)


def _line(message: BaseMessage) -> tuple[str, str] | None:
    """A message's speaker and text, tool calls named; None when it says nothing."""
    speaker = getattr(message, "name", None) or message.type
    text = _text(message).strip()
    calls = getattr(message, "tool_calls", None) or []
    if calls:
        text += " [calls " + ", ".join(str(c.get("name")) for c in calls) + "]"
    return (speaker, text) if text else None


def render_transcript(messages: Sequence[BaseMessage]) -> str:
    """Render messages as ``role: text`` lines, tool calls included by name.

    A message that carries a time (``additional_kwargs["timestamp"]``, as the memory
    passes evicted messages) starts its line with it, e.g. ``[2023-05-08 13:56 UTC] ``,
    whenever it differs from the previous line's.
    """
    lines = []
    shown = None
    for message in messages:
        found = _line(message)
        if found is None:
            continue
        at = message_time(message)
        when = None if at is None else format_time(at)
        prefix = f"[{when}] " if when is not None and when != shown else ""
        lines.append(f"{prefix}{found[0]}: {found[1]}")
        shown = when or shown
    return "\n".join(lines)


class LLMSummarizer:
    """Summarize with any LangChain chat model (the user's cheap one).

    Args:
        model: A ``BaseChatModel`` such as gpt-4o-mini, claude haiku or a local model,
            or one wrapped by ``with_retry()``, ``bind()`` or ``with_fallbacks()``.
        counter: Counts tokens to cap the summary and split over-long input.
        max_summary_tokens: The summary's cap; a longer answer is refused.
        context_tokens: The model's usable input; longer evicted text is summarized in
            pieces, each folded into the running summary.
    """

    def __init__(
        self,
        model: Runnable[LanguageModelInput, BaseMessage],
        counter: TokenCounter,
        *,
        max_summary_tokens: int = DEFAULT_SUMMARY_TOKENS,
        context_tokens: int = DEFAULT_SUMMARIZER_CONTEXT,
    ) -> None:
        self.model = model
        self.counter = counter
        self.max_summary_tokens = max_summary_tokens
        self.context_tokens = context_tokens

    @property
    def model_name(self) -> str | None:
        """The chat model's name as its provider bills it (``memory.pricing
        .model_name_of``); None when it has none."""
        return model_name_of(self.model)

    @property
    def billed_model(self) -> str:
        """The name its spend is priced by: ``model_name``, or "" for a model with no
        name (its price is unknown: ``money_saved`` is then None, not gross)."""
        return self.model_name or ""

    @property
    def name(self) -> str:
        """The model's class and name."""
        model_name = self.model_name
        return f"llm:{type(self.model).__name__}" + (f":{model_name}" if model_name else "")

    def _pieces(self, previous: str, transcript: str) -> list[str]:
        overhead = self.counter.count(SUMMARY_PROMPT) + self.max_summary_tokens
        room = max(200, self.context_tokens - overhead - self.counter.count(previous))
        pieces: list[str] = []
        current: list[str] = []
        size = 0
        for line in transcript.splitlines():
            tokens = self.counter.count(line) + 1
            while tokens > room:  # one huge message: split it by characters
                cut = max(1, len(line) * room // tokens)
                pieces.extend(["\n".join(current)] if current else [])
                current, size = [], 0
                pieces.append(line[:cut])
                line = line[cut:]
                tokens = self.counter.count(line) + 1
            if size + tokens > room and current:
                pieces.append("\n".join(current))
                current, size = [], 0
            current.append(line)
            size += tokens
        if current:
            pieces.append("\n".join(current))
        return pieces

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        """Fold ``evicted`` into ``previous_summary``, piece by piece if it is long.

        Raises:
            SummarizerError: the model raised, or answered empty or over the cap.
        """
        summary = previous_summary
        spent_in = spent_out = calls = 0
        for piece in self._pieces(previous_summary, render_transcript(evicted)):
            prompt = SUMMARY_PROMPT.format(
                max_tokens=self.max_summary_tokens, summary=summary or "(none yet)", messages=piece
            )
            messages = [
                SystemMessage("You write faithful, compact summaries."),
                HumanMessage(prompt),
            ]
            try:
                reply = self.model.invoke(messages)
            except Exception as exc:
                raise SummarizerError(
                    f"{self.name} failed: {type(exc).__name__}: {exc}",
                    input_tokens=spent_in,
                    output_tokens=spent_out,
                ) from exc
            calls += 1
            text = _text(reply).strip()
            usage = getattr(reply, "usage_metadata", None) or {}
            spent_in += int(usage.get("input_tokens") or self.counter.count_messages(messages))
            spent_out += int(usage.get("output_tokens") or self.counter.count(text))
            try:
                _check_answer(text, f"{summary}\n{piece}", self.name, self.counter,
                              self.max_summary_tokens)  # fmt: skip
            except SummarizerError as exc:  # refused answers were billed: say how much
                raise SummarizerError(
                    str(exc), input_tokens=spent_in, output_tokens=spent_out
                ) from exc
            summary = text
        return SummaryResult(summary, spent_in, spent_out, calls)


def _check_answer(
    text: str, source: str, name: str, counter: TokenCounter, max_tokens: int
) -> None:
    """Refuse an empty answer, one over the cap, a refusal or an off-task answer."""
    if not text:
        raise SummarizerError(f"{name} returned an empty summary")
    tokens = counter.count(text)
    if tokens > max_tokens * 1.2:
        raise SummarizerError(
            f"{name} returned {tokens} tokens, over the cap of {max_tokens}; the previous "
            "summary is kept"
        )
    check_on_task(text, source, name)


class ExtractiveSummarizer:
    """The offline default: keep the most informative sentences, verbatim, in order.

    It needs no model and no key. It scores each sentence of the previous summary and
    the evicted messages by rare words, numbers, dates and capitalized names, and keeps
    the best that fit ``max_summary_tokens`` and a quarter of the input's tokens
    (``EXTRACT_RATIO``, never under ``EXTRACT_FLOOR``), prefixed by their speaker. It does not
    paraphrase, merge facts or resolve pronouns: that takes a model.
    """

    name = "extractive"

    def __init__(
        self, counter: TokenCounter, *, max_summary_tokens: int = DEFAULT_SUMMARY_TOKENS
    ) -> None:
        self.counter = counter
        self.max_summary_tokens = max_summary_tokens

    def summarize(self, previous_summary: str, evicted: Sequence[BaseMessage]) -> SummaryResult:
        """Return the most informative sentences of the summary plus the evicted turns."""
        sentences: list[str] = [s for s in previous_summary.splitlines() if s.strip()]
        times = [message_time(m) for m in evicted]
        # Dates are shown when they tell messages apart (not for one day's chat).
        dated = len({format_time(t)[:10] for t in times if t is not None}) > 1
        for message, at in zip(evicted, times, strict=True):
            found = _line(message)
            if found is None:
                continue
            speaker = f"[{format_time(at)[:10]}] {found[0]}" if dated and at else found[0]
            for sentence in _SENTENCE.split(found[1]):
                if len(sentence.split()) >= 3:
                    sentences.append(f"{speaker}: {sentence.strip()}")
        frequency = Counter(w.lower() for s in sentences for w in _WORD.findall(s))
        total = sum(frequency.values()) or 1

        def score(sentence: str) -> float:
            words = _WORD.findall(sentence)
            if not words:
                return 0.0
            rarity = sum(math.log(total / frequency[w.lower()]) for w in words) / len(words)
            facts = sum(1 for w in words if w[0].isdigit()) + len(_DATE_HINT.findall(sentence))
            names = sum(1 for w in words[1:] if w[0].isupper())
            return rarity + 1.5 * facts + 0.5 * names

        # A sentence said again is kept once, where it was said last; a superseded one
        # goes, and what supersedes it ranks at least as high as it did.
        said = [_DAY_PREFIX.sub("", s) for s in sentences]  # the same words on another day
        last = {s: i for i, s in enumerate(said)}
        sentences = [s for i, s in enumerate(sentences) if last[said[i]] == i]
        scores = [score(s) for s in sentences]
        replaced = supersessions(sentences)
        for later, earlier in replaced.items():
            scores[later] = max(scores[later], *(scores[i] for i in earlier))
        gone = set().union(*replaced.values())
        sentences = [s for i, s in enumerate(sentences) if i not in gone]
        scores = [v for i, v in enumerate(scores) if i not in gone]
        sizes = [self.counter.count(s) + 1 for s in sentences]
        cap = min(self.max_summary_tokens, max(EXTRACT_FLOOR, int(EXTRACT_RATIO * sum(sizes))))
        ranked = sorted(range(len(sentences)), key=lambda i: (-scores[i], i))
        kept: list[int] = []
        used = 0
        for position in ranked:
            tokens = sizes[position]
            if used + tokens <= cap:
                kept.append(position)
                used += tokens
        text = "\n".join(sentences[i] for i in sorted(kept))
        return SummaryResult(text, 0, 0, 0)
