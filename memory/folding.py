"""Fold the oldest turns into the running summary, in blocks, in a background thread.

When the turns not yet summarized pass ``window_tokens``, the oldest whole exchanges are
folded into the summary until what remains is at most ``window_tokens * refill``. Folding
in blocks (not one turn per call) keeps the prompt's prefix (system + summary) identical
between folds, so provider prompt caches keep hitting. ``assemble`` never waits for the
model: it uses the latest summary, and turns evicted but not yet summarized stay
reachable through recall. Failures are retried with backoff and recorded; the previous
summary is kept, and no turn is lost or skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from memory.archive import storable
from memory.errors import SummarizerError
from memory.messages import Exchange
from memory.summarize import Summarizer
from memory.tokens import TokenCounter
from memory.worker import BackgroundWorker
from stores.base import SummaryRecord, SummaryStore

__all__ = ["DEFAULT_REFILL", "DEFAULT_RETRIES", "SummaryRunner", "choose_block"]

DEFAULT_REFILL = 0.5
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_SECONDS = 0.5


def choose_block(
    exchanges: Sequence[Exchange], *, covers_upto: int, window_tokens: int, refill: float
) -> list[Exchange]:
    """Pick the oldest unsummarized exchanges to fold, or none if the window still fits.

    The latest exchange is never folded, nor anything from an exchange still waiting for
    tool results onwards. The current user turn may be folded (so no turn escapes the
    summary): prompts pin it verbatim all the same. In an agent run (one task, then tool
    rounds) the rounds after the task are folded too.
    """
    pending = [e for e in exchanges if e.first_seq > covers_upto]
    remaining = sum(e.tokens for e in pending)
    if remaining <= window_tokens:
        return []
    block: list[Exchange] = []
    for exchange in pending[:-1]:
        if remaining <= window_tokens * refill or not exchange.complete:
            break
        block.append(exchange)
        remaining -= exchange.tokens
    return block


class SummaryRunner(BackgroundWorker):
    """Keep one session's running summary up to date, off the hot path.

    Args:
        session: The session.
        summaries: Where summary versions (and failures) are recorded.
        summarizer: Makes the summaries.
        counter: Counts summary tokens.
        exchanges: Returns the session's current exchanges (called from the thread).
        window_tokens: Unsummarized tokens allowed before a block is folded.
        refill: Share of ``window_tokens`` left unsummarized after a fold.
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
        window_tokens: int,
        refill: float = DEFAULT_REFILL,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_SECONDS,
    ) -> None:
        super().__init__(name=f"attic-summary-{session}")
        self.session = session
        self.summarizer = summarizer
        self.window_tokens = window_tokens
        self.refill = refill
        self.retries = retries
        self.backoff = backoff
        self._summaries = summaries
        self._counter = counter
        self._exchanges = exchanges
        self.current: SummaryRecord | None = summaries.latest(session)
        self.spent_cached = summaries.spent(session)
        self.failures = 0
        self.last_failure: str | None = None
        self.start()

    @property
    def covers_upto(self) -> int:
        """Seq of the last turn the current summary covers (0: none)."""
        return self.current.covers_upto if self.current is not None else 0

    def step(self) -> bool:
        """Fold one block if the window is over its share; False when nothing to do."""
        if self.stopping:
            return False
        block = choose_block(
            self._exchanges(),
            covers_upto=self.covers_upto,
            window_tokens=self.window_tokens,
            refill=self.refill,
        )
        if not block:
            return False
        previous = self.current.text if self.current is not None else ""
        evicted = [m for e in block for m in e.messages]
        covers_upto = max(t.seq for e in block for t in e.turns)
        error = ""
        for attempt in range(self.retries):
            if self.stopping:
                return False
            try:
                result = self.summarizer.summarize(previous, evicted)
            except SummarizerError as exc:
                error = str(exc)
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
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    created_at=time.time(),
                )
                self._summaries.add_summary(record)
                self.current = self._summaries.latest(self.session)
                spent_in, spent_out = self.spent_cached
                self.spent_cached = (
                    spent_in + result.input_tokens,
                    spent_out + result.output_tokens,
                )
                self.last_failure = None
                return True
            time.sleep(self.backoff * (2**attempt))
        self._record_failure(previous, error)
        return False

    def _record_failure(self, previous: str, error: str) -> None:
        self.failures += 1
        self.last_failure = error
        self.error_poll_seconds = min(300.0, 5.0 * 2**self.failures)
        self.last_error = error  # the worker waits longer before trying again
        self._summaries.add_summary(
            SummaryRecord(
                session=self.session,
                version=0,
                covers_upto=self.covers_upto,
                text=storable(previous),
                tokens=self._counter.count(previous),
                summarizer=self.summarizer.name,
                input_tokens=0,
                output_tokens=0,
                created_at=time.time(),
                error=storable(error or "unknown error"),
            )
        )

    def attempts(self) -> list[SummaryRecord]:
        """Every summary version and failed attempt of the session, oldest first."""
        return self._summaries.attempts(self.session)

    def rebuild(self) -> None:
        """Forget the summaries and fold the history again (summaries are derived data)."""
        self._summaries.clear_summaries(self.session)
        self.current = None
        self.notify()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no fold is due; True if that was reached within ``timeout``."""
        return self.wait_idle(timeout)
