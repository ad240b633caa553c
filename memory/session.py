"""The engine's state of one session: its view, archive, index and summaries, shared by handles.

Every ``ConversationMemory`` handle on a session of an engine uses the same
``SessionState``, so opening a handle reads nothing the engine already holds, and one
session is embedded and summarized once however many handles it has. The engine keeps
the states of recently used sessions (LRU) and those an open handle holds.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TypeVar

from langchain_core.embeddings import Embeddings

from memory.archive import Archive
from memory.deadline import ModelCalls
from memory.errors import ClosedError
from memory.folding import SummaryRunner
from memory.indexer import Indexer
from memory.ledger import Ledger, Price
from memory.messages import Exchange
from memory.pool import WorkerPool
from memory.summarize import Summarizer
from memory.tokens import TokenCounter
from memory.view import SessionView
from stores.base import Store

__all__ = ["SessionState"]

_T = TypeVar("_T")


def _weakly(owner: SessionState, method: Callable[[SessionState], _T]) -> Callable[[], _T]:
    """Call ``method(owner)`` without the callable keeping ``owner`` alive (no cycles)."""
    ref = weakref.ref(owner)

    def call() -> _T:
        target = ref()
        if target is None:
            raise ClosedError("the session's state was released")
        return method(target)

    return call


class SessionState:
    """What an engine holds for one session and one token counter.

    Args:
        session: The session.
        store: The engine's store.
        counter: Counts tokens as the session's prompts do.
        embedder: Embeds archived chunks and turns.
        summarizer: Writes the running summary.
        pool: Runs embedding and summaries.
        calls: Runs summarizer calls under a deadline.
        block_tokens: Initial fold block size (the handle retargets it).
        due_tokens: Tokens at which a block is summarized.
        max_output_bytes: Largest tool output accepted.
    """

    def __init__(
        self,
        session: str,
        store: Store,
        counter: TokenCounter,
        embedder: Embeddings,
        summarizer: Summarizer,
        *,
        pool: WorkerPool,
        calls: ModelCalls,
        block_tokens: int,
        due_tokens: int,
        max_output_bytes: int,
    ) -> None:
        self.session = session
        self.store = store
        self.counter = counter
        self.lock = threading.RLock()
        self.closed = False
        self.view = SessionView(counter)
        self.indexer = Indexer(
            session, store.blobs, embedder, directory=store.index_directory, pool=pool
        )
        self.archive = Archive(
            session, store.blobs, counter, self.indexer, max_output_bytes=max_output_bytes
        )
        self.archive.turns.layout = _weakly(self, lambda state: state.view.layout())
        self._ledgers: dict[Price | None, Ledger] = {}
        self.refresh()
        self.runner = SummaryRunner(
            session,
            store.summaries,
            summarizer,
            counter,
            _weakly(self, SessionState.snapshot),
            pool=pool,
            calls=calls,
            block_tokens=block_tokens,
            due_tokens=due_tokens,
        )
        self.indexer.notify()
        self.runner.notify()

    def check_open(self) -> None:
        """Raise ``ClosedError`` once the session was forgotten or the engine closed."""
        if self.closed:
            raise ClosedError(
                f"the memory of session {self.session!r} is closed (its engine closed or "
                "the session was forgotten); open it again"
            )

    def refresh(self) -> int:
        """Load turns other writers appended since the view last looked; return how many."""
        records = self.store.turns.read(self.session, after_seq=self.view.last_seq)
        if records:
            self.view.load(records)
        return len(records)

    def reload(self) -> None:
        """Rebuild the view from the store (after a failed write rolled back)."""
        self.view = SessionView(self.counter)
        self.refresh()

    def snapshot(self) -> Sequence[Exchange]:
        """The session's exchanges, fresh from the store (the summarizer's input)."""
        with self.lock:
            if not self.closed:
                self.refresh()
            return list(self.view.exchanges)

    def ledger(self, price: Price | None) -> Ledger:
        """The session's running cost totals for prompts priced at ``price``."""
        ledger = self._ledgers.get(price)
        if ledger is None:
            ledger = self._ledgers[price] = Ledger(price)
        return ledger

    def close(self, *, wait: float = 0.0) -> None:
        """Stop queueing background work; wait up to ``wait`` s for steps in flight."""
        with self.lock:
            self.closed = True
        self.runner.close(wait=wait)
        self.indexer.close(wait=wait)
