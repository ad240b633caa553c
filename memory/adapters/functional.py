"""``summarize_messages``: messages in, budgeted messages and the running summary out.

For code that keeps its own state (a list of messages, in a graph or a database) and
wants no store: like langmem's ``summarize_messages``, it takes the whole conversation
and the running summary from the previous call, and returns what to send plus the
next running summary. Nothing is written anywhere; only the summarizer is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage

from memory.adapters._common import split_system
from memory.assemble import DEFAULT_SUMMARY_SHARE, Prompt, assemble
from memory.budget import Budget, as_budget
from memory.errors import InputError
from memory.messages import ExchangeBuilder, MessageLike, Turn, check_pairing, normalize
from memory.report import Report
from memory.summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer
from memory.tokens import TokenCounter, resolve_counter

__all__ = ["DEFAULT_FOLD_SHARE", "RunningSummary", "SummarizationResult", "summarize_messages"]

DEFAULT_FOLD_SHARE = 0.10
"""Evicted messages are folded into the summary once they reach this share of the budget."""


@dataclass(frozen=True, slots=True)
class RunningSummary:
    """The state to carry from one call to the next.

    Attributes:
        text: The summary of the folded messages.
        covers: How many leading messages of the conversation (system messages not
            counted) the summary covers; they are not sent verbatim again.
    """

    text: str = ""
    covers: int = 0


@dataclass(frozen=True, slots=True)
class SummarizationResult:
    """What to send, and the running summary to pass to the next call."""

    messages: list[BaseMessage]
    running_summary: RunningSummary
    report: Report


def _summarizer(
    model: BaseChatModel | Summarizer | None, counter: TokenCounter, cap: int
) -> Summarizer:
    if model is None:
        return ExtractiveSummarizer(counter, max_summary_tokens=cap)
    if isinstance(model, BaseChatModel):
        return LLMSummarizer(model, counter, max_summary_tokens=cap)
    return model


def _prompt(
    turns: Sequence[Turn], budget: Budget, counter: TokenCounter, system: str, summary: str
) -> Prompt:
    builder = ExchangeBuilder()
    builder.extend(turns)
    return assemble(
        builder.exchanges, budget, counter, system=system or None, summary=summary or None
    )


def summarize_messages(
    messages: Sequence[MessageLike],
    *,
    budget: Budget | int,
    running_summary: RunningSummary | None = None,
    model: BaseChatModel | Summarizer | None = None,
    token_counter: TokenCounter | BaseChatModel | Callable[[str], int] | None = None,
    model_name: str | None = None,
    system: str | None = None,
    fold_share: float = DEFAULT_FOLD_SHARE,
) -> SummarizationResult:
    """Fit a conversation into ``budget``, folding evicted messages into a running summary.

    The prompt keeps the system prompt, the summary, the current user turn and the
    latest exchange, then older exchanges newest first while they fit (tool calls and
    their results kept or left out together). Messages older than the kept window are
    folded into the summary in blocks (once they reach ``fold_share`` of the budget), so
    the summary, early in the prompt, changes rarely and prompt caches keep hitting.

    Args:
        messages: The whole conversation, oldest first, in any supported form; pass the
            same growing list on every call. System messages are joined to ``system``.
        budget: A ``Budget`` or a number of prompt tokens.
        running_summary: What the previous call returned; None on the first call.
        model: The summarizer: a chat model, a ``Summarizer``, or None for the offline
            extractive one.
        token_counter: Your own counter; None counts with tiktoken for ``model_name``.
        model_name: The model the prompt is for; picks the tokenizer.
        system: The system prompt, always sent first.
        fold_share: Share of the budget that evicted messages reach before being folded.

    Returns:
        ``messages`` (system, summary, recent turns), the next ``running_summary`` and
        the assembly ``report``.

    Raises:
        InputError: a message cannot be accepted (a tool result whose call is not in
            the conversation...), or ``running_summary`` covers more messages than given.
        BudgetError: the system prompt and the current user turn alone do not fit.
        SummarizerError: the summarizer failed.
    """
    state = running_summary or RunningSummary()
    checked = as_budget(budget)
    counter = resolve_counter(token_counter, model=model_name)
    system_texts, conversation = split_system(normalize(list(messages)))
    system_text = "\n\n".join(t for t in [system or "", *system_texts] if t)
    check_pairing(conversation, open_calls=(), issued_calls=())
    if state.covers > len(conversation):
        raise InputError(
            f"the running summary covers {state.covers} messages but only "
            f"{len(conversation)} were given; pass the whole, growing conversation"
        )
    turns = [
        Turn(seq, message, counter.count_message(message))
        for seq, message in enumerate(conversation, start=1)
    ]
    prompt = _prompt(turns[state.covers :], checked, counter, system_text, state.text)
    kept = {id(m) for m in prompt.messages}
    evicted: list[Turn] = []
    for turn in turns[state.covers :]:
        if id(turn.message) in kept:
            break
        evicted.append(turn)
    if evicted and sum(t.tokens for t in evicted) >= checked.prompt_tokens * fold_share:
        cap = int(checked.prompt_tokens * DEFAULT_SUMMARY_SHARE)
        summarizer = _summarizer(model, counter, cap)
        result = summarizer.summarize(state.text, [t.message for t in evicted])
        state = RunningSummary(result.text, state.covers + len(evicted))
        prompt = _prompt(turns[state.covers :], checked, counter, system_text, state.text)
    return SummarizationResult(list(prompt.messages), state, prompt.report)
