"""What one assembled prompt kept, left out and saved."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["PartTokens", "Report"]


@dataclass(frozen=True, slots=True)
class PartTokens:
    """Tokens of each part of a prompt (the reply priming is counted under ``overhead``).

    ``summary`` is the whole context block before the verbatim turns: the running summary
    when it is sent, and the note on messages left out (sent with or without one), so it
    can be above 0 while ``Report.summary_included`` is False."""

    system: int = 0
    summary: int = 0
    recalled: int = 0
    turns: int = 0
    overhead: int = 0


@dataclass(frozen=True, slots=True)
class Report:
    """The accounting of one ``assemble`` call; serializes to JSON with ``to_json()``.

    Attributes:
        budget: Tokens the prompt was allowed.
        tokens: Tokens the prompt uses (always ``<= budget``).
        parts: Tokens by part: system, summary, recalled, turns, overhead.
        turns_total: Messages in the session's history.
        turns_kept: History messages sent verbatim.
        turns_omitted: History messages left out of this prompt (still stored).
        tokens_omitted: Counted tokens of the omitted messages.
        raw_tokens: Tokens the prompt would use with the whole raw history.
        tokens_saved: ``raw_tokens - tokens`` (never negative).
        omitted_ranges: ``(first_seq, last_seq)`` ranges of omitted messages.
        pending_tool_calls: Ids of tool calls with no result yet; their exchange is not
            sent until it is complete, since providers reject an unanswered call.
        summary_included: Whether the running summary made it into the prompt.
        recalled_included: How many recalled snippets made it into the prompt.
        current_turn_seq: Sequence number of the pinned current user turn, if any.
        compressed_refs: Refs of archived tool outputs sent as digests in this prompt.
        compression_saved: Tokens those digests saved against their originals.
        recalled_turns: Seqs of evicted turns brought back for the current query.
        summary_covers_upto: Seq of the last turn the summary in this prompt covers (0:
            none sent; a lookup may leave the summary out for recall's room).
        summary_error: The summarizer's last failure, if its latest attempt failed.
        recall_degraded: Why recall may miss what only embeddings would find: the
            embedder failed on queries (they are searched by full-text and phrase only)
            or on new chunks (not embedded yet); None when embeddings work.
        summarizer_input_tokens: Input tokens the summarizer spent over the session.
        summarizer_output_tokens: Output tokens the summarizer spent over the session.
        session_calls: ``assemble`` calls this view made in the session so far.
        session_raw_tokens: Their raw-history tokens, summed.
        session_sent_tokens: Their prompt tokens, summed.
        money_saved_usd: Dollars saved over those calls against sending the raw history
            *with* the provider's prompt caching, net of the summarizer's cost, at the
            price table's rates (None: the model's price is unknown).
        window_start_seq: Seq where the verbatim turns after the last fold begin (one
            past the last turn when only the pinned current turn is sent; None for an
            empty history).
        stable_tokens: Tokens of the messages the next prompt repeats unless a fold
            comes between (all but the recall block and the turn it leads; the reply
            priming not counted).
        shared_tokens: Leading tokens this prompt shares with the previous prompt of the
            session assembled by this handle (0 for the first).
        cached_tokens: Of those, the tokens the provider bills as cache reads under the
            model's caching rule (``memory.pricing.cached_tokens``).
        session_cached_tokens: ``cached_tokens`` summed over the session's calls.
        session_cost_usd: Input cost of the session's prompts with caching (None:
            unknown price).
        session_raw_cost_usd: Input cost of sending the raw history instead, with
            caching (raw history is append-only, so each call reads the previous one
            from the cache).
    """

    budget: int
    tokens: int
    parts: PartTokens
    turns_total: int
    turns_kept: int
    turns_omitted: int
    tokens_omitted: int
    raw_tokens: int
    tokens_saved: int
    omitted_ranges: tuple[tuple[int, int], ...] = ()
    pending_tool_calls: tuple[str, ...] = ()
    summary_included: bool = False
    recalled_included: int = 0
    current_turn_seq: int | None = None
    compressed_refs: tuple[str, ...] = ()
    compression_saved: int = 0
    recalled_turns: tuple[int, ...] = ()
    summary_covers_upto: int = 0
    summary_error: str | None = None
    recall_degraded: str | None = None
    summarizer_input_tokens: int = 0
    summarizer_output_tokens: int = 0
    session_calls: int = 0
    session_raw_tokens: int = 0
    session_sent_tokens: int = 0
    money_saved_usd: float | None = None
    window_start_seq: int | None = None
    stable_tokens: int = 0
    shared_tokens: int = 0
    cached_tokens: int = 0
    session_cached_tokens: int = 0
    session_cost_usd: float | None = None
    session_raw_cost_usd: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return the report as plain JSON-compatible data."""
        data = asdict(self)
        data["omitted_ranges"] = [list(r) for r in self.omitted_ranges]
        data["pending_tool_calls"] = list(self.pending_tool_calls)
        data["compressed_refs"] = list(self.compressed_refs)
        data["recalled_turns"] = list(self.recalled_turns)
        return data

    def to_json(self, *, indent: int | None = None) -> str:
        """Return the report as a JSON string."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)
