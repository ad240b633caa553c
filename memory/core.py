"""``ConversationMemory``: one session's memory, a view over the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, ToolMessage, message_to_dict, messages_from_dict
from langchain_core.tools import BaseTool

from memory.archive import DEFAULT_MAX_OUTPUT_BYTES, Archive, ArchivedOutput
from memory.assemble import Prompt, assemble
from memory.budget import Budget, as_budget
from memory.embed import MiniLMEmbeddings
from memory.errors import ClosedError, ConfigError, ConflictError, InputError
from memory.indexer import Indexer
from memory.messages import ExchangeBuilder, MessageLike, Turn, check_pairing, normalize
from memory.tokens import TokenCounter, resolve_counter
from memory.tool import DEFAULT_RECALL_TOKENS, recall, recall_tool
from stores.base import NewTurn, TurnRecord, TurnStore
from stores.sqlite import SQLiteDatabase, SQLiteTurnStore
from stores.sqlite_archive import SQLiteBlobStore

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_DIGEST_SHARE",
    "MAX_SESSION_LENGTH",
    "ConversationMemory",
]

DEFAULT_BUDGET = Budget(context_window=8000, reserve_output=1000)
DEFAULT_COMPRESS_THRESHOLD = 500
"""Tool outputs above this many tokens are archived and sent as a digest."""
DEFAULT_DIGEST_SHARE = 0.10
"""Largest share of the prompt budget one digest may take."""
MIN_DIGEST_TOKENS = 120
DIGEST_RATIO = 0.12
MAX_SESSION_LENGTH = 512
_APPEND_RETRIES = 20


def _check_session(session: object) -> str:
    if not isinstance(session, str) or not session.strip():
        raise InputError("session must be a non-empty string, e.g. a user or thread id")
    if len(session) > MAX_SESSION_LENGTH or "\x00" in session:
        raise InputError(f"session must be at most {MAX_SESSION_LENGTH} characters, without NUL")
    try:
        session.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InputError(f"session must be valid Unicode text: {exc.reason}") from exc
    return session


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
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> None:
        self.session = _check_session(session)
        self.budget = budget
        self.counter = counter
        self.compress_threshold = compress_threshold
        self._database = database
        self._turns: TurnStore = SQLiteTurnStore(database)
        blobs = SQLiteBlobStore(database)
        directory = None if database.path == ":memory:" else Path(database.path + ".faiss")
        self._indexer = Indexer(session, blobs, embedder, directory=directory)
        self.archive = Archive(
            session, blobs, counter, self._indexer, max_output_bytes=max_output_bytes
        )
        self._lock = threading.RLock()
        self._closed = False
        self._builder = ExchangeBuilder()
        self._issued_calls: set[str] = set()
        self._turn_count = 0
        self._last_seq = 0
        self._history_tokens = 0
        self._raw_history_tokens = 0
        self._refresh()

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
        summarizer: BaseChatModel | None = None,
        embedder: Embeddings | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES,
    ) -> ConversationMemory:
        """Open (or create) the memory of one session in a SQLite file.

        Args:
            path: The SQLite file, created if missing; ``":memory:"`` for a private,
                in-process store. The FAISS index lives beside it in ``<path>.faiss/``.
            session: Scopes every read and write (a user id, a thread id...).
            budget: A ``Budget`` or a number of prompt tokens.
            model: The chat model prompts are for; picks the tokenizer.
            token_counter: Your own counter (a ``TokenCounter``, a LangChain chat model or
                a ``str -> int`` callable) instead of tiktoken.
            safety_margin: Extra share added to counts for non-OpenAI models
                (default ``DEFAULT_SAFETY_MARGIN``); ignored with ``token_counter``.
            summarizer: Reserved for the running summary (a LangChain chat model); only
                ``None`` is accepted in this release.
            embedder: Any LangChain ``Embeddings`` for archive search; None uses the
                bundled all-MiniLM-L6-v2 (offline, loaded on first use).
            compress_threshold: Tool outputs above this many tokens are archived and sent
                as a digest.
            max_output_bytes: Largest tool output accepted (``InputError`` above it).

        Returns:
            The session's memory; use it as a context manager or call ``close()``.

        Raises:
            InputError: ``session`` is empty or too long.
            ConfigError: a bad budget, counter or option.
            StoreError: the file cannot be opened as a SQLite database.
        """
        _check_session(session)
        checked_budget = as_budget(budget)
        if summarizer is not None:
            raise ConfigError("summarizer is not supported by this release yet; pass None")
        if embedder is not None and not isinstance(embedder, Embeddings):
            raise ConfigError(
                f"embedder must be a LangChain Embeddings, not {type(embedder).__name__}"
            )
        for name, value in (
            ("compress_threshold", compress_threshold),
            ("max_output_bytes", max_output_bytes),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{name} must be a positive int, not {value!r}")
        counter = resolve_counter(token_counter, model=model, margin=safety_margin)
        database = SQLiteDatabase(path)
        try:
            return cls(
                session=session,
                database=database,
                counter=counter,
                budget=checked_budget,
                embedder=embedder if embedder is not None else MiniLMEmbeddings(),
                compress_threshold=compress_threshold,
                max_output_bytes=max_output_bytes,
            )
        except BaseException:
            database.close()
            raise

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the memory of session {self.session!r} is closed; open it again")

    def _refresh(self) -> None:
        """Load turns other writers appended since this view last looked."""
        records = self._turns.read(self.session, after_seq=self._last_seq)
        if records:
            self._load(records)

    def _load(self, records: Sequence[TurnRecord]) -> None:
        turns = []
        for record in records:
            (message,) = messages_from_dict([json.loads(record.compact or record.payload)])
            tokens, raw_tokens = record.tokens, record.raw_tokens
            if record.counter != self.counter.name:
                tokens = self.counter.count_message(message)
                raw_tokens = tokens
                if record.compact is not None:
                    (original,) = messages_from_dict([json.loads(record.payload)])
                    raw_tokens = self.counter.count_message(original)
            turns.append(Turn(record.seq, message, tokens, raw_tokens, record.ref))
            self._issued_calls.update(str(c["id"]) for c in getattr(message, "tool_calls", []))
            self._history_tokens += tokens
            self._raw_history_tokens += raw_tokens
        self._builder.extend(turns)
        self._turn_count += len(records)
        self._last_seq = records[-1].seq

    def _max_digest_tokens(self, original_tokens: int) -> int:
        share = int(self.budget.prompt_tokens * DEFAULT_DIGEST_SHARE)
        return max(MIN_DIGEST_TOKENS, min(share, int(original_tokens * DIGEST_RATIO)))

    def _to_turn(self, message: BaseMessage) -> tuple[NewTurn, ArchivedOutput | None]:
        payload = json.dumps(message_to_dict(message), default=str)
        tokens = self.counter.count_message(message)
        text = message.content if isinstance(message, ToolMessage) else None
        if isinstance(text, str) and tokens > self.compress_threshold:
            original_tokens = self.counter.count(text)
            prepared = self.archive.prepare(
                text,
                max_tokens=self._max_digest_tokens(original_tokens),
                original_tokens=original_tokens,
            )
            if prepared is not None:
                compact = message.model_copy(update={"content": prepared.prompt_text})
                return (
                    NewTurn(
                        role=message.type,
                        payload=payload,
                        tokens=self.counter.count_message(compact),
                        counter=self.counter.name,
                        compact=json.dumps(message_to_dict(compact), default=str),
                        raw_tokens=tokens,
                        ref=prepared.ref,
                    ),
                    prepared,
                )
        return NewTurn(message.type, payload, tokens, self.counter.name), None

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
            converted = [self._to_turn(m) for m in normalized]
            new_turns = [turn for turn, _ in converted]
            archived = [p for _, p in converted if p is not None]
            for _ in range(_APPEND_RETRIES):
                self._refresh()
                check_pairing(
                    normalized,
                    open_calls=self._builder.open_calls,
                    issued_calls=self._issued_calls,
                )
                try:
                    with self._database.write():
                        for prepared in archived:
                            self.archive.store(prepared)
                        records = self._turns.append(
                            self.session, new_turns, after_seq=self._last_seq
                        )
                except ConflictError:
                    continue  # another writer appended first: re-read and re-check
                self._load(records)
                if archived:
                    self._indexer.notify()
                return [r.seq for r in records]
            raise ConflictError(
                f"session {self.session!r} kept changing under {_APPEND_RETRIES} attempts to add"
            )

    def assemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
    ) -> Prompt:
        """Build the prompt for the next model call, under the budget.

        Args:
            system: The system prompt, always sent first.
            query: What the prompt is for; defaults to the last user turn. Used to pick
                recalled snippets once running summaries are enabled.
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
            return assemble(
                self._builder.exchanges,
                self.budget if budget is None else as_budget(budget),
                self.counter,
                system=system,
                history_tokens=self._history_tokens,
                history_turns=self._turn_count,
                raw_history_tokens=self._raw_history_tokens,
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
        """Return exactly what the ``recall`` tool returns for these arguments.

        By ``ref`` alone it pages through the archived original (``page=2``...); with a
        ``query`` it returns the most relevant chunks of that ref, or of the whole
        session's archive, within ``max_tokens``. An unknown ref gets the list of refs.
        """
        with self._lock:
            self._check_open()
        return recall(self.archive, ref=ref, query=query, max_tokens=max_tokens, page=page)

    def recall_tool(self) -> BaseTool:
        """Return the recall tool as a LangChain ``BaseTool`` bound to this session."""
        self._check_open()
        return recall_tool(self.archive)

    def wait_until_indexed(self, timeout: float | None = None) -> bool:
        """Block until every archived chunk is embedded; True if done within ``timeout``."""
        self._check_open()
        return self._indexer.wait_idle(timeout)

    @property
    def history_tokens(self) -> int:
        """Counted tokens of the whole stored history, as prompts would send it."""
        return self._history_tokens

    def close(self) -> None:
        """Stop background work and release the store (idempotent).

        Chunks not yet embedded stay queued in the store and are embedded next time.
        """
        with self._lock:
            if not self._closed:
                self._closed = True
                self._indexer.close()
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
