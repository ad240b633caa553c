"""``ConversationMemory``: one session's memory, a view over the store."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict

from memory.assemble import Prompt, assemble
from memory.budget import Budget, as_budget
from memory.errors import ClosedError, ConfigError, ConflictError, InputError
from memory.messages import ExchangeBuilder, MessageLike, Turn, check_pairing, normalize
from memory.tokens import TokenCounter, resolve_counter
from stores.base import NewTurn, TurnRecord, TurnStore
from stores.sqlite import SQLiteDatabase, SQLiteTurnStore

__all__ = ["DEFAULT_BUDGET", "MAX_SESSION_LENGTH", "ConversationMemory"]

DEFAULT_BUDGET = Budget(context_window=8000, reserve_output=1000)
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
        turn_store: TurnStore,
        counter: TokenCounter,
        budget: Budget,
    ) -> None:
        self.session = _check_session(session)
        self.budget = budget
        self.counter = counter
        self._turns = turn_store
        self._lock = threading.RLock()
        self._closed = False
        self._builder = ExchangeBuilder()
        self._messages: list[BaseMessage] = []
        self._issued_calls: set[str] = set()
        self._last_seq = 0
        self._history_tokens = 0
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
        embedder: Any = None,
    ) -> ConversationMemory:
        """Open (or create) the memory of one session in a SQLite file.

        Args:
            path: The SQLite file, created if missing; ``":memory:"`` for a private,
                in-process store.
            session: Scopes every read and write (a user id, a thread id...).
            budget: A ``Budget`` or a number of prompt tokens.
            model: The chat model prompts are for; picks the tokenizer.
            token_counter: Your own counter (a ``TokenCounter``, a LangChain chat model or
                a ``str -> int`` callable) instead of tiktoken.
            safety_margin: Extra share added to counts for non-OpenAI models
                (default ``DEFAULT_SAFETY_MARGIN``); ignored with ``token_counter``.
            summarizer: Reserved for the running summary (a LangChain chat model); only
                ``None`` is accepted in this release.
            embedder: Reserved for archive search (LangChain ``Embeddings``); only ``None``
                is accepted in this release.

        Returns:
            The session's memory; use it as a context manager or call ``close()``.

        Raises:
            InputError: ``session`` is empty or too long.
            ConfigError: a bad budget, counter or option.
            StoreError: the file cannot be opened as a SQLite database.
        """
        _check_session(session)
        checked_budget = as_budget(budget)
        if summarizer is not None or embedder is not None:
            raise ConfigError(
                "summarizer and embedder are not supported by this release yet; pass None"
            )
        counter = resolve_counter(token_counter, model=model, margin=safety_margin)
        store = SQLiteTurnStore(SQLiteDatabase(path))
        try:
            return cls(session=session, turn_store=store, counter=counter, budget=checked_budget)
        except BaseException:
            store.close()
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
            (message,) = messages_from_dict([json.loads(record.payload)])
            tokens = record.tokens
            if record.counter != self.counter.name:
                tokens = self.counter.count_message(message)
            turns.append(Turn(seq=record.seq, message=message, tokens=tokens))
            self._messages.append(message)
            self._issued_calls.update(str(c["id"]) for c in getattr(message, "tool_calls", []))
            self._history_tokens += tokens
        self._builder.extend(turns)
        self._last_seq = records[-1].seq

    def add(self, messages: MessageLike | Sequence[MessageLike]) -> list[int]:
        """Store one message or many, all or nothing.

        Args:
            messages: LangChain messages, OpenAI chat dicts or Anthropic dicts.

        Returns:
            The sequence numbers given to the stored messages.

        Raises:
            InputError: a message cannot be accepted (unknown role, a tool result whose
                call was never issued, malformed tool calls...); nothing was stored.
            ClosedError: the memory was closed.
            StoreError: the store failed; nothing was stored.
        """
        with self._lock:
            self._check_open()
            normalized = normalize(messages)
            if not normalized:
                return []
            counted = [
                NewTurn(
                    role=m.type,
                    payload=json.dumps(message_to_dict(m), default=str),
                    tokens=self.counter.count_message(m),
                    counter=self.counter.name,
                )
                for m in normalized
            ]
            for _ in range(_APPEND_RETRIES):
                self._refresh()
                check_pairing(
                    normalized,
                    open_calls=self._builder.open_calls,
                    issued_calls=self._issued_calls,
                )
                try:
                    records = self._turns.append(self.session, counted, after_seq=self._last_seq)
                except ConflictError:
                    continue  # another writer appended first: re-read and re-check
                self._load(records)
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
                recalled snippets once summaries and the archive are enabled.
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
                history_turns=len(self._messages),
            )

    def history(self) -> list[BaseMessage]:
        """Return every message ever added to the session, unabridged and in order."""
        with self._lock:
            self._check_open()
            self._refresh()
            return list(self._messages)

    @property
    def history_tokens(self) -> int:
        """Counted tokens of the whole stored history."""
        return self._history_tokens

    def close(self) -> None:
        """Release the store; further use raises ``ClosedError`` (idempotent)."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._turns.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
