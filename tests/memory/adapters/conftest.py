"""Fakes for the adapter tests: a scripted chat model that can call tools, offline.

The model classes are also registered as the module ``conftest_models`` so tests can
import them (tests are imported with ``--import-mode=importlib``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field

from memory import ConversationMemory


class ScriptedChatModel(GenericFakeChatModel):
    """Replies from a script; records every prompt it is sent; ``bind_tools`` is a no-op."""

    prompts: list[list[BaseMessage]] = Field(default_factory=list)

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedChatModel:
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.prompts.append(list(messages))
        return super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)


class AnthropicLike(ScriptedChatModel):
    """A scripted model that reports langchain-anthropic's ``_llm_type``."""

    @property
    def _llm_type(self) -> str:
        return "anthropic-chat"


def call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    """An AI message that calls one tool."""
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


@pytest.fixture
def scripted() -> Callable[..., ScriptedChatModel]:
    """Build a scripted model from replies (strings or AI messages)."""

    def build(*replies: AIMessage | str) -> ScriptedChatModel:
        return ScriptedChatModel(messages=iter(replies))

    return build


@pytest.fixture
def embedder() -> DeterministicFakeEmbedding:
    """Offline hash embeddings."""
    return DeterministicFakeEmbedding(size=64)


@pytest.fixture
def small_mem(embedder: DeterministicFakeEmbedding) -> Iterator[ConversationMemory]:
    """A memory with a small budget that archives tool outputs above 50 tokens."""
    with ConversationMemory.open(
        ":memory:", session="s", budget=400, embedder=embedder, compress_threshold=50
    ) as memory:
        yield memory


sys.modules.setdefault("conftest_models", sys.modules[__name__])
