"""LangChain adapters: agent middleware for ``create_agent`` and a chat message history.

``ContextAtticChatMessageHistory`` needs only langchain-core. ``ContextAtticMiddleware``
needs ``langchain`` (``pip install 'context-attic[agents]'``) and is imported on first use,
so this module imports without it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from langchain_core._api import LangChainDeprecationWarning
from langchain_core.messages import BaseMessage

from memory._assemble import Prompt
from memory._closing import Closing
from memory._core import ConversationMemory
from memory._errors import ConfigError
from memory.adapters._common import AGENTS_EXTRA, MessagesCounter, require

with warnings.catch_warnings():
    # Deprecated in langchain-core 1.6.4 for LangGraph persistence, still supported to 2.0.
    warnings.simplefilter("ignore", LangChainDeprecationWarning)
    from langchain_core.chat_history import BaseChatMessageHistory

if TYPE_CHECKING:
    from memory.adapters._middleware import (
        DEFAULT_IDLE_SECONDS,
        MAX_HELD_SESSIONS,
        ContextAtticMiddleware,
    )

__all__ = [
    "DEFAULT_IDLE_SECONDS",
    "MAX_HELD_SESSIONS",
    "ContextAtticChatMessageHistory",
    "ContextAtticMiddleware",
    "MessagesCounter",
]

_LAZY = frozenset({"ContextAtticMiddleware", "DEFAULT_IDLE_SECONDS", "MAX_HELD_SESSIONS"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        require("langchain.agents.middleware", AGENTS_EXTRA)
        require("langgraph", AGENTS_EXTRA)
        from memory.adapters import _middleware

        return getattr(_middleware, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class ContextAtticChatMessageHistory(BaseChatMessageHistory, Closing):
    """A chat history for ``RunnableWithMessageHistory`` whose ``messages`` fit a budget.

    ``add_messages`` stores every message in the session's memory; ``messages`` returns
    the budgeted view (``memory._assemble()``: recent turns, exchanges whole, archived tool
    outputs as digests), not the whole history (that is ``memory.history()``).

    ``RunnableWithMessageHistory`` reads the history *before* adding the new input, so give
    the memory a budget that leaves room for the system prompt and the new message.

    The store is append-only: ``clear()`` raises ``NotImplementedError`` rather than
    pretend to forget. To start over, open the memory of a new session id.

    Args:
        memory: The session's memory; the history closes it on ``close()``.
        system: A system prompt to count against the budget (it is not returned; put it
            in your prompt template).
    """

    def __init__(self, memory: ConversationMemory, *, system: str | None = None) -> None:
        """Wrap an open memory.

        Raises:
            ConfigError: ``memory`` is not a ``ConversationMemory`` (a session id, say:
                open it with ``Engine.open(session=...)`` first).
        """
        if not isinstance(memory, ConversationMemory):
            raise ConfigError(
                f"memory must be a ConversationMemory, not {type(memory).__name__}: "
                "open one with Engine.open(session=...) or ConversationMemory.open(...)"
            )
        self.memory = memory
        self.system = system
        self.last_prompt: Prompt | None = None

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """Return the budgeted view of the conversation, chronological.

        Raises:
            BudgetError: the system prompt and the current user turn alone do not fit.
        """
        prompt = self.memory.assemble(system=self.system)
        self.last_prompt = prompt
        start = 1 if self.system else 0  # the system prompt belongs to the template
        return list(prompt.messages[start:])

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Store messages, all or nothing.

        Raises:
            InputError: a message cannot be accepted (a tool result whose call was never
                issued...); nothing was stored.
        """
        self.memory.add(list(messages))

    async def aget_messages(self) -> list[BaseMessage]:
        """``messages`` for async chains: assembled on the engine's I/O threads."""
        return await self.memory.engine.run(lambda: self.messages)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """``add_messages`` for async chains: stored on the engine's I/O threads."""
        await self.memory.aadd(list(messages))

    def clear(self) -> None:
        """Refuse: the store is append-only (open a new session id to start over).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            f"context-attic keeps every turn of session {self.memory.session!r}; "
            "to start over, open the memory of a new session id"
        )

    def close(self) -> None:
        """Close the underlying memory."""
        self.memory.close()
