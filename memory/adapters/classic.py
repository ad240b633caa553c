"""``ContextAtticMemory``: a langchain-classic ``BaseMemory`` for legacy chains.

A drop-in for ``ConversationTokenBufferMemory`` and ``ConversationSummaryBufferMemory``
(same keywords: ``memory_key``, ``return_messages``, ``max_token_limit``, ``llm``,
``human_prefix``, ``ai_prefix``, ``input_key``, ``output_key``). Needs
``pip install 'context-attic[classic]'``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from langchain_core._api import LangChainDeprecationWarning
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, get_buffer_string
from pydantic import Field, PrivateAttr

from memory._core import ConversationMemory
from memory._engine import Engine
from memory._errors import ConfigError, did_you_mean
from memory.adapters._common import CLASSIC_EXTRA, MemoryOpener, check_options, require

require("langchain_classic", CLASSIC_EXTRA)

with warnings.catch_warnings():
    # BaseMemory is deprecated for LangGraph persistence, and supported until 2.0.
    warnings.simplefilter("ignore", LangChainDeprecationWarning)
    from langchain_classic.base_memory import BaseMemory
    from langchain_classic.memory.utils import get_prompt_input_key

__all__ = ["ContextAtticMemory"]


class ContextAtticMemory(BaseMemory):
    """Give a legacy chain the budgeted view of its conversation.

    ``load_memory_variables`` returns the assembled prompt's messages (running summary,
    then recent turns, at most ``max_token_limit`` tokens) as messages or as a
    ``Human: ... / AI: ...`` buffer; ``save_context`` stores the turn. Every turn stays
    in the store (``memory.history()``) until ``clear()`` deletes the session.

    Attributes:
        memory_key: The chain input the history goes to.
        return_messages: Messages (True) or one string (False).
        max_token_limit: The token budget of the returned history.
        llm: The chat model that writes the running summary; None: the offline one.
        human_prefix: Prefix of user lines in the string buffer.
        ai_prefix: Prefix of model lines in the string buffer.
        input_key: The input holding the user's words (default: the only other one).
        output_key: The output holding the reply (default: the only one, or "output").
        path: SQLite file of the store (default ``":memory:"``).
        session: The session id.
        embedder: LangChain ``Embeddings`` for archive search (None: bundled MiniLM).
        memory: An already open ``ConversationMemory`` to use instead of ``path``.
        engine: An ``Engine`` the application owns, used instead of ``path``.
        options: Any other option of ``Engine.open`` (``model``, ``policy``,
            ``compress_threshold``...), passed on unchanged.
    """

    memory_key: str = "history"
    return_messages: bool = False
    max_token_limit: int = 2000
    llm: BaseChatModel | None = None
    human_prefix: str = "Human"
    ai_prefix: str = "AI"
    input_key: str | None = None
    output_key: str | None = None
    path: str | Path = ":memory:"
    session: str = "default"
    embedder: Embeddings | None = None
    memory: ConversationMemory | None = None
    engine: Engine | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    _opened: ConversationMemory | None = PrivateAttr(default=None)

    def __init__(self, **data: Any) -> None:
        """Check the fields now, at start-up (pydantic would ignore a misspelled one).

        Raises:
            ConfigError: an unknown field or option, a bad budget or store folder, or no
                ``session`` with a store that outlives this object (a file or an
                ``engine``): every user would share the session ``"default"``.
        """
        fields = type(self).model_fields
        for name in data:
            if name not in fields:
                hint = did_you_mean(name, fields)
                hint = f"; {hint}" if hint else ""
                raise ConfigError(f"unknown field {name!r} of ContextAtticMemory{hint}")
        shared = data.get("engine") is not None or str(data.get("path", ":memory:")) != ":memory:"
        if shared and data.get("memory") is None and "session" not in data:
            raise ConfigError(
                "give a session with a path or an engine: without one every user of the "
                "store would share the session 'default' (ContextAtticMemory(session=...))"
            )
        check_options(data.get("options", {}))
        super().__init__(**data)
        if self.memory is None:
            options = {**self.options, "budget": self.max_token_limit}
            MemoryOpener(path=self.path, engine=self.engine, **options)  # checks them

    @property
    def conversation(self) -> ConversationMemory:
        """The ``ConversationMemory`` behind this object (opened on first use)."""
        if self.memory is not None:
            return self.memory
        if self._opened is None:
            opener = MemoryOpener(
                path=self.path,
                engine=self.engine,
                **{
                    **self.options,
                    "budget": self.max_token_limit,
                    "summarizer": self.llm,
                    "embedder": self.embedder,
                },
            )
            self._opened = opener.open(self.session)
        return self._opened

    @property
    def memory_variables(self) -> list[str]:
        """The one chain input this memory fills: ``memory_key``."""
        return [self.memory_key]

    @property
    def buffer(self) -> str | list[BaseMessage]:
        """The budgeted history, as ``load_memory_variables`` returns it (recall
        follows the last stored user turn)."""
        return self._history(None)

    def _history(self, about: str | None) -> str | list[BaseMessage]:
        prompt = self.conversation.assemble(budget=self.max_token_limit, about=about)
        messages = list(prompt.messages)
        if self.return_messages:
            return messages
        # A turn of several text blocks (the recalled block, then the user's words) keeps
        # them apart, as separate paragraphs.
        lines = [
            m.model_copy(update={"content": "\n\n".join(_texts(m.content))})
            if isinstance(m.content, list)
            else m
            for m in messages
        ]
        return get_buffer_string(lines, human_prefix=self.human_prefix, ai_prefix=self.ai_prefix)

    def load_memory_variables(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Return ``{memory_key: history}``, fitting ``max_token_limit``, with the
        earlier turns relevant to the new input recalled into it (the input itself is
        stored later, by ``save_context``).

        Raises:
            BudgetError: the current user turn alone does not fit ``max_token_limit``.
        """
        key = self.input_key or next((k for k in inputs if k != self.memory_key), None)
        about = str(inputs[key]) if key is not None and key in inputs else None
        return {self.memory_key: self._history(about)}

    def save_context(self, inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
        """Store the user's input and the chain's output as one turn each.

        Raises:
            ConfigError: the input or output key cannot be told apart.
        """
        try:
            input_key = self.input_key or get_prompt_input_key(inputs, self.memory_variables)
        except ValueError as exc:
            raise ConfigError(f"{exc}; set input_key") from exc
        output_key = self.output_key
        if output_key is None:
            if len(outputs) == 1:
                output_key = next(iter(outputs))
            elif "output" in outputs:
                output_key = "output"
            else:
                raise ConfigError(f"several outputs {sorted(outputs)}; set output_key")
        self.conversation.add(
            [HumanMessage(str(inputs[input_key])), AIMessage(str(outputs[output_key]))]
        )

    def clear(self) -> None:
        """Start the conversation over, as ``ConversationSummaryBufferMemory.clear()``
        does: every turn, summary and archived output of the session is deleted
        (``ConversationMemory.forget``), and the next call opens it empty.

        Raises:
            ConfigError: a ``memory`` you passed in (forget it yourself: ``clear()``
                would close your handle).
            StoreError: the store failed; nothing was deleted.
        """
        if self.memory is not None:
            raise ConfigError(
                "clear() deletes the session and closes its handle; with memory= given, "
                "call memory.forget() yourself and pass a new handle"
            )
        self.conversation.forget()
        self._opened = None

    def close(self) -> None:
        """Close the memory this object opened (one passed as ``memory`` stays open)."""
        if self._opened is not None:
            self._opened.close()
            self._opened = None


def _texts(blocks: list[Any]) -> list[str]:
    """The texts of a message's content blocks (strings and ``text`` blocks)."""
    return [
        b if isinstance(b, str) else str(b.get("text", ""))
        for b in blocks
        if isinstance(b, str) or (isinstance(b, dict) and b.get("type") == "text")
    ]
