"""``Engine``: one store per process, shared by every session handle on it.

An engine owns what is costly: the store (one SQLite connection or one PostgreSQL pool),
the embedder (the bundled MiniLM is loaded once per process, on first use), a fixed pool
of background threads that embeds and summarizes for every session, a few threads for
the async API, and the state of recently used sessions. A ``ConversationMemory`` is a
cheap handle on one session of an engine: opening one starts no thread and loads no
model, and an unclosed handle is simply collected.

``ConversationMemory.open(path, ...)`` uses the process's shared engine for ``path``
(created on first use); ``":memory:"`` gets a private engine that lives as long as its
handle. Servers create one ``Engine`` at start-up, open handles from it per request, and
close it at shutdown.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Self, TypeVar, Unpack

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable

from memory._archive import DEFAULT_MAX_OUTPUT_BYTES
from memory._budget import Budget, as_budget
from memory._closing import Closing
from memory._deadline import DEFAULT_MODEL_SLOTS, DEFAULT_MODEL_TIMEOUT, ModelCalls
from memory._embed import MiniLMEmbeddings, embedder_name
from memory._embed_calls import DEFAULT_BATCH_TIMEOUT, DEFAULT_QUERY_TIMEOUT, Embedders
from memory._errors import ClosedError, ConfigError
from memory._ingest import DEFAULT_COMPRESS_THRESHOLD
from memory._ledger import DEFAULT_PRICES, Price
from memory._options import (
    OpenOptions,
    check_counts,
    check_options,
    check_seconds,
    check_session,
    resolve_policy,
    resolve_summarizer,
)
from memory._policy import AssemblyPolicy
from memory._pool import WorkerPool
from memory._session import SessionState
from memory._summarize import Summarizer
from memory._tokens import TokenCounter, resolve_counter
from stores import open_store
from stores.base import ForgetReport, Store

if TYPE_CHECKING:
    from memory._core import ConversationMemory

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_IO_WORKERS",
    "DEFAULT_MAX_SESSIONS",
    "DEFAULT_WORKERS",
    "Engine",
]

DEFAULT_BUDGET = Budget(context_window=8000, reserve_output=1000)
DEFAULT_WORKERS = 2
"""Background threads per engine (embedding, summaries), whatever the number of sessions."""
DEFAULT_IO_WORKERS = 2
"""Threads per engine that run the async API's blocking work (store, search)."""
DEFAULT_MAX_SESSIONS = 128
"""Sessions whose state (view, index, summaries) an engine keeps without an open handle."""
FORGET_WAIT_SECONDS = 60.0
"""Longest wait in ``forget`` for the session's embedding or summary step in flight."""
_T = TypeVar("_T")
_StateKey = tuple[str, str, str]


class Engine(Closing):
    """The memory of one store for this process: pool, embedder and session states.

    Args:
        location: A SQLite file (created if missing), ``":memory:"``, a
            ``postgresql://`` URL (``postgres`` extra), or an open ``stores.base.Store``
            (the engine closes it).
        embedder: Any LangChain ``Embeddings`` for search; None uses the bundled
            all-MiniLM-L6-v2 (offline, loaded once per process on first use).
        workers: Background threads that embed and summarize for every session.
        io_workers: Threads that run the blocking part of ``aadd``/``aassemble``/...
        max_sessions: Session states kept for sessions no handle holds (LRU).
        summary_timeout: Seconds a summarizer call may take before it is abandoned and
            retried later (``memory._deadline``).
        query_embed_timeout: Seconds the embedder may take on a query, then searched
            without embeddings as when it fails (``memory._embed_calls``).
        embed_timeout: Seconds it may take on a batch of texts, then embedded later.

    Raises:
        ConfigError: a bad option.
        StoreError: the store cannot be opened.
    """

    def __init__(
        self,
        location: str | os.PathLike[str] | Store = ":memory:",
        *,
        embedder: Embeddings | None = None,
        workers: int = DEFAULT_WORKERS,
        io_workers: int = DEFAULT_IO_WORKERS,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        summary_timeout: float = DEFAULT_MODEL_TIMEOUT,
        query_embed_timeout: float = DEFAULT_QUERY_TIMEOUT,
        embed_timeout: float = DEFAULT_BATCH_TIMEOUT,
    ) -> None:
        check_counts(workers=workers, io_workers=io_workers, max_sessions=max_sessions)
        check_seconds(
            summary_timeout=summary_timeout,
            query_embed_timeout=query_embed_timeout,
            embed_timeout=embed_timeout,
        )
        check_options(embedder=embedder, compress_threshold=1, max_output_bytes=1)
        if not isinstance(location, str | os.PathLike) and not hasattr(location, "location"):
            raise ConfigError(f"location must be a path, a URL or a Store, not {location!r}")
        if isinstance(location, str | os.PathLike):
            self.location = os.fspath(location)
            self.store: Store = open_store(self.location)
        else:
            self.store, self.location = location, location.location
        self.embedder: Embeddings = embedder if embedder is not None else MiniLMEmbeddings()
        self.pool = WorkerPool("attic-bg", workers)
        self.model_calls = ModelCalls(summary_timeout, DEFAULT_MODEL_SLOTS)
        self.embedders = Embedders(query_embed_timeout, embed_timeout)
        self._io_workers = io_workers
        self._io: ThreadPoolExecutor | None = None
        self.max_sessions = max_sessions
        self._lock = threading.RLock()
        self._states: weakref.WeakValueDictionary[_StateKey, SessionState] = (
            weakref.WeakValueDictionary()
        )
        self._recent: OrderedDict[_StateKey, SessionState] = OrderedDict()
        self._holds: dict[_StateKey, int] = {}
        self._handles = 0
        self._closed = False
        self._owned_by_handles = False

    def open(
        self,
        *,
        session: str,
        budget: Budget | int = DEFAULT_BUDGET,
        model: str | None = None,
        token_counter: TokenCounter | BaseChatModel | Callable[[str], int] | None = None,
        safety_margin: float | None = None,
        summarizer: BaseChatModel | Runnable[Any, Any] | Summarizer | None = None,
        embedder: Embeddings | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        recall_share: float | None = None,
        policy: AssemblyPolicy | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> ConversationMemory:
        """Open a handle on one session; the options are ``ConversationMemory.open``'s.

        Handles of one session share its state in this engine; the summarizer and
        ``max_output_bytes`` of the latest ``open`` apply to all of them.

        Raises:
            InputError: ``session`` is empty or too long.
            ConfigError: a bad budget, counter or option.
            ClosedError: the engine was closed.
        """
        from memory._core import ConversationMemory

        check_session(session)
        checked_budget = as_budget(budget)
        check_options(
            embedder=embedder,
            compress_threshold=compress_threshold,
            max_output_bytes=max_output_bytes,
            model=model,
            prices=prices,
        )
        chosen_policy = resolve_policy(policy, recall_share)
        counter = resolve_counter(token_counter, model=model, margin=safety_margin)
        cap = chosen_policy.summary_cap(checked_budget.prompt_tokens)
        chosen = resolve_summarizer(summarizer, counter, cap)
        with self._lock:
            self._check_open()
            state, key = self._state(
                session,
                counter,
                embedder or self.embedder,
                chosen,
                max_output_bytes,
                chosen_policy.fold_sizes(checked_budget.prompt_tokens),
            )
            self._holds[key] = self._holds.get(key, 0) + 1
            self._handles += 1
        memory = ConversationMemory(
            engine=self,
            state=state,
            budget=checked_budget,
            model=model,
            compress_threshold=compress_threshold,
            policy=chosen_policy,
            prices=prices,
        )
        memory._finalizer = weakref.finalize(memory, self._release, key, False)  # type: ignore[arg-type]
        return memory

    def _state(
        self,
        session: str,
        counter: TokenCounter,
        embedder: Embeddings,
        summarizer: Summarizer,
        max_output_bytes: int,
        fold_sizes: tuple[int, int],
    ) -> tuple[SessionState, _StateKey]:
        key = (session, counter.name, embedder_name(embedder))
        state = self._states.get(key)
        if state is not None and not state.closed and state.forgotten_elsewhere():
            state.close()  # forgotten by another process: start the session anew
        if state is None or state.closed:
            block, due = fold_sizes  # until a system prompt retargets them
            state = SessionState(
                session,
                self.store,
                counter,
                self.embedders.calls(embedder),
                summarizer,
                pool=self.pool,
                calls=self.model_calls,
                block_tokens=block,
                due_tokens=due,
                max_output_bytes=max_output_bytes,
            )
            self._states[key] = state
        else:
            state.runner.summarizer = summarizer
            state.archive.max_output_bytes = max_output_bytes
        self._recent[key] = state
        self._recent.move_to_end(key)
        self._evict()
        return state, key

    def _evict(self) -> None:
        """Drop the least recently used states no handle holds, beyond ``max_sessions``."""
        idle = [k for k in self._recent if not self._holds.get(k)]
        for key in idle[: max(0, len(idle) - self.max_sessions)]:
            self._recent.pop(key).close()

    def _release(self, key: _StateKey, explicit: bool) -> None:
        """A handle closed (``explicit``) or was collected."""
        with self._lock:
            left = self._holds.get(key, 0) - 1
            if left > 0:
                self._holds[key] = left
            else:
                self._holds.pop(key, None)
            self._handles -= 1
            last = self._handles == 0 and self._owned_by_handles
            private = self.location == ":memory:"
        if last and (explicit or private) and not self._closed:
            self.close(wait=explicit)
        else:
            with self._lock:
                self._evict()

    async def aopen(self, *, session: str, **options: Unpack[OpenOptions]) -> ConversationMemory:
        """``open`` for async code: reading the session's state runs on the I/O threads."""
        return await self.run(functools.partial(self.open, session=session, **options))

    @property
    def sessions_held(self) -> int:
        """Session states this engine holds now (open handles' and recently used)."""
        with self._lock:
            return len(self._states)

    @property
    def handles(self) -> int:
        """Handles open on this engine (closed or collected ones excluded)."""
        return self._handles

    async def run(self, fn: Callable[[], _T]) -> _T:
        """Run blocking ``fn`` on the engine's I/O threads; await its result."""
        with self._lock:
            self._check_open()
            if self._io is None:
                self._io = ThreadPoolExecutor(self._io_workers, thread_name_prefix="attic-io")
            executor = self._io
        return await asyncio.get_running_loop().run_in_executor(executor, fn)

    def forget(self, session: str) -> ForgetReport:
        """Delete every trace of ``session`` (``stores.base.Store.forget``).

        Its state is dropped first, so no background work writes it back; open handles
        on it raise ``ClosedError`` from then on.

        Raises:
            StoreError: the store failed; nothing was deleted.
            ClosedError: the engine was closed.
        """
        with self._lock:
            self._check_open()
            for key in [k for k in self._recent if k[0] == session]:
                self._recent.pop(key)
            states = [s for k, s in self._states.items() if k[0] == session]
        for state in states:  # nothing of the session may be written after the delete
            state.close(wait=FORGET_WAIT_SECONDS)
        return self.store.forget(session)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the engine on {self.location!r} is closed; create a new one")

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def close(self, *, wait: bool = True) -> None:
        """Stop background work and close the store (idempotent).

        Queued work is dropped and resumes when the store is opened again (nothing is
        lost: it is derived from stored turns). Steps in flight finish first when
        ``wait``; a summarizer call in flight is never waited for.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            states = list(self._states.values())
            self._recent.clear()
        for state in states:
            state.close()
        self.pool.stop(None if wait else 0.0)
        if self._io is not None:
            self._io.shutdown(wait=wait, cancel_futures=True)
        self.store.close()
        from memory._shared import forget_shared  # (it imports this module)

        forget_shared(self)

    async def aclose(self) -> None:
        """``close`` for async code: the wait for steps in flight runs off the loop."""
        await asyncio.to_thread(self.close)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._handles} handles"
        return f"Engine({self.location!r}, {state})"
