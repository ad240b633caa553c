"""Shared by the examples: a real model when a key is set, else LangChain's fake models.

Set ``CONTEXT_ATTIC_FAKE_MODEL=1`` to force the fake models (the test suite does).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

FORCE_FAKE = "CONTEXT_ATTIC_FAKE_MODEL"


class ScriptedToolModel(GenericFakeChatModel):
    """A fake chat model that replies from a script, tool calls included."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedToolModel:
        return self


def live() -> bool:
    """True when a real OpenAI model can be used (key set, langchain-openai installed)."""
    if os.environ.get(FORCE_FAKE) or not os.environ.get("OPENAI_API_KEY"):
        return False
    try:
        import langchain_openai  # noqa: F401
    except ImportError:
        return False
    return True


def chat_model(script: Sequence[AIMessage | str]) -> BaseChatModel:
    """gpt-4o-mini when live, else a fake that plays ``script``."""
    if live():
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model="gpt-4o-mini")
    return ScriptedToolModel(messages=iter(script))


def embedder() -> Embeddings | None:
    """The bundled MiniLM when live (None), else instant fake embeddings."""
    return None if live() else DeterministicFakeEmbedding(size=64)


def tool_call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    """A scripted AI message calling one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])
