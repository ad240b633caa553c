"""Where folds happen: a deterministic schedule of fold points over a session's exchanges.

A *fold point* is the index of the exchange where the verbatim turns begin after a fold.
Point 0 is the start of the conversation; each next point is the first exchange after
``block_tokens`` more tokens of history. The schedule depends only on the history's
token counts, so every process that opens the session computes the same points, the
background summarizer can summarize a block before a prompt needs it, and between two
folds each prompt starts with the same turns (a cacheable prefix). Points stop at the
first exchange still waiting for a tool result: nothing after it is folded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from memory._exchange_log import Exchanges
from memory._messages import Exchange

__all__ = ["FoldSchedule", "fold_points"]


def fold_points(exchanges: Sequence[Exchange], block_tokens: int) -> list[int]:
    """Return the ascending fold points of ``exchanges`` for blocks of ``block_tokens``."""
    schedule = FoldSchedule(block_tokens)
    schedule.update(exchanges)
    return list(schedule.points)


class FoldSchedule:
    """Fold points kept up to date as a session grows (each exchange is read once).

    Args:
        block_tokens: Tokens of history between two fold points (at least 1).
    """

    def __init__(self, block_tokens: int) -> None:
        self.block_tokens = max(1, block_tokens)
        self.points: list[int] = [0]
        self._done = 0  # exchanges before this index are accounted for
        self._tokens = 0  # tokens since the last point

    def update(self, exchanges: Sequence[Exchange]) -> list[int]:
        """Extend the points over exchanges added since the last call; return them all.

        An exchange may still change while it waits for tool results, so the schedule
        stops at the first incomplete one and resumes there on the next call.
        """
        if isinstance(exchanges, Exchanges):  # a session's log: read its token column
            return self._update_tokens(exchanges.tokens(), exchanges.first_incomplete())
        position = self._done
        while position < len(exchanges):
            exchange = exchanges[position]
            if not exchange.complete:
                break
            if self._tokens >= self.block_tokens:
                self.points.append(position)
                self._tokens = 0
            self._tokens += exchange.tokens
            position += 1
        self._done = position
        return self.points

    def _update_tokens(self, tokens: Sequence[int], stop: int) -> list[int]:
        """``update`` over exchange token counts; ``stop``: the first incomplete one.

        Each next point is found by bisecting the running total, not by walking every
        exchange: a long session's first prompt computes its points in a millisecond.
        """
        start = self._done
        if stop <= start:
            return self.points
        totals = np.concatenate(([0], np.cumsum(np.asarray(tokens[start:stop], dtype=np.int64))))
        base, carry = 0, self._tokens  # the last point (or where we resumed), tokens since
        while True:
            # The first exchange reached with ``block_tokens`` since the point is the next.
            found = int(np.searchsorted(totals, totals[base] + self.block_tokens - carry))
            if found >= len(totals) - 1:
                break
            self.points.append(start + found)
            base, carry = found, 0
        self._done, self._tokens = stop, carry + int(totals[-1] - totals[base])
        return self.points
