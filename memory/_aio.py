"""The async API of a memory handle: the blocking work runs on the engine's I/O threads.

``aadd``, ``aassemble``, ``arecall`` and ``ahistory`` never block the event loop: each runs
its sync twin on ``Engine.run`` (a bounded thread pool per engine), so a server's handlers
can await them while other requests are served.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self

from langchain_core.messages import BaseMessage

from memory._assemble import Prompt
from memory._budget import Budget
from memory._messages import MessageLike
from memory._timestamps import Timestamp
from memory.tool import DEFAULT_RECALL_TOKENS

if TYPE_CHECKING:
    from memory._engine import Engine

__all__ = ["AsyncMethods"]


class AsyncMethods:
    """Mixin: async twins of ``add``, ``assemble``, ``recall`` and ``history``."""

    engine: Engine

    def add(
        self, messages: MessageLike | Sequence[MessageLike], *, timestamp: Timestamp | None = None
    ) -> list[int]:
        raise NotImplementedError

    def assemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
        about: str | None = None,
    ) -> Prompt:
        raise NotImplementedError

    def recall(
        self,
        ref: str | None = None,
        query: str | None = None,
        max_tokens: int = DEFAULT_RECALL_TOKENS,
        *,
        page: int = 1,
    ) -> str:
        raise NotImplementedError

    def history(self, *, include_retracted: bool = False) -> list[BaseMessage]:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    async def aclose(self) -> None:
        """``close`` for async code (it never waits for a model)."""
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    async def aadd(
        self, messages: MessageLike | Sequence[MessageLike], *, timestamp: Timestamp | None = None
    ) -> list[int]:
        """``add`` for async code: the store write runs on the engine's I/O threads."""
        return await self.engine.run(functools.partial(self.add, messages, timestamp=timestamp))

    async def aassemble(
        self,
        *,
        system: str | None = None,
        query: str | None = None,
        budget: Budget | int | None = None,
        about: str | None = None,
    ) -> Prompt:
        """``assemble`` for async code: search and query embedding run off the event loop."""
        return await self.engine.run(
            functools.partial(self.assemble, system=system, query=query, budget=budget, about=about)
        )

    async def arecall(
        self,
        ref: str | None = None,
        query: str | None = None,
        max_tokens: int = DEFAULT_RECALL_TOKENS,
        *,
        page: int = 1,
    ) -> str:
        """``recall`` for async code, run on the engine's I/O threads."""
        return await self.engine.run(
            functools.partial(self.recall, ref, query, max_tokens, page=page)
        )

    async def ahistory(self, *, include_retracted: bool = False) -> list[BaseMessage]:
        """``history`` for async code, run on the engine's I/O threads."""
        return await self.engine.run(
            functools.partial(self.history, include_retracted=include_retracted)
        )
