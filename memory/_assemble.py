"""Assemble a prompt that fits a token budget: THE assembly policy, a pure function, no I/O.

``memory._window.choose_window`` decides the verbatim turns, the summary and the room for
recall (priority: system prompt; current user turn; latest exchange whole; then summary
and recall; then older turns). This module lays the prompt out for prompt caches:

    system · [opening user turn] · [summary block] · verbatim turns since the last fold
    · turns appended since · [recall block] + the current user turn

so that, between folds, each prompt minus its recall block is a prefix of the next one.
Exchanges are kept or dropped whole: a tool result never travels without its call.
Every prompt starts on a user turn after the system message, has no blank text block,
and keeps thinking blocks as they were.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    HumanMessage,
    SystemMessage,
    convert_to_openai_messages,
)

from memory._anthropic import to_anthropic, unmarked, with_breakpoint
from memory._arguments import original_arguments
from memory._breakpoints import anchor_count
from memory._budget import Budget, as_budget
from memory._context import as_user_turns, place_blocks, recall_block, sanitize
from memory._dates import dated_turns
from memory._errors import BudgetError
from memory._exchange_log import Exchanges
from memory._folds import fold_points
from memory._messages import Exchange, Turn
from memory._opening import fold_sizes
from memory._pairing import unique_call_ids
from memory._policy import DEFAULT_POLICY, AssemblyPolicy
from memory._report import PartTokens, Report
from memory._tokens import TokenCounter
from memory._window import BLOCK_MARGIN, Summary, Window, choose_window
from memory._wire import sendable

__all__ = ["Prompt", "Summary", "assemble"]


@dataclass(frozen=True, slots=True)
class Prompt:
    """An assembled prompt: messages that fit the budget, their count and a report.

    Attributes:
        messages: System message first, then the conversation, chronological.
        tokens: Counted tokens (``<= budget``), reply priming included.
        report: What was kept, left out, summarized, recalled; the tokens of each part.
        stable_count: How many leading messages the next prompt repeats unless a fold
            comes between (everything but the recall block and the message it leads).
        anchor_count: How many leading messages every prompt repeats, folds or not (the
            system prompt and the pinned opening turn before a summary; 0: none): a
            second breakpoint for Anthropic (``memory._breakpoints``).
        message_tokens: Each message's counted tokens (their sum plus the reply priming
            is ``tokens``).
    """

    messages: tuple[BaseMessage, ...]
    tokens: int
    report: Report
    stable_count: int = 0
    message_tokens: tuple[int, ...] = ()
    anchor_count: int = 0

    def to_openai(self) -> list[dict[str, object]]:
        """Return the messages as OpenAI chat-completion dicts.

        Tool-call arguments that came in as OpenAI dicts go back as the model wrote them
        (langchain-core would re-serialize them, which costs tokens and breaks the
        cached prefix of the app's own raw history). A lone surrogate goes as ``?``, as
        it was counted (``memory._wire``): the dicts always encode as UTF-8 JSON."""
        converted = [dict(m) for m in convert_to_openai_messages(list(self.messages))]
        original_arguments(converted, self.messages)
        return [sendable(m) for m in converted]  # lone surrogates as counted: "?"

    def to_anthropic(self) -> dict[str, Any]:
        """Return ``{"system": ..., "messages": [...]}`` for Anthropic's Messages API,
        with a ``cache_control`` breakpoint at the end of the stable part
        (``stable_count``). Anthropic caches a prefix only up to a breakpoint
        (docs.anthropic.com, prompt caching): sent without one, nothing is cached, and
        the report's cached tokens and costs for a Claude model do not hold."""
        system, turns = to_anthropic(
            self.messages, cache_after=self.stable_count, anchor_after=self.anchor_count
        )
        body = {"system": system, "messages": turns} if system else {"messages": turns}
        return dict(sendable(body))

    def with_cache_breakpoint(self) -> list[BaseMessage]:
        """Return the messages for ``ChatAnthropic``, the last stable one's last block
        marked ``cache_control`` (langchain-anthropic passes it through; see
        ``to_anthropic`` for why a Claude prompt needs it)."""
        return with_breakpoint(self.messages, self.stable_count, self.anchor_count)


def assemble(
    exchanges: Sequence[Exchange],
    budget: Budget | int,
    counter: TokenCounter,
    *,
    system: str | None = None,
    summaries: Sequence[Summary] = (),
    recalled: Sequence[str] = (),
    recalled_seqs: Sequence[Sequence[int]] = (),
    recall_query: str = "",
    policy: AssemblyPolicy = DEFAULT_POLICY,
    lookup: bool = False,
    points: Sequence[int] | None = None,
    window: Window | None = None,
    history_tokens: int | None = None,
    history_turns: int | None = None,
    raw_history_tokens: int | None = None,
    _budget: int | None = None,
) -> Prompt:
    """Build the prompt that best fits ``budget`` from a session's exchanges.

    Args:
        exchanges: The session's history grouped into exchanges, oldest first.
        budget: A ``Budget`` or a number of prompt tokens.
        counter: Counts what is not stored with a count (system, context blocks).
        system: The system prompt, always sent, as the only system message.
        summaries: Running summary versions available (``Summary(text, covers_upto)``).
        recalled: Snippets of evicted turns relevant to the current turn, best first,
            each saying where it comes from; packed while they fit the recall room.
        recalled_seqs: The turn seqs each snippet holds, for the report.
        recall_query: What the snippets were recalled for (quoted in the block's header).
        policy: Shares and floors (see ``AssemblyPolicy``).
        lookup: ``assemble(query=...)``: an explicit question about the past.
        points: Fold points (default: computed with ``policy.fold_sizes``).
        window: A window already chosen with ``choose_window`` for the same inputs
            (the memory chooses it first to know which turns recall may bring back).
        history_tokens: Total counted tokens of the history, if the caller keeps it.
        history_turns: Total messages in the history, likewise.
        raw_history_tokens: Tokens of the history's originals (before digests).

    Returns:
        A ``Prompt`` whose ``tokens <= budget.prompt_tokens``.

    Raises:
        BudgetError: the system prompt plus the current user turn do not fit; the error
            says by how many tokens.
    """
    limit = as_budget(budget).prompt_tokens
    if window is None or window.used > limit:
        system_tokens = (
            (counter.count_message(SystemMessage(system)) if system else 0)
            if window is None
            else window.system_tokens
        )
        if points is None:
            sizes = fold_sizes(
                exchanges, limit, counter, policy=policy, system_tokens=system_tokens
            )
            points = fold_points(exchanges, sizes[0])
        window = choose_window(
            exchanges,
            limit,
            counter,
            policy=policy,
            system=system,
            summaries=summaries,
            points=points,
            lookup=lookup,
            system_tokens=system_tokens,
        )
    dated = window.dated  # (none while nothing is left out: the raw history as it is)
    conversation: list[BaseMessage] = [
        dated[t.seq][0] if t.seq in dated else t.message
        for i in window.kept
        for t in exchanges[i].turns
    ]
    block, chosen, block_tokens = _pack_recall(recalled, window.recall_room, counter, recall_query)
    recalled_turns = tuple(
        sorted({s for i in chosen if i < len(recalled_seqs) for s in recalled_seqs[i]})
    )
    opening = (  # the pinned opening's messages (a stored header before it included)
        0
        if window.opening is None
        else sum(len(exchanges[i].turns) for i in window.kept if i <= window.opening)
    )
    placed = place_blocks(conversation, head=window.head, recall=block, after=opening)
    messages: list[BaseMessage] = [SystemMessage(system)] if system else []
    messages += unique_call_ids([unmarked(sanitize(m)) for m in as_user_turns(placed)])
    kept_turns = [t for i in window.kept for t in exchanges[i].turns]
    # The block is sent last (``place_blocks``), as it was counted.
    counted = {id(messages[-1]): block_tokens} if block and messages[-1].content == block else {}
    counted.update(
        (id(dated[t.seq][0]), t.tokens + dated[t.seq][1]) for t in kept_turns if t.seq in dated
    )
    message_tokens = _exact_tokens(messages, conversation, kept_turns, counter, counted)
    if system:
        message_tokens[0] = window.system_tokens  # counted once, when the window was chosen
    tokens = counter.reply_priming + sum(message_tokens)
    if tokens > limit:
        # Placeholders for blank text count a little more than the stored counts the
        # window was planned with: plan again with less room, or send the pinned turn.
        try:
            return assemble(
                exchanges,
                limit - (tokens - limit),
                counter,
                system=system,
                summaries=summaries,
                recalled=recalled,
                recalled_seqs=recalled_seqs,
                recall_query=recall_query,
                policy=policy,
                lookup=lookup,
                points=points,
                history_tokens=history_tokens,
                history_turns=history_turns,
                raw_history_tokens=raw_history_tokens,
                _budget=limit if _budget is None else _budget,
            )
        except BudgetError:
            pinned = () if window.current is None else (window.current,)
            minimal = dataclasses.replace(
                window, kept=pinned, start=len(exchanges), summary=None, head="",
                head_tokens=0, recall_room=0, used=0,
                dated=dated_turns(exchanges, pinned, counter) if policy.dates else {},
            )  # fmt: skip
            return assemble(
                exchanges, limit, counter, system=system, window=minimal, policy=policy,
                history_tokens=history_tokens, history_turns=history_turns,
                raw_history_tokens=raw_history_tokens, _budget=_budget,
            )  # fmt: skip
    recall_tokens = block_tokens
    stable = len(messages) - (1 if block else 0)
    anchor = anchor_count(messages, conversation[:opening], system) if window.head else 0
    turn_tokens = sum(t.tokens for t in kept_turns)
    others = window.system_tokens + recall_tokens + turn_tokens + counter.reply_priming
    parts = PartTokens(  # the summary: what its block adds (merged into a turn's message,
        system=window.system_tokens,  # it shares that message's overhead: parts sum up)
        summary=max(tokens - others, 0) if window.head else 0,
        recalled=recall_tokens,
        turns=turn_tokens,
        overhead=counter.reply_priming,
    )
    report = _report(
        exchanges,
        window,
        limit=limit if _budget is None else _budget,
        tokens=tokens,
        parts=parts,
        recalled_count=len(chosen),
        recalled_turns=recalled_turns,
        stable_tokens=sum(message_tokens[:stable]),
        history_tokens=history_tokens,
        history_turns=history_turns,
        raw_history_tokens=raw_history_tokens,
    )
    return Prompt(
        messages=tuple(messages),
        tokens=tokens,
        report=report,
        stable_count=stable,
        message_tokens=tuple(message_tokens),
        anchor_count=anchor if 0 < anchor < stable else 0,
    )


def _pack_recall(
    snippets: Sequence[str], room: int, counter: TokenCounter, query: str
) -> tuple[str, list[int], int]:
    """Pack snippets, best first, into one recall block of at most ``room`` tokens.

    The snippets were packed on per-line counts (``recollect(verify=False)``): the block
    is counted here, exactly; a snippet that does not fit is skipped.

    Returns the block, the indices of the snippets it holds and its message's tokens
    (counted once in the usual case: the block is a long text)."""
    if not snippets or room <= 0:
        return "", [], 0
    whole = recall_block(snippets, query)
    tokens = counter.count_message(HumanMessage(whole))
    if tokens + BLOCK_MARGIN <= room:
        return whole, list(range(len(snippets))), tokens  # the usual case: sized to fit
    chosen: list[int] = []
    block, tokens = "", 0
    for index in range(len(snippets)):
        candidate = recall_block([snippets[i] for i in [*chosen, index]], query)
        counted = counter.count_message(HumanMessage(candidate))
        if counted + BLOCK_MARGIN <= room:
            chosen.append(index)
            block, tokens = candidate, counted
    return block, chosen, tokens


def _exact_tokens(
    messages: Sequence[BaseMessage],
    conversation: Sequence[BaseMessage],
    kept_turns: Sequence[Turn],
    counter: TokenCounter,
    counted: Mapping[int, int],
) -> list[int]:
    """Count each message: stored counts for untouched turns, ``counted`` (by message id)
    for those counted already, the counter for the rest."""
    stored = {id(t.message): t.tokens for t in kept_turns}
    untouched = {id(m) for m in conversation}
    counts = []
    for message in messages:
        known = stored.get(id(message)) if id(message) in untouched else None
        known = counted.get(id(message)) if known is None else known
        counts.append(known if known is not None else counter.count_message(message))
    return counts


def _raw(turn: Turn) -> int:
    return turn.tokens if turn.raw_tokens is None else turn.raw_tokens


def _report(
    exchanges: Sequence[Exchange],
    window: Window,
    *,
    limit: int,
    tokens: int,
    parts: PartTokens,
    recalled_count: int,
    recalled_turns: tuple[int, ...],
    stable_tokens: int,
    history_tokens: int | None,
    history_turns: int | None,
    raw_history_tokens: int | None,
) -> Report:
    kept = window.kept
    if history_tokens is None:
        history_tokens = sum(e.tokens for e in exchanges)
    if history_turns is None:
        history_turns = sum(len(e.turns) for e in exchanges)
    if raw_history_tokens is None:
        raw_history_tokens = sum(_raw(t) for e in exchanges for t in e.turns)
    turns_kept = sum(len(exchanges[i].turns) for i in kept)
    compacted = [t for i in kept for t in exchanges[i].turns if t.ref is not None]
    raw_tokens = parts.overhead + parts.system + raw_history_tokens
    pending = tuple(sorted(c for e in exchanges[-8:] for c in e.open_calls))
    return Report(
        budget=limit,
        tokens=tokens,
        parts=parts,
        turns_total=history_turns,
        turns_kept=turns_kept,
        turns_omitted=history_turns - turns_kept,
        tokens_omitted=history_tokens - parts.turns,
        raw_tokens=raw_tokens,
        tokens_saved=max(0, raw_tokens - tokens),
        omitted_ranges=omitted_ranges(exchanges, kept),
        pending_tool_calls=pending,
        summary_included=window.summary is not None and parts.summary > 0,
        recalled_included=recalled_count,
        recalled_turns=recalled_turns,
        current_turn_seq=exchanges[window.current].first_seq
        if window.current is not None
        else None,
        compressed_refs=tuple(str(t.ref) for t in compacted),
        compression_saved=sum(_raw(t) - t.tokens for t in compacted),
        summary_covers_upto=window.summary.covers_upto if window.summary else 0,
        window_start_seq=exchanges[window.start].first_seq
        if window.start < len(exchanges)
        else max((t.seq for t in exchanges[-1].turns), default=0) + 1
        if exchanges
        else None,
        stable_tokens=stable_tokens,
    )


def omitted_ranges(
    exchanges: Sequence[Exchange], kept: Sequence[int]
) -> tuple[tuple[int, int], ...]:
    """Seq ranges of the turns left out: each run of left-out exchanges, from its lowest
    to its highest seq (a tool result that arrived late is counted where it belongs).

    Only the runs are visited, never every exchange: a long session's log spans a run
    without building its exchanges.
    """
    ranges: list[tuple[int, int]] = []
    previous = -1
    for position in [*sorted(set(kept)), len(exchanges)]:
        if position > previous + 1:
            ranges.append(_seq_span(exchanges, previous + 1, position))
        previous = position
    return tuple(ranges)


def _seq_span(exchanges: Sequence[Exchange], start: int, stop: int) -> tuple[int, int]:
    """Lowest and highest seq of the turns of exchanges ``start`` to ``stop - 1``."""
    if isinstance(exchanges, Exchanges):
        return exchanges.seq_span(start, stop)
    seqs = [t.seq for i in range(start, stop) for t in exchanges[i].turns]
    return min(seqs), max(seqs)
