"""ContextAtticChatMessageHistory under RunnableWithMessageHistory; the lazy import."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from memory import ConfigError, ConversationMemory, InputError
from memory.adapters.langchain import ContextAtticChatMessageHistory


@pytest.fixture
def histories(
    embedder: DeterministicFakeEmbedding,
) -> Iterator[dict[str, ContextAtticChatMessageHistory]]:
    store: dict[str, ContextAtticChatMessageHistory] = {}
    yield store
    for history in store.values():
        history.close()


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_runnable_with_message_history(
    histories: dict[str, ContextAtticChatMessageHistory], embedder: DeterministicFakeEmbedding
) -> None:
    def get_session_history(session_id: str) -> ContextAtticChatMessageHistory:
        if session_id not in histories:
            memory = ConversationMemory.open(
                ":memory:", session=session_id, budget=250, embedder=embedder
            )
            histories[session_id] = ContextAtticChatMessageHistory(memory, system="Be brief.")
        return histories[session_id]

    seen: list[Any] = []
    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=[f"reply {i} " + "blah " * 30 for i in range(10)])
    chain = RunnableWithMessageHistory(
        prompt | (lambda value: seen.append(value) or value) | model,
        get_session_history,
        input_messages_key="input",
        history_messages_key="history",
    )
    config: Any = {"configurable": {"session_id": "u1"}}
    for i in range(10):
        reply = chain.invoke({"input": f"question {i}"}, config)
        assert reply.content.startswith(f"reply {i}")
    history = histories["u1"]
    assert len(history.memory.history()) == 20  # everything stored, once
    assert len(history.messages) < 20  # the view fits the budget
    assert history.last_prompt is not None and history.last_prompt.tokens <= 250
    last_sent = seen[-1].to_messages()
    assert last_sent[-1].content == "question 9"
    assert last_sent[-2].content.startswith("reply 8")


def test_messages_add_and_clear(embedder: DeterministicFakeEmbedding) -> None:
    memory = ConversationMemory.open(":memory:", session="s", budget=1000, embedder=embedder)
    with ContextAtticChatMessageHistory(memory) as history:
        history.add_user_message("hi")
        history.add_messages([AIMessage("hello")])
        assert [m.content for m in history.messages] == ["hi", "hello"]
        with pytest.raises(NotImplementedError, match="new session"):
            history.clear()
        with pytest.raises(InputError, match="never issued"):
            history.add_messages([ToolMessage("x", tool_call_id="nope")])
        dangling = AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "c1"}])
        history.add_messages([dangling, HumanMessage("next")])
        assert dangling not in history.messages
        assert len(memory.history()) == 4  # every turn is kept in the store


def test_import_memory_without_langchain() -> None:
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('langchain', 'langgraph', 'langchain_classic'):\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import memory, memory.agent, memory.adapters.functional\n"
        "import memory.adapters.langchain as lc\n"
        "try:\n"
        "    lc.ContextAtticMiddleware\n"
        "except memory.MissingDependencyError as exc:\n"
        "    print('agents:', exc)\n"
        "try:\n"
        "    import memory.adapters.classic\n"
        "except memory.MissingDependencyError as exc:\n"
        "    print('classic:', exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert "agents:" in done.stdout and "context-attic[agents]" in done.stdout
    assert "classic:" in done.stdout and "context-attic[classic]" in done.stdout


@pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")
def test_the_readme_chat_pattern_opens_a_cheap_handle_per_call(
    tmp_path: Any, embedder: DeterministicFakeEmbedding
) -> None:
    """A history (and its handle) per invoke, never closed, sync and async: one engine,
    a fixed number of threads, and each session sees only its own turns."""
    import asyncio
    import threading

    from memory import Engine

    engine = Engine(tmp_path / "chat.db", embedder=embedder)

    def get_session_history(session_id: str) -> ContextAtticChatMessageHistory:
        return ContextAtticChatMessageHistory(engine.open(session=session_id, budget=3000))

    prompt = ChatPromptTemplate.from_messages(
        [("system", "Be brief."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=[f"reply {n}" for n in range(400)])
    chat = RunnableWithMessageHistory(
        prompt | model,  # type: ignore[arg-type]
        get_session_history,
        input_messages_key="input",
        history_messages_key="history",
    )
    before = threading.active_count()
    for n in range(100):
        config: Any = {"configurable": {"session_id": f"user-{n % 10}"}}
        chat.invoke({"input": f"my number is {n}"}, config)

    async def more() -> None:
        for n in range(100, 120):
            config: Any = {"configurable": {"session_id": f"user-{n % 10}"}}
            await chat.ainvoke({"input": f"my number is {n}"}, config)

    asyncio.run(more())
    assert threading.active_count() - before <= engine.pool.workers + 4  # + the I/O threads
    with engine.open(session="user-3") as mem:
        said = [str(m.content) for m in mem.history() if m.type == "human"]
    assert said == [f"my number is {n}" for n in range(3, 120, 10)]
    engine.close()


def test_a_history_needs_an_open_memory_not_a_session_id() -> None:
    with pytest.raises(ConfigError, match=r"open one with Engine\.open"):
        ContextAtticChatMessageHistory("u1")  # type: ignore[arg-type]
