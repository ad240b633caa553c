"""``ConversationMemory``: one session's memory, a view over the store."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Unpack

from langchain_core.messages import BaseMessage, messages_from_dict
from langchain_core.tools import BaseTool

from memory._aio import AsyncMethods
from memory._archive import Archive
from memory._assemble import Prompt
from memory._budget import Budget, as_budget
from memory._closing import Closing
from memory._editing import HistoryEdits
from memory._engine import DEFAULT_BUDGET
from memory._errors import ClosedError, ConfigError
from memory._ingest import DEFAULT_COMPRESS_THRESHOLD, IngestOptions, to_new_turn
from memory._ledger import DEFAULT_PRICES, Price
from memory._messages import MessageLike, normalize
from memory._options import (
    DEFAULT_RECALL_SHARE,
    DEFAULT_SUMMARY_SHARE,
    OpenOptions,
    check_option_names,
    check_timeout,
    resolve_policy,
)
from memory._pairing import check_pairing
from memory._planner import build_prompt
from memory._policy import AssemblyPolicy
from memory._session import SessionState
from memory._shared import open_shared
from memory._summary_access import SummaryAccess
from memory._timestamps import Timestamp, times_sent, with_time
from memory._tokens import TokenCounter
from memory._view import SessionView
from memory.pricing import priced
from memory.tool import DEFAULT_RECALL_TOKENS, answer_room, recall, recall_tool
from stores.base import ForgetReport

if TYPE_CHECKING:
    from memory._engine import Engine

__all__ = [
    "DEFAULT_BUDGET",
    "DEFAULT_COMPRESS_THRESHOLD",
    "DEFAULT_RECALL_SHARE",
    "DEFAULT_SUMMARY_SHARE",
    "ConversationMemory",
]


class ConversationMemory(AsyncMethods, Closing, HistoryEdits, SummaryAccess):
    """A handle on the memory of one conversation: stores turns, assembles budgeted prompts.

    Open one with :meth:`open` (the process's shared engine for a path) or
    ``Engine.open``. A handle is cheap: it starts no thread and loads no model; the
    engine does the background work. The store is the memory: a second handle on the
    same session, in this process or another, sees everything added so far.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        state: SessionState,
        budget: Budget,
        model: str | None = None,
        compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
        policy: AssemblyPolicy | None = None,
        prices: Mapping[str, Price] = DEFAULT_PRICES,
    ) -> None:
        self.session = state.session
        self.policy = resolve_policy(policy, None)
        self.budget = budget
        self.counter: TokenCounter = state.counter
        self.model = model
        self.compress_threshold = compress_threshold
        self._ingest = IngestOptions(compress_threshold, budget.prompt_tokens)
        self.prices = prices
        self.engine = engine
        self._state = state
        self._price = priced(model, prices)  # an unknown name is logged once
        self._closed = False
        self._finalizer: weakref.finalize[..., None] | None = None

    @property
    def archive(self) -> Archive:
        """The session's archive of tool outputs (``memory._archive.Archive``)."""
        return self._state.archive

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] = ":memory:",
        *,
        session: str,
        **options: Unpack[OpenOptions],
    ) -> ConversationMemory:
        """Open (or create) the memory of one session in a SQLite file or PostgreSQL.

        The handle uses the process's shared ``Engine`` for ``path``, created on first
        use and closed when its last handle is closed (``":memory:"``: a private engine,
        also closed when its handle is collected). Servers that want to own the
        engine's lifetime create one and call ``Engine.open``.

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
                LangChain ``BaseChatModel``, also wrapped by ``with_retry()``), a
                ``Summarizer``, or None for the offline extractive default.
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
        check_option_names(options, where="ConversationMemory.open")
        return open_shared(path, session=session, **options)

    def _check_open(self) -> None:
        if self._closed:
            raise ClosedError(f"the memory of session {self.session!r} is closed; open it again")
        if self.engine.closed:
            raise ClosedError(
                f"the engine on {self.engine.location!r} is closed; create a new Engine "
                f"and open session {self.session!r} from it"
            )
        self._state.check_open()

    def add(
        self, messages: MessageLike | Sequence[MessageLike], *, timestamp: Timestamp | None = None
    ) -> list[int]:
        """Store one message or many, all or nothing.

        Tool outputs above ``compress_threshold`` tokens are archived byte-exact and
        replaced in prompts by a digest naming their ref; ``history()`` keeps originals.

        Args:
            messages: LangChain messages, OpenAI chat dicts or Anthropic dicts. A dict's
                ``"timestamp"`` key or a LangChain message's
                ``additional_kwargs["timestamp"]`` says when it was sent.
            timestamp: When messages without a time of their own were sent (ISO 8601
                text, epoch seconds or a ``datetime``; see ``memory._timestamps``).
                None: the time of this call. Recalled snippets and summaries show it.

        Returns:
            The sequence numbers given to the stored messages.

        Raises:
            InputError: a message cannot be accepted (unknown role, a tool result whose
                call was never issued, malformed tool calls, an output over
                ``max_output_bytes``, a timestamp that is not a time...); nothing was
                stored.
            ClosedError: the memory was closed.
            StoreError: the store failed; nothing was stored.
        """
        state = self._state
        with state.lock:
            self._check_open()
            normalized = normalize(messages)
            if not normalized:
                return []
            sent_at = times_sent(normalized, timestamp)
            normalized = [with_time(m, at) for m, at in zip(normalized, sent_at, strict=True)]
            converted = [
                to_new_turn(m, counter=self.counter, archive=state.archive, options=self._ingest)
                for m in normalized
            ]
            converted = [
                (dataclasses.replace(t, created_at=at), found)
                for at, (t, found) in zip(sent_at, converted, strict=True)
            ]
            archived = [p for _, found in converted for p in found]

            def check(view: SessionView) -> None:
                check_pairing(
                    normalized, open_calls=view.open_calls, issued_calls=view.issued_calls
                )

            def store_originals() -> None:  # in the turns' transaction: all or nothing
                for prepared in archived:
                    state.archive.store(prepared)

            records = state.append([t for t, _ in converted], check, before=store_originals)
            state.notify_indexers()
            state.runner.notify()
            return [r.seq for r in records]

    def _refresh(self) -> None:
        """Load what other writers appended; their new turns may be due for work."""
        if self._state.refresh():
            self._state.notify_indexers()
            self._state.runner.notify()

    def assemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
        about: str | None = None,
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
            about: The user's new text when it is not stored yet (a chat history read
                before the input is added): recall searches it, as it would the last
                user turn (the ordinary room and floor, not a lookup's).

        Returns:
            A ``Prompt``: ``.messages``, ``.tokens``, ``.report``, ``.to_openai()``.

        Raises:
            BudgetError: the system prompt and the current user turn alone do not fit.
            ClosedError: the memory was closed.
        """
        state = self._state
        with state.lock:
            self._check_open()
            self._refresh()
            limit = (self.budget if budget is None else as_budget(budget)).prompt_tokens
            return build_prompt(
                state.view,
                state.recall,
                self.counter,
                limit=limit,
                system=system,
                query=query,
                about=about,
                policy=self.policy,
                runner=state.runner,
                ledger=state.ledger(self._price),
                prices=self.prices,
            )

    def history(self, *, include_retracted: bool = False) -> list[BaseMessage]:
        """Return every message added to the session, unabridged and in order; retracted
        ones only with ``include_retracted``."""
        with self._state.lock:
            self._check_open()
            records = self._state.messages(include_retracted=include_retracted)
        return [messages_from_dict([json.loads(r.payload)])[0] for r in records]

    def recall(
        self,
        ref: str | None = None,
        query: str | None = None,
        max_tokens: int = DEFAULT_RECALL_TOKENS,
        *,
        page: int = 1,
    ) -> str:
        """Return exactly what the ``recall`` tool returns (see ``memory.tool.recall``),
        over the turns stored by now, by any process.

        Raises:
            ClosedError: the memory was closed, or the session forgotten elsewhere.
            ConfigError: ``ref`` or ``query`` is not text, or ``max_tokens`` or
                ``page`` not an integer (a model's tool call gets a message instead).
        """
        for name, value in (("ref", ref), ("query", query)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{name} must be a str or None, not {type(value).__name__}")
        for name, number in (("max_tokens", max_tokens), ("page", page)):
            if isinstance(number, bool) or not isinstance(number, int):
                raise ConfigError(f"{name} must be an int, not {type(number).__name__}")
        self._current()
        return recall(self._state.recall, ref=ref, query=query, max_tokens=max_tokens, page=page)

    def recall_tool(self) -> BaseTool:
        """Return the recall tool as a LangChain ``BaseTool`` bound to this session; each
        call reads the turns stored by then, by any process, and its ``max_tokens`` is
        capped so the answer is read as it is and fits the budget
        (``memory.tool.answer_room``)."""
        self._check_open()
        room = functools.partial(
            answer_room,
            compress_threshold=self.compress_threshold,
            prompt_tokens=self.budget.prompt_tokens,
        )
        return recall_tool(self._state.recall, before=self._current, room=room)

    def _current(self) -> None:
        """Check the memory is open and load what other writers stored since."""
        with self._state.lock:
            self._check_open()
            self._refresh()

    def wait_until_indexed(self, timeout: float | None = None) -> bool:
        """Block until every archived chunk and turn is embedded; True if in time.

        Raises:
            ConfigError: ``timeout`` is not seconds >= 0 or None.
        """
        self._current()
        return self._state.wait_indexed(check_timeout(timeout))

    @property
    def price(self) -> Price | None:
        """The model's price and prompt-caching rule (None: unknown model)."""
        return self._price

    @property
    def history_tokens(self) -> int:
        """Counted tokens of the whole stored history (what any process stored by now),
        as prompts would send it.

        Raises:
            ClosedError: the memory was closed, or the session forgotten elsewhere.
        """
        self._current()
        return self._state.view.history_tokens

    def close(self) -> None:
        """Release the handle (idempotent).

        Background work on the session goes on in the engine; a shared engine closes
        with its last handle. Every ``add`` was already durable when it returned.
        """
        if self._closed:
            return
        self._closed = True
        detached = self._finalizer.detach() if self._finalizer is not None else None
        if detached is not None:
            _, release, (key, _), _ = detached
            release(key, True)  # the engine's release, as the collector would call it

    def forget(self) -> ForgetReport:
        """Delete every trace of this session, then close the handle (``Engine.forget``).

        Raises:
            ClosedError: the handle was closed.
            StoreError: the store failed; nothing was deleted.
        """
        self._check_open()
        try:
            return self.engine.forget(self.session)
        finally:
            self.close()
