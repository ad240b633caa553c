"""``ConversationMemory``: one session's memory, a view over the store."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Self

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, messages_from_dict
from langchain_core.tools import BaseTool

from memory.archive import DEFAULT_MAX_OUTPUT_BYTES, Archive, storable
from memory.assemble import Prompt
from memory.budget import Budget, as_budget
from memory.embed import MiniLMEmbeddings
from memory.errors import ClosedError, ConflictError
from memory.folding import SummaryRunner
from memory.forget import forget_memory
from memory.indexer import Indexer
from memory.ingest import DEFAULT_COMPRESS_THRESHOLD, IngestOptions, to_new_turn
from memory.ledger import DEFAULT_PRICES, Ledger, Price, price_of
from memory.messages import Exchange, MessageLike, check_pairing, normalize
from memory.options import (
    DEFAULT_RECALL_SHARE,
    DEFAULT_SUMMARY_SHARE,
    check_options,
    check_session,
    resolve_policy,
    resolve_summarizer,
)
from memory.planner import build_prompt
from memory.policy import AssemblyPolicy
from memory.summarize import Summarizer
from memory.tokens import TokenCounter, resolve_counter
from memory.tool import DEFAULT_RECALL_TOKENS, recall, recall_tool
from memory.view import SessionView
from stores import open_store
from stores.base import CONTEXT_REF, TURN_REF, ForgetReport, Store

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_RECALL_SHARE",
    "DEFAULT_SUMMARY_SHARE",
    "ConversationMemory",
]

DEFAULT_BUDGET = Budget(context_window=8000, reserve_output=1000)
_APPEND_RETRIES = 20
_BACKOFF_SECONDS = 0.005


class ConversationMemory:
    """The memory of one conversation: stores every turn, assembles budgeted prompts.

    Open it with :meth:`open`. The store is the memory: a second ``open`` on the same
    file and session, in this process or another, sees everything added so far.
    """

    def __init__(
        self,
        *,
        session: str,
        store: Store,
        counter: TokenCounter,
        budget: Budget,
        embedder: Embeddings,
        summarizer: Summarizer,
        model: str | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        policy: AssemblyPolicy | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self.session = check_session(session)
        self.policy = resolve_policy(policy, None)
        self.budget = budget
        self.counter = counter
        self.model = model
        self.compress_threshold = compress_threshold
        self._ingest = IngestOptions(compress_threshold, budget.prompt_tokens)
        self.prices = prices
        self._store = store
        self._view = SessionView(counter, store.turns, session)
        self._refresh()  # before the background workers start reading the store too
        self._indexer = Indexer(session, store.blobs, embedder, directory=store.index_directory)
        self.archive = Archive(
            session, self._store.blobs, counter, self._indexer, max_output_bytes=max_output_bytes
        )
        self._lock = threading.RLock()
        self._closed = False
        self.archive.turns.layout = lambda: self._view.layout()  # the view may be replaced
        self._ledger = Ledger(price_of(model, prices))
        block, due = self.policy.fold_sizes(budget.prompt_tokens)  # until a system prompt
        self.summaries = SummaryRunner(
            session,
            store.summaries,
            summarizer,
            counter,
            self._exchanges_snapshot,
            block_tokens=block,
            due_tokens=due,
        )
        self.summaries.notify()

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = ":memory:",
        *,
        session: str,
        budget: Budget | int = DEFAULT_BUDGET,
        model: str | None = None,
        token_counter: TokenCounter | BaseChatModel | Callable[[str], int] | None = None,
        safety_margin: float | None = None,
        summarizer: BaseChatModel | Summarizer | None = None,
        embedder: Embeddings | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        recall_share: float | None = None,
        policy: AssemblyPolicy | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> ConversationMemory:
        """Open (or create) the memory of one session in a SQLite file or PostgreSQL.

        Args:
            path: A SQLite file (created if missing; FAISS index in ``<path>.faiss/``),
                ``":memory:"``, or a ``postgresql://user@host/db`` URL (``postgres`` extra).
            session: Scopes every read and write (a user id, a thread id...).
            budget: A ``Budget`` or a number of prompt tokens.
            model: The chat model prompts are for; picks the tokenizer and the price.
            token_counter: Your own counter (a ``TokenCounter``, a LangChain chat model or
                a ``str -> int`` callable) instead of tiktoken.
            safety_margin: Extra share added to counts for non-OpenAI models
                (default ``DEFAULT_SAFETY_MARGIN``); ignored with ``token_counter``.
            summarizer: The cheap chat model that writes the running summary (any
                LangChain ``BaseChatModel``), a ``Summarizer``, or None for the offline
                extractive default.
            embedder: Any LangChain ``Embeddings`` for search; None uses the bundled
                all-MiniLM-L6-v2 (offline, loaded on first use).
            compress_threshold: Tool outputs above this many tokens are archived and sent
                as a digest.
            max_output_bytes: Largest tool output accepted (``InputError`` above it).
            recall_share: Room for recall on an ordinary call, as a share of the budget
                (0: recall off, explicit lookups included); overrides ``policy``'s.
            policy: The assembly policy (shares, fold low-water mark, relevance floor);
                None: ``AssemblyPolicy()``.
            prices: Prices and caching rules by model name (``memory.pricing``), for
                the report's cost figures.

        Returns:
            The session's memory; use it as a context manager or call ``close()``.

        Raises:
            InputError: ``session`` is empty or too long.
            ConfigError: a bad budget, counter or option.
            StoreError: the store cannot be opened (or has a newer schema than ours).
        """
        check_session(session)
        checked_budget = as_budget(budget)
        check_options(
            embedder=embedder,
            compress_threshold=compress_threshold,
            max_output_bytes=max_output_bytes,
        )
        chosen_policy = resolve_policy(policy, recall_share)
        counter = resolve_counter(token_counter, model=model, margin=safety_margin)
        cap = chosen_policy.summary_cap(checked_budget.prompt_tokens)
        chosen = resolve_summarizer(summarizer, counter, cap)
        store = open_store(path if isinstance(path, str) else os.fspath(path))
        try:
            return cls(
                session=session,
                store=store,
                counter=counter,
                budget=checked_budget,
                embedder=embedder if embedder is not None else MiniLMEmbeddings(),
                summarizer=chosen,
                model=model,
                compress_threshold=compress_threshold,
                max_output_bytes=max_output_bytes,
                policy=chosen_policy,
                prices=prices,
            )
        except BaseException:
            store.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the memory of session {self.session!r} is closed; open it again")

    def _exchanges_snapshot(self) -> Sequence[Exchange]:
        with self._lock:
            if not self._closed:
                self._refresh()
            return self._view.exchanges  # a snapshot, built when read

    def _refresh(self) -> None:
        """Load turns other writers appended since this view last looked."""
        self._view.refresh()

    def add(self, messages: MessageLike | Sequence[MessageLike]) -> list[int]:
        """Store one message or many, all or nothing.

        Tool outputs above ``compress_threshold`` tokens are archived byte-exact and
        replaced in prompts by a digest naming their ref; ``history()`` keeps originals.

        Args:
            messages: LangChain messages, OpenAI chat dicts or Anthropic dicts.

        Returns:
            The sequence numbers given to the stored messages.

        Raises:
            InputError: a message cannot be accepted (unknown role, a tool result whose
                call was never issued, malformed tool calls, an output over
                ``max_output_bytes``...); nothing was stored.
            ClosedError: the memory was closed.
            StoreError: the store failed; nothing was stored.
        """
        with self._lock:
            self._check_open()
            normalized = normalize(messages)
            if not normalized:
                return []
            converted = [
                to_new_turn(m, counter=self.counter, archive=self.archive, options=self._ingest)
                for m in normalized
            ]
            archived = [p for _, found in converted for p in found]
            for attempt in range(_APPEND_RETRIES):
                self._refresh()
                check_pairing(
                    normalized,
                    open_calls=self._view.open_calls,
                    issued_calls=self._view.issued_calls,
                )
                try:
                    with self._store.write():
                        for prepared in archived:
                            self.archive.store(prepared)
                        turns = [t for t, _ in converted]
                        records = self._store.turns.append(
                            self.session, turns, after_seq=self._view.last_seq
                        )
                        searchable, contextual = self._view.load(records)
                        for texts, ref in ((searchable, TURN_REF), (contextual, CONTEXT_REF)):
                            clean = [(seq, storable(text)) for seq, text in texts]
                            self._store.blobs.add_turn_texts(self.session, clean, ref=ref)
                except ConflictError:
                    # Another writer appended first: back off a little (jittered, so
                    # racing writers spread out), re-read and re-check.
                    time.sleep(random.uniform(0, _BACKOFF_SECONDS * (attempt + 1)))
                    continue
                except BaseException:
                    self._reload()  # the view may hold rows the rollback undid
                    raise
                self._indexer.notify()
                self.summaries.notify()
                return [r.seq for r in records]
            raise ConflictError(
                f"session {self.session!r} kept changing under {_APPEND_RETRIES} attempts to add"
            )

    def _reload(self) -> None:
        self._view = SessionView(self.counter, self._store.turns, self.session)
        self._refresh()

    def assemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
    ) -> Prompt:
        """Build the prompt for the next model call, under the budget.

        Layout, front to back: the system prompt; the running summary (a quoted
        context block); the verbatim turns since the last fold and those appended
        since; the evicted turns relevant to ``query`` (a quoted block leading the
        current user turn); the current user turn. Between folds each prompt extends
        the previous one, so provider prompt caches hit. When the whole history fits,
        it is sent as it is. It never waits for the summarizer or the embedder.

        Args:
            system: The system prompt, always sent first.
            query: An explicit question about the past: recall may then take up to
                ``policy.lookup_recall_share`` of the budget. None: the last user turn
                picks the recalled turns, within ``policy.recall_share``, and only
                those that clear ``policy.relevance_floor``.
            budget: Overrides the memory's budget for this call.

        Returns:
            A ``Prompt``: ``.messages``, ``.tokens``, ``.report``, ``.to_openai()``.

        Raises:
            BudgetError: the system prompt and the current user turn alone do not fit.
            ClosedError: the memory was closed.
        """
        with self._lock:
            self._check_open()
            self._refresh()
            limit = (self.budget if budget is None else as_budget(budget)).prompt_tokens
            return build_prompt(
                self._view,
                self.archive,
                self.counter,
                limit=limit,
                system=system,
                query=query,
                policy=self.policy,
                runner=self.summaries,
                ledger=self._ledger,
                prices=self.prices,
            )

    def history(self) -> list[BaseMessage]:
        """Return every message ever added to the session, unabridged and in order."""
        with self._lock:
            self._check_open()
            records = self._store.turns.read(self.session)
        return [messages_from_dict([json.loads(r.payload)])[0] for r in records]

    def recall(
        self,
        ref: str | None = None,
        query: str | None = None,
        max_tokens: int = DEFAULT_RECALL_TOKENS,
        *,
        page: int = 1,
    ) -> str:
        """Return exactly what the ``recall`` tool returns (see ``memory.tool.recall``)."""
        with self._lock:
            self._check_open()
        return recall(self.archive, ref=ref, query=query, max_tokens=max_tokens, page=page)

    def recall_tool(self) -> BaseTool:
        """Return the recall tool as a LangChain ``BaseTool`` bound to this session."""
        self._check_open()
        return recall_tool(self.archive)

    def wait_until_indexed(self, timeout: float | None = None) -> bool:
        """Block until every archived chunk and turn is embedded; True if in time."""
        self._check_open()
        return self._indexer.wait_idle(timeout)

    @property
    def price(self) -> Price | None:
        """The model's price and prompt-caching rule (None: unknown model)."""
        return self._ledger.price

    @property
    def history_tokens(self) -> int:
        """Counted tokens of the whole stored history, as prompts would send it."""
        return self._view.history_tokens

    def close(self) -> None:
        """Stop background work and release the store (idempotent; queued work resumes)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.summaries.close()
        self._indexer.close()
        with self._lock:
            self._store.close()

    def forget(self) -> ForgetReport:
        """Delete every trace of this session, then close it (``memory.forget.forget_memory``)."""
        return forget_memory(self)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
