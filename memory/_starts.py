"""What a window starting at each candidate exchange costs: its verbatim turns (sent
dated where ``memory._dates`` says so), the turns it pins before it, its context block.

``memory._window`` tries starts from the newest back and keeps the earliest that fits;
this module prices each start for one call, from sums and counts kept between tries.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.messages import HumanMessage

from memory._context import CONVERSATION_START, summary_block
from memory._dates import DatedTurns, dated_turns
from memory._exchange_log import Exchanges
from memory._messages import Exchange
from memory._tokens import TokenCounter

__all__ = ["BLOCK_MARGIN", "StartCosts", "Summary", "sendable"]

BLOCK_MARGIN = 4
"""Tokens added to each context block's count: merging it into a message adds a little."""


@dataclass(frozen=True, slots=True)
class Summary:
    """A running summary version: its text and the last seq it covers."""

    text: str
    covers_upto: int


def sendable(exchange: Exchange) -> bool:
    """True when providers accept the exchange: complete, not an orphan tool result."""
    return exchange.complete and exchange.turns[0].kind != "tool"


def _turns_in(exchanges: Sequence[Exchange], start: int, stop: int) -> int:
    """Turns of exchanges ``start`` to ``stop - 1`` (a session's log counts them unbuilt)."""
    if isinstance(exchanges, Exchanges):
        return exchanges.turns_in(start, stop)
    return sum(len(exchanges[i].turns) for i in range(start, stop))


class StartCosts:
    """Evaluates candidate starts for one call (suffix sums computed once, from the end)."""

    def __init__(
        self,
        exchanges: Sequence[Exchange],
        counter: TokenCounter,
        summaries: Sequence[Summary],
        current: int | None,
        *,
        tool: bool = False,
        opening: int | None = None,
        dates: bool = False,
    ) -> None:
        self.exchanges = exchanges
        self.dates = dates
        self.tool = tool
        self.opening = opening
        # Stored system messages before the opening (a session's dated header) go with it.
        self._lead = (
            ()
            if opening is None
            else tuple(i for i in range(opening) if exchanges[i].turns[0].kind == "system")
        )
        self.counter = counter
        self.summaries = sorted(summaries, key=lambda s: s.covers_upto)
        self.covers = [s.covers_upto for s in self.summaries]
        self.current = current
        self._suffix: dict[int, int] = {len(exchanges): 0}
        self._lowest = len(exchanges)
        self._heads: dict[tuple[int, int], tuple[str, int]] = {}
        self._gaps: dict[tuple[int, int], int] = {}
        self._dated: dict[int, DatedTurns] = {}
        # What each dated turn's date adds, kept by the session's log between calls.
        self._known = exchanges.log.date_tokens if isinstance(exchanges, Exchanges) else {}

    def starts_on_user(self, start: int) -> bool:
        """Whether the first message sent from ``start`` on is a user turn."""
        if self.current is not None and self.current < start:
            return True
        if self.opening is not None and self.opening < start:
            return True
        for exchange in self.exchanges[start:]:
            if sendable(exchange):  # a stored system message is sent as user text
                return exchange.turns[0].kind in ("human", "system")
        return True  # nothing to send: no conversation to start

    def window_tokens(self, start: int) -> int:
        """Tokens of the sendable exchanges from ``start`` on, plus a pinned current turn."""
        while self._lowest > start:
            self._lowest -= 1
            exchange = self.exchanges[self._lowest]
            add = exchange.tokens if sendable(exchange) else 0
            self._suffix[self._lowest] = self._suffix[self._lowest + 1] + add
        tokens = self._suffix[start]
        for pinned in self.pinned(start):
            tokens += self.exchanges[pinned].tokens
        return tokens

    def kept(self, start: int) -> tuple[int, ...]:
        """The exchanges a window from ``start`` sends: those it pins before it, then the
        sendable ones (and the current user turn), ascending."""
        exchanges, current = self.exchanges, self.current
        return self.pinned(start) + tuple(
            i for i in range(start, len(exchanges)) if sendable(exchanges[i]) or i == current
        )

    def dated(self, start: int, summary: Summary | None) -> DatedTurns:
        """The user turns a window from ``start`` sends with their date: none with dates
        off or while nothing is left out (the raw history is sent as it is)."""
        if not self.dates or (start == 0 and summary is None):
            return {}
        if start not in self._dated:
            kept = self.kept(start)
            self._dated[start] = dated_turns(self.exchanges, kept, self.counter, self._known)
        return self._dated[start]

    def date_tokens(self, start: int, summary: Summary | None) -> int:
        """Tokens the dates of ``dated`` add to the window's stored counts."""
        return sum(extra for _, extra in self.dated(start, summary).values())

    def pinned(self, start: int) -> tuple[int, ...]:
        """The opening (with its header) and current user turns sent although they are
        before ``start``."""
        pinned = (*self._lead, self.opening, self.current)
        found = {p for p in pinned if p is not None and p < start}
        return tuple(sorted(found))

    def summary_boundaries(self) -> list[int]:
        """Index of the first exchange after each summary's coverage."""
        exchanges = self.exchanges
        if isinstance(exchanges, Exchanges):  # a session's log: remembered between calls
            return [exchanges.begun_by(c) for c in self.covers]
        return [bisect.bisect_right(exchanges, c, key=lambda e: e.first_seq) for c in self.covers]

    def summary_for(self, start: int) -> Summary | None:
        """The newest summary that covers only turns before ``start``."""
        if start >= len(self.exchanges):
            first = self.exchanges[-1].turns[-1].seq + 1 if self.exchanges else 1
        else:
            first = self.exchanges[start].first_seq
        position = bisect.bisect_left(self.covers, first) - 1
        return self.summaries[position] if position >= 0 else None

    def head(self, start: int, summary: Summary | None) -> tuple[str, int]:
        """The context block for a window starting at ``start``, and its tokens."""
        covered = summary.covers_upto if summary is not None else 0
        key = (start, covered)
        if key not in self._heads:
            first = bisect.bisect_right(
                self.exchanges, covered, hi=start, key=lambda e: e.first_seq
            )
            # Counted from the log, not by building every exchange: the summary may lag
            # thousands of exchanges behind a long session.
            unsummarized = _turns_in(self.exchanges, first, start)
            for pinned in self.pinned(start):
                if first <= pinned:
                    unsummarized -= len(self.exchanges[pinned].turns)
            text = summary_block(
                summary.text if summary else "",
                covers=(1, covered) if summary else None,
                unsummarized=unsummarized,
                tool=self.tool,
            )
            if not text and not self.starts_on_user(start):
                text = CONVERSATION_START
            tokens = self.counter.count_message(HumanMessage(text)) + BLOCK_MARGIN if text else 0
            self._heads[key] = (text, tokens)
            self._gaps[key] = unsummarized
        return self._heads[key]

    def gap(self, start: int, summary: Summary | None) -> int:
        """Messages evicted before ``start`` that ``summary`` does not cover."""
        self.head(start, summary)
        return self._gaps[(start, summary.covers_upto if summary is not None else 0)]
