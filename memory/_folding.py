"""Summarize the blocks that folds evict, in a background thread, before they are needed.

The blocks are those of the fold schedule (``memory._folds``): from one fold point to the
next. A block is summarized once the turns since its start come within half the
low-water mark of the fold that evicts it, so the summary is usually ready when the
prompt folds, and the prompt's prefix changes once per fold, not twice. ``assemble``
never waits for the model: it uses the newest summary that covers only evicted turns,
and turns evicted but not yet summarized stay reachable through recall. Failures are
retried with backoff and recorded; the previous summary is kept, and no turn is lost or
skipped.
"""

from __future__ import annotations

import bisect
import functools
import time
from collections.abc import Callable, Sequence

from memory._archive import storable
from memory._deadline import ModelCalls
from memory._errors import SummarizerError
from memory._folds import FoldSchedule
from memory._messages import Exchange
from memory._pool import WorkerPool
from memory._summarize import Summarizer
from memory._timestamps import with_time
from memory._tokens import TokenCounter
from memory._window import Summary
from memory._worker import BackgroundWorker
from stores.base import SummaryRecord, SummaryStore

__all__ = ["DEFAULT_RETRIES", "MAX_VERSIONS", "SummaryRunner", "choose_block"]

DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_SECONDS = 0.5
MAX_VERSIONS = 16
"""Summary versions kept in memory for assembly (a prompt uses one of the newest)."""


def choose_block(
    exchanges: Sequence[Exchange], *, covers_upto: int, points: Sequence[int], due_tokens: int
) -> list[Exchange]:
    """Pick the next block to summarize, or none if it is not due yet.

    Args:
        exchanges: The session's exchanges.
        covers_upto: Seq of the last turn the current summary covers.
        points: Fold points, ascending.
        due_tokens: Tokens since the block's start at which it is summarized.

    Returns:
        The exchanges from the first unsummarized one up to the next fold point (the
        latest exchange is never part of a block), or ``[]``.
    """
    start = bisect.bisect_right(exchanges, covers_upto, key=lambda e: e.first_seq)
    following = [p for p in points if p > start]
    if not following or following[0] >= len(exchanges):
        return []
    if sum(e.tokens for e in exchanges[start:]) < due_tokens:
        return []
    return list(exchanges[start : following[0]])


class SummaryRunner(BackgroundWorker):
    """Keep one session's running summary up to date, off the hot path.

    Args:
        session: The session.
        summaries: Where summary versions (and failures) are recorded.
        summarizer: Makes the summaries.
        counter: Counts summary tokens.
        exchanges: Returns the session's current exchanges (called from the pool).
        pool: The engine's pool the summaries are made on.
        calls: Runs the model calls under a deadline.
        block_tokens: Tokens between fold points (``AssemblyPolicy.block_tokens``).
        due_tokens: Tokens since a block's start at which it is summarized.
        retries: Attempts per block before the failure is recorded.
        backoff: Seconds before the first retry; doubled each time.
    """

    def __init__(
        self,
        session: str,
        summaries: SummaryStore,
        summarizer: Summarizer,
        counter: TokenCounter,
        exchanges: Callable[[], Sequence[Exchange]],
        *,
        pool: WorkerPool,
        calls: ModelCalls,
        block_tokens: int,
        due_tokens: int,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        super().__init__(f"summaries of {session!r}", pool)
        self._calls = calls
        self.session = session
        self.summarizer = summarizer
        self.schedule = FoldSchedule(block_tokens)
        self.due_tokens = due_tokens
        self.retries = retries
        self.backoff = backoff
        self._summaries = summaries
        self._counter = counter
        self._exchanges = exchanges
        self.current: SummaryRecord | None = summaries.latest(session)
        self.versions: list[Summary] = self._load_versions()
        self.spent_cached = summaries.spent(session)
        self.failures = 0
        self.last_failure: str | None = None

    def retarget(self, block_tokens: int, *, due_tokens: int) -> None:
        """Follow the fold schedule prompts use (block size from the room the system
        prompt leaves); a change wakes the worker."""
        if block_tokens != self.schedule.block_tokens or due_tokens != self.due_tokens:
            self.schedule = FoldSchedule(block_tokens)
            self.due_tokens = due_tokens
            self.notify()

    @property
    def covers_upto(self) -> int:
        """Seq of the last turn the current summary covers (0: none)."""
        return self.current.covers_upto if self.current is not None else 0

    def step(self) -> bool:
        """Fold one block if the window is over its share; False when nothing to do."""
        if self.stopping:
            return False
        exchanges = self._exchanges()
        block = choose_block(
            exchanges,
            covers_upto=self.covers_upto,
            points=self.schedule.update(exchanges),
            due_tokens=self.due_tokens,
        )
        if not block:
            return False
        previous = self.current.text if self.current is not None else ""
        evicted = [with_time(t.message, t.at) for e in block for t in e.turns]  # dated
        end = bisect.bisect_right(exchanges, block[-1].first_seq, key=lambda e: e.first_seq)
        covers_upto = exchanges[end].first_seq - 1  # the point after the block exists
        error = ""
        wasted = (0, 0)  # what refused attempts spent: billed all the same

        def closing() -> bool:  # the runner stops, or the engine's pool (at close, at exit)
            return self.stopping or self._pool.stopped

        for attempt in range(self.retries):
            if closing():
                return False
            try:
                result = self._calls.call(
                    functools.partial(self.summarizer.summarize, previous, evicted),
                    cancelled=closing,
                    owner=getattr(self.summarizer, "model", self.summarizer),  # its endpoint
                )
            except SummarizerError as exc:
                error = str(exc)
                wasted = (wasted[0] + exc.input_tokens, wasted[1] + exc.output_tokens)
            except Exception as exc:  # a model client's own error types
                error = f"{type(exc).__name__}: {exc}"
            else:
                text = storable(result.text)
                record = SummaryRecord(
                    session=self.session,
                    version=0,
                    covers_upto=covers_upto,
                    text=text,
                    tokens=self._counter.count(text),
                    summarizer=self.summarizer.name,
                    input_tokens=result.input_tokens + wasted[0],
                    output_tokens=result.output_tokens + wasted[1],
                    created_at=time.time(),
                )
                self._summaries.add_summary(record)
                self.current = self._summaries.latest(self.session)
                self.versions = [*self.versions, Summary(text, covers_upto)][-MAX_VERSIONS:]
                spent_in, spent_out = self.spent_cached
                self.spent_cached = (
                    spent_in + record.input_tokens,
                    spent_out + record.output_tokens,
                )
                self.last_failure = None
                return True
            if attempt + 1 < self.retries:
                time.sleep(self.backoff * (2**attempt))
        if closing():  # a call cut short by the close is no failure: it resumes on reopen
            return False
        self._record_failure(previous, error, wasted)
        raise SummarizerError(error)  # the worker waits longer before trying again

    def _record_failure(self, previous: str, error: str, spent: tuple[int, int]) -> None:
        """Record a fold that failed, with what its attempts spent (in the cost ledger)."""
        self.failures += 1
        self.last_failure = error
        spent_in, spent_out = self.spent_cached
        self.spent_cached = (spent_in + spent[0], spent_out + spent[1])
        self._summaries.add_summary(
            SummaryRecord(
                session=self.session,
                version=0,
                covers_upto=self.covers_upto,
                text=storable(previous),
                tokens=self._counter.count(previous),
                summarizer=self.summarizer.name,
                input_tokens=spent[0],
                output_tokens=spent[1],
                created_at=time.time(),
                error=storable(error or "unknown error"),
            )
        )

    def _load_versions(self) -> list[Summary]:
        """The newest successful summary versions, by coverage."""
        latest: dict[int, Summary] = {}
        for record in self._summaries.attempts(self.session):
            if not record.error and record.text:
                latest[record.covers_upto] = Summary(record.text, record.covers_upto)
        return [latest[c] for c in sorted(latest)][-MAX_VERSIONS:]

    def attempts(self) -> list[SummaryRecord]:
        """Every summary version and failed attempt of the session, oldest first."""
        return self._summaries.attempts(self.session)

    def rebuild(self) -> None:
        """Forget the summaries and fold the history again (summaries are derived data)."""
        self._summaries.clear_summaries(self.session)
        self.current = None
        self.versions = []
        self.notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no fold is due; True if that was reached within ``timeout``."""
        return self.wait_idle(timeout)
