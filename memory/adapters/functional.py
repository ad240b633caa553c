"""``summarize_messages``: messages in, budgeted messages and the running summary out.

For code that keeps its own state (a list of messages, in a graph or a database) and
wants no store: like langmem's ``summarize_messages``, it takes the whole conversation
and the running summary from the previous call, and returns what to send plus the
next running summary. Nothing is written anywhere; only the summarizer is called.
"""

from __future__ import annotations

import asyncio
import functools
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage

from memory._assemble import Prompt, assemble
from memory._budget import Budget, as_budget
from memory._context import sanitize
from memory._errors import InputError
from memory._folds import fold_points
from memory._messages import ExchangeBuilder, MessageLike, Turn, normalize
from memory._opening import fold_sizes
from memory._options import resolve_policy
from memory._pairing import check_pairing
from memory._policy import AssemblyPolicy
from memory._report import Report
from memory._summarize import ExtractiveSummarizer, LLMSummarizer, Summarizer
from memory._tokens import TokenCounter, resolve_counter
from memory._window import Summary, Window, choose_window
from memory.adapters._common import split_system

__all__ = ["RunningSummary", "SummarizationResult", "asummarize_messages", "summarize_messages"]


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


def summarize_messages(
    messages: Sequence[MessageLike],
    *,
    budget: Budget | int,
    running_summary: RunningSummary | None = None,
    model: BaseChatModel | Summarizer | None = None,
    token_counter: TokenCounter | BaseChatModel | Callable[[str], int] | None = None,
    model_name: str | None = None,
    system: str | None = None,
    policy: AssemblyPolicy | None = None,
    fold_share: float | None = None,
) -> SummarizationResult:
    """Fit a conversation into ``budget``, folding evicted messages into a running summary.

    The same policy as ``ConversationMemory.assemble`` (see ``AssemblyPolicy``): while
    the conversation fits it is sent as it is; when it no longer fits, a block of the
    oldest messages is folded into the summary, down to the policy's low-water mark, so
    the prompt's start (system, summary, verbatim turns) stays the same from one fold to
    the next and provider prompt caches keep hitting. Tool calls and their results are
    kept or folded together; the current user turn and the latest exchange always stay.

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
        policy: The assembly policy; None: ``AssemblyPolicy()``.
        fold_share: Deprecated and ignored: folds follow ``policy.low_water``.

    Returns:
        ``messages`` (system, conversation with the summary as a quoted block), the next
        ``running_summary`` and the assembly ``report``.

    Raises:
        InputError: a message cannot be accepted (a tool result whose call is not in
            the conversation...), or ``running_summary`` covers more messages than given.
        BudgetError: the system prompt and the current user turn alone do not fit.
        SummarizerError: the summarizer failed.
    """
    if fold_share is not None:
        warnings.warn(
            "fold_share is ignored: folds follow AssemblyPolicy.low_water",
            DeprecationWarning,
            stacklevel=2,
        )
    chosen = resolve_policy(policy, None)
    if running_summary is not None and not isinstance(running_summary, RunningSummary):
        raise InputError(
            "running_summary must be the RunningSummary a previous call returned "
            f"(result.running_summary), not {type(running_summary).__name__}"
        )
    state = running_summary or RunningSummary()
    limit = as_budget(budget).prompt_tokens
    counter = resolve_counter(token_counter, model=model_name)
    system_texts, conversation = split_system(normalize(list(messages)))
    system_text = "\n\n".join(t for t in [system or "", *system_texts] if t) or None
    check_pairing(conversation, open_calls=(), issued_calls=())
    if state.covers > len(conversation):
        raise InputError(
            f"the running summary covers {state.covers} messages but only "
            f"{len(conversation)} were given; pass the whole, growing conversation"
        )
    builder = ExchangeBuilder()
    builder.extend(
        Turn(seq, message, counter.count_message(sanitize(message)))
        for seq, message in enumerate(conversation, start=1)
    )
    exchanges = builder.exchanges
    system_tokens = counter.count_message(SystemMessage(system_text)) if system_text else 0
    sizes = fold_sizes(exchanges, limit, counter, policy=chosen, system_tokens=system_tokens)
    points = fold_points(exchanges, sizes[0])

    def prompt_for(summary: RunningSummary) -> tuple[Prompt, Window]:
        versions = [Summary(summary.text, summary.covers)] if summary.text else []
        window = choose_window(
            exchanges, limit, counter, policy=chosen, system=system_text,
            summaries=versions, points=points,
        )  # fmt: skip
        prompt = assemble(
            exchanges, limit, counter, system=system_text, window=window, policy=chosen
        )
        return prompt, window

    prompt, window = prompt_for(state)
    start_seq = exchanges[window.start].first_seq if window.start < len(exchanges) else None
    folded_upto = (start_seq - 1) if start_seq is not None else len(conversation)
    if window.start > 0 and folded_upto > state.covers:
        evicted = [m for m in conversation[state.covers : folded_upto]]
        summarizer = _summarizer(model, counter, chosen.summary_cap(limit))
        result = summarizer.summarize(state.text, evicted)
        state = RunningSummary(result.text, folded_upto)
        prompt, _ = prompt_for(state)
    return SummarizationResult(list(prompt.messages), state, prompt.report)


async def asummarize_messages(
    messages: Sequence[MessageLike], **options: Any
) -> SummarizationResult:
    """``summarize_messages`` for async code: the counting and the summarizer's model
    call run on a worker thread (``asyncio.to_thread``), never on the event loop.

    Takes the same keyword arguments and raises the same errors.
    """
    return await asyncio.to_thread(functools.partial(summarize_messages, messages, **options))
