"""The I/O side of assembly: fetch what the pure policy needs, decide nothing.

``memory._window.choose_window`` picks the verbatim window and the room for recall; this
module then asks the archive for the evicted turns relevant to the query (only turns
older than the window, with the policy's relevance floor) and hands both to
``memory._assemble.assemble``, which lays the prompt out. It also prices the result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from langchain_core.messages import HumanMessage, SystemMessage

from memory._assemble import Prompt, assemble
from memory._context import recall_block
from memory._errors import ConfigError
from memory._folding import SummaryRunner
from memory._ledger import Ledger, Price, money_saved
from memory._opening import fold_sizes
from memory._policy import AssemblyPolicy
from memory._recall.pack import NOTHING, Recollection, recollect
from memory._recall.search import Recall
from memory._tokens import TokenCounter
from memory._view import SessionView
from memory._window import BLOCK_MARGIN, Window, choose_window

__all__ = ["account", "build_prompt", "fetch_recall", "recall_overhead"]


def fetch_recall(
    window: Window,
    view: SessionView,
    recall: Recall,
    counter: TokenCounter,
    *,
    query: str | None,
    policy: AssemblyPolicy,
    lookup: bool,
) -> Recollection:
    """Return the evicted turns (and, for lookups, archived chunks) relevant to ``query``.

    Only turns older than the window's start are candidates, never the pinned current
    turn; an ordinary call recalls only what clears ``policy.relevance_floor``.
    """
    query = query or view.last_user_text
    if window.recall_room <= 0 or not query:
        return NOTHING
    exchanges = view.exchanges
    before_seq = (
        exchanges[window.start].first_seq if window.start < len(exchanges) else view.last_seq + 1
    )
    exclude = {t.seq for i in window.kept for t in exchanges[i].turns if i < window.start}
    return recollect(
        recall.ranker,
        recall.archive,
        view,
        query=query,
        before_seq=before_seq,
        max_tokens=window.recall_room - recall_overhead(counter, query),
        counter=counter,
        floor=policy.lookup_relevance_floor if lookup else policy.relevance_floor,
        exclude=exclude,
        chunks=lookup,
        verify=False,  # ``assemble`` counts the block exactly and drops what does not fit
    )


def recall_overhead(counter: TokenCounter, query: str) -> int:
    """Tokens of the recall block's wrapper, with a margin: tokens may merge differently
    where the snippets meet it."""
    return counter.count_message(HumanMessage(recall_block([], query))) + 2 * BLOCK_MARGIN


def account(
    prompt: Prompt,
    *,
    ledger: Ledger,
    runner: SummaryRunner,
    prices: Mapping[str, Price],
    recall_degraded: str | None = None,
) -> Prompt:
    """Record the prompt in the ledger; add recall, summary and cost figures to its report."""
    spend = ledger.record(
        prompt.messages,
        prompt.message_tokens,
        tokens=prompt.tokens,
        raw_tokens=prompt.report.raw_tokens,
        stable_tokens=prompt.report.stable_tokens,
        stable_count=prompt.stable_count,
        anchor_count=prompt.anchor_count,
    )
    spent_in, spent_out = runner.spent_cached
    priced = ledger.price is not None
    report = dataclasses.replace(
        prompt.report,
        summary_error=runner.last_failure,
        recall_degraded=recall_degraded,
        summarizer_input_tokens=spent_in,
        summarizer_output_tokens=spent_out,
        session_calls=ledger.calls,
        session_raw_tokens=ledger.raw_tokens,
        session_sent_tokens=ledger.sent_tokens,
        shared_tokens=spend.shared_tokens,
        cached_tokens=spend.cached_tokens,
        session_cached_tokens=ledger.cached_tokens,
        session_cost_usd=ledger.cost_usd if priced else None,
        session_raw_cost_usd=ledger.raw_cost_usd if priced else None,
        money_saved_usd=money_saved(
            ledger,
            summarizer_model=getattr(runner.summarizer, "billed_model", None),
            summarizer_input_tokens=spent_in,
            summarizer_output_tokens=spent_out,
            prices=prices,
        ),
    )
    return dataclasses.replace(prompt, report=report)


def build_prompt(
    view: SessionView,
    recall: Recall,
    counter: TokenCounter,
    *,
    limit: int,
    system: str | None,
    query: str | None,
    policy: AssemblyPolicy,
    runner: SummaryRunner,
    about: str | None = None,
    ledger: Ledger,
    prices: Mapping[str, Price],
) -> Prompt:
    """Choose the window (pure), fetch recall for it, assemble (pure), price the result.

    Raises:
        BudgetError: the system prompt and the current user turn alone do not fit.
        ConfigError: ``system`` or ``query`` is not text.
    """
    for name, value in (("system", system), ("query", query), ("about", about)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be a str or None, not {type(value).__name__}")
    lookup = query is not None
    exchanges = view.exchanges
    summaries = runner.versions
    system_tokens = counter.count_message(SystemMessage(system)) if system else 0
    block, due = fold_sizes(exchanges, limit, counter, policy=policy, system_tokens=system_tokens)
    runner.retarget(block, due_tokens=due)  # the summarizer follows the prompts' schedule
    points = view.fold_points(block)

    def window_for(reserve: int | None) -> Window:
        return choose_window(
            exchanges, limit, counter, policy=policy, system=system, summaries=summaries,
            points=points, lookup=lookup, system_tokens=system_tokens,
            answering=about is not None, recall_reserve=reserve,
        )  # fmt: skip

    def recall_for(window: Window) -> Recollection:
        view.prefetch(t.seq for i in window.kept for t in exchanges[i].turns)  # one read
        return fetch_recall(  # ``about``: the user's new text, not stored yet
            window, view, recall, counter, query=query or about, policy=policy, lookup=lookup
        )

    window = window_for(None)
    recollection = recall_for(window)
    if lookup and window.recall_room > 0:
        # A lookup keeps most of the budget for recall before it knows what recall
        # finds; what it leaves goes back to the summary and the recent turns.
        needed = recollection.estimated_tokens + recall_overhead(counter, query or "")
        if needed < window.recall_room // 2:
            wider = window_for(needed)
            if wider.start != window.start or wider.summary is not window.summary:
                window, recollection = wider, recall_for(wider)
    prompt = assemble(
        exchanges,
        limit,
        counter,
        system=system,
        window=window,
        summaries=summaries,
        points=points,
        lookup=lookup,
        recalled=recollection.snippets,
        recalled_seqs=recollection.snippet_seqs,
        recall_query=query or about or view.last_user_text or "",
        policy=policy,
        history_tokens=view.history_tokens,
        history_turns=view.turn_count,
        raw_history_tokens=view.raw_history_tokens,
    )
    degraded = recall.degraded()
    return account(prompt, ledger=ledger, runner=runner, prices=prices, recall_degraded=degraded)
