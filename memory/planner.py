"""Plan a prompt: which turns stay verbatim, which evicted turns come back, the report."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from langchain_core.messages import SystemMessage

from memory.archive import Archive
from memory.assemble import RECALL_HEADER, SUMMARY_HEADER, Prompt
from memory.folding import SummaryRunner
from memory.ledger import Ledger, Price, money_saved
from memory.messages import Exchange
from memory.recollect import Recollection, recollect
from memory.tokens import TokenCounter
from memory.view import SessionView
from stores.base import SummaryRecord

__all__ = ["account", "plan_window"]


def plan_window(
    view: SessionView,
    archive: Archive,
    counter: TokenCounter,
    *,
    limit: int,
    system: str | None,
    query: str | None,
    summary: SummaryRecord | None,
    recall_share: float,
    summary_share: float,
) -> tuple[list[Exchange], Recollection]:
    """Split history into the verbatim window and the evicted turns recalled for ``query``.

    The window is the newest run of unsummarized exchanges that fits what the system
    prompt, the current user turn, the summary and the recall share leave; everything
    older is evicted, and the evicted turns most relevant to the query are recalled.
    """
    exchanges = view.exchanges
    window = exchanges[view.index_after(summary.covers_upto if summary else 0) :]
    current = next((e for e in reversed(exchanges) if e.is_user_turn), None)
    fixed = counter.reply_priming + (current.tokens if current else 0)
    if system:
        fixed += counter.count_message(SystemMessage(system))
    if summary is not None and summary.text:
        summary_tokens = counter.count_message(SystemMessage(SUMMARY_HEADER + summary.text))
        if summary_tokens <= int(limit * summary_share):  # else assemble leaves it out
            fixed += summary_tokens
    recall_room = max(0, min(int(limit * recall_share), limit - fixed))
    nothing_evicted = summary is None and len(window) == len(exchanges)
    if nothing_evicted and sum(e.tokens for e in window if e is not current) <= limit - fixed:
        recall_room = 0  # the whole history fits verbatim: nothing to recall
    room = limit - fixed - recall_room
    oldest = len(window)
    for position in range(len(window) - 1, -1, -1):
        exchange = window[position]
        if exchange is not current:
            if exchange.tokens > room:
                break
            room -= exchange.tokens
        oldest = position
    boundary = window[oldest:]
    before_seq = boundary[0].first_seq if boundary else view.last_seq + 1
    query = query or view.last_user_text
    recollection = Recollection((), (), (), 0)
    if query and recall_room and (summary is not None or len(boundary) < len(window)):
        recollection = recollect(
            archive,
            query=query,
            before_seq=before_seq,
            max_tokens=recall_room - counter.count_message(SystemMessage(RECALL_HEADER)) - 1,
            counter=counter,
            turn_at=view.turn_at,
            segment_of=view.segment_of,
            line_tokens=view.line_tokens,
        )
    if current is not None and current not in boundary:
        boundary = [current, *boundary]
    return boundary, recollection


def account(
    prompt: Prompt,
    recollection: Recollection,
    summary: SummaryRecord | None,
    *,
    ledger: Ledger,
    runner: SummaryRunner,
    model: str | None,
    prices: Mapping[str, Price],
) -> Prompt:
    """Add the summary, recall and cost figures to the prompt's report."""
    spent_in, spent_out = runner.spent_cached
    included = prompt.report.recalled_included > 0
    report = dataclasses.replace(
        prompt.report,
        recalled_turns=recollection.turn_seqs if included else (),
        summary_covers_upto=summary.covers_upto if summary is not None else 0,
        summary_error=runner.last_failure,
        summarizer_input_tokens=spent_in,
        summarizer_output_tokens=spent_out,
        session_calls=ledger.calls,
        session_raw_tokens=ledger.raw_tokens,
        session_sent_tokens=ledger.sent_tokens,
        money_saved_usd=money_saved(
            tokens_not_sent=ledger.raw_tokens - ledger.sent_tokens,
            model=model,
            summarizer_model=getattr(runner.summarizer, "model_name", None),
            summarizer_input_tokens=spent_in,
            summarizer_output_tokens=spent_out,
            prices=prices,
        ),
    )
    return dataclasses.replace(prompt, report=report)
