"""``ConversationMemory``: one session's memory, a view over the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, messages_from_dict
from langchain_core.tools import BaseTool

from memory.archive import DEFAULT_MAX_OUTPUT_BYTES, Archive, storable
from memory.assemble import Prompt, assemble
from memory.budget import Budget, as_budget
from memory.embed import MiniLMEmbeddings
from memory.errors import ClosedError, ConflictError
from memory.folding import SummaryRunner
from memory.indexer import Indexer
from memory.ingest import DEFAULT_COMPRESS_THRESHOLD, IngestOptions, to_new_turn
from memory.ledger import DEFAULT_PRICES, Ledger, Price
from memory.messages import Exchange, MessageLike, check_pairing, normalize
from memory.options import (
    DEFAULT_RECALL_SHARE,
    DEFAULT_SUMMARY_SHARE,
    LOOKUP_RECALL_SHARE,
    MIN_WINDOW_SHARE,
    check_options,
    check_session,
    resolve_summarizer,
)
from memory.planner import account, plan_window
from memory.summarize import Summarizer
from memory.tokens import TokenCounter, resolve_counter
from memory.tool import DEFAULT_RECALL_TOKENS, recall, recall_tool
from memory.view import SessionView
from stores.base import CONTEXT_REF, TURN_REF
from stores.sqlite import SQLiteDatabase, SQLiteTurnStore
from stores.sqlite_archive import SQLiteBlobStore
from stores.sqlite_summary import SQLiteSummaryStore

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_RECALL_SHARE",
    "DEFAULT_SUMMARY_SHARE",
    "ConversationMemory",
]

DEFAULT_BUDGET = Budget(context_window=8000, reserve_output=1000)
_APPEND_RETRIES = 20
SUMMARY_SLACK = 1.3  # a model may overshoot the summary cap a little


class ConversationMemory:
    """The memory of one conversation: stores every turn, assembles budgeted prompts.

    Open it with :meth:`open`. The store is the memory: a second ``open`` on the same
    file and session, in this process or another, sees everything added so far.
    """

    def __init__(
        self,
        *,
        session: str,
        database: SQLiteDatabase,
        counter: TokenCounter,
        budget: Budget,
        embedder: Embeddings,
        summarizer: Summarizer,
        model: str | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
        recall_share: float = DEFAULT_RECALL_SHARE,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self.session = check_session(session)
        self.budget = budget
        self.counter = counter
        self.model = model
        self.compress_threshold = compress_threshold
        self._ingest = IngestOptions(compress_threshold, budget.prompt_tokens)
        self.recall_share = recall_share
        self.prices = prices
        self._database = database
        self._turns = SQLiteTurnStore(database)
        self._blobs = SQLiteBlobStore(database)
        self._summaries = SQLiteSummaryStore(database)
        directory = None if database.path == ":memory:" else Path(database.path + ".faiss")
        self._indexer = Indexer(session, self._blobs, embedder, directory=directory)
        self.archive = Archive(
            session, self._blobs, counter, self._indexer, max_output_bytes=max_output_bytes
        )
        self._lock = threading.RLock()
        self._closed = False
        self._view = SessionView(counter)
        self.archive.turns.layout = lambda: self._view.layout()  # the view may be replaced
        self._ledger = Ledger()
        self._refresh()
        self.summaries = SummaryRunner(
            session,
            self._summaries,
            summarizer,
            counter,
            self._exchanges_snapshot,
            window_tokens=int(
                budget.prompt_tokens
                * max(MIN_WINDOW_SHARE, 1.0 - DEFAULT_SUMMARY_SHARE - recall_share)
            ),
        )
        self.summaries.notify()

    @classmethod
    def open(
        cls,
        path: str | Path = ":memory:",
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
        recall_share: float = DEFAULT_RECALL_SHARE,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> ConversationMemory:
        """Open (or create) the memory of one session in a SQLite file.

        Args:
            path: The SQLite file, created if missing; ``":memory:"`` for a private,
                in-process store. The FAISS index lives beside it in ``<path>.faiss/``.
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
            recall_share: Largest share of the budget for recalled evicted turns (0: off).
            prices: Dollars per million tokens by model name, for the report's savings.

        Returns:
            The session's memory; use it as a context manager or call ``close()``.

        Raises:
            InputError: ``session`` is empty or too long.
            ConfigError: a bad budget, counter or option.
            StoreError: the file cannot be opened as a SQLite database.
        """
        check_session(session)
        checked_budget = as_budget(budget)
        check_options(
            embedder=embedder,
            compress_threshold=compress_threshold,
            max_output_bytes=max_output_bytes,
            recall_share=recall_share,
        )
        counter = resolve_counter(token_counter, model=model, margin=safety_margin)
        cap = int(checked_budget.prompt_tokens * DEFAULT_SUMMARY_SHARE)
        chosen = resolve_summarizer(summarizer, counter, cap)
        database = SQLiteDatabase(path)
        try:
            return cls(
                session=session,
                database=database,
                counter=counter,
                budget=checked_budget,
                embedder=embedder if embedder is not None else MiniLMEmbeddings(),
                summarizer=chosen,
                model=model,
                compress_threshold=compress_threshold,
                max_output_bytes=max_output_bytes,
                recall_share=recall_share,
                prices=prices,
            )
        except BaseException:
            database.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the memory of session {self.session!r} is closed; open it again")

    def _exchanges_snapshot(self) -> list[Exchange]:
        with self._lock:
            if not self._closed:
                self._refresh()
            return list(self._view.exchanges)

    def _refresh(self) -> None:
        """Load turns other writers appended since this view last looked."""
        records = self._turns.read(self.session, after_seq=self._view.last_seq)
        if records:
            self._view.load(records)

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
            for _ in range(_APPEND_RETRIES):
                self._refresh()
                check_pairing(
                    normalized,
                    open_calls=self._view.builder.open_calls,
                    issued_calls=self._view.issued_calls,
                )
                try:
                    with self._database.write():
                        for prepared in archived:
                            self.archive.store(prepared)
                        turns = [t for t, _ in converted]
                        records = self._turns.append(
                            self.session, turns, after_seq=self._view.last_seq
                        )
                        searchable, contextual = self._view.load(records)
                        for texts, ref in ((searchable, TURN_REF), (contextual, CONTEXT_REF)):
                            clean = [(seq, storable(text)) for seq, text in texts]
                            self._blobs.add_turn_texts(self.session, clean, ref=ref)
                except ConflictError:
                    continue  # another writer appended first: re-read and re-check
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
        self._view = SessionView(self.counter)
        self._refresh()

    def assemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
    ) -> Prompt:
        """Build the prompt for the next model call, under the budget.

        The prompt holds the system prompt, the running summary, the evicted turns most
        relevant to ``query`` and the recent turns verbatim. It never waits for the
        summarizer or the embedder: it uses what is ready.

        Args:
            system: The system prompt, always sent first.
            query: What the prompt is for; defaults to the last user turn. Picks the
                recalled turns.
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
            limit_budget = self.budget if budget is None else as_budget(budget)
            summary = self.summaries.current
            recall_share = self.recall_share
            if query is not None and self.recall_share > 0:
                recall_share = max(recall_share, LOOKUP_RECALL_SHARE)
            window, recollection = plan_window(
                self._view,
                self.archive,
                self.counter,
                limit=limit_budget.prompt_tokens,
                system=system,
                query=query,
                summary=summary,
                recall_share=recall_share,
                summary_share=DEFAULT_SUMMARY_SHARE * SUMMARY_SLACK,
            )
            prompt = assemble(
                window,
                limit_budget,
                self.counter,
                system=system,
                summary=summary.text if summary is not None and summary.text else None,
                recalled=recollection.snippets,
                summary_share=DEFAULT_SUMMARY_SHARE * SUMMARY_SLACK,
                recall_share=recall_share,
                history_tokens=self._view.history_tokens,
                history_turns=self._view.turn_count,
                raw_history_tokens=self._view.raw_history_tokens,
            )
            self._ledger.record(prompt)
            return account(
                prompt,
                recollection,
                summary,
                ledger=self._ledger,
                runner=self.summaries,
                model=self.model,
                prices=self.prices,
            )

    def history(self) -> list[BaseMessage]:
        """Return every message ever added to the session, unabridged and in order."""
        with self._lock:
            self._check_open()
            records = self._turns.read(self.session)
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
            self._database.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
