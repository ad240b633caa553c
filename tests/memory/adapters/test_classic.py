"""ContextAtticMemory in place of ConversationSummaryBufferMemory (langchain-classic)."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import BaseMessage, HumanMessage

from memory import ConfigError, ConversationMemory

pytest.importorskip("langchain_classic")
from memory.adapters.classic import ContextAtticMemory


def test_drop_in_keywords_and_budget(embedder: DeterministicFakeEmbedding) -> None:
    summarizer = FakeListChatModel(responses=["They talked about offices."] * 20)
    memory = ContextAtticMemory(
        memory_key="chat_history",
        return_messages=True,
        max_token_limit=200,
        llm=summarizer,
        embedder=embedder,
        session="classic",
    )
    assert memory.memory_variables == ["chat_history"]
    for i in range(10):
        memory.save_context({"input": f"question {i}"}, {"output": f"answer {i} " + "x " * 30})
    history = memory.load_memory_variables({"input": "next"})["chat_history"]
    assert all(isinstance(m, BaseMessage) for m in history)
    assert history[-1].content.startswith("answer 9")
    assert len(history) < 20
    assert len(memory.conversation.history()) == 20
    assert memory.conversation.session == "classic"
    memory.close()


def test_string_buffer_and_prefixes(embedder: DeterministicFakeEmbedding) -> None:
    memory = ContextAtticMemory(embedder=embedder, human_prefix="User", ai_prefix="Bot")
    memory.save_context({"question": "hi"}, {"text": "hello"})
    assert memory.load_memory_variables({"question": "x"}) == {"history": "User: hi\nBot: hello"}
    memory.clear()  # a "reset chat" button: the session starts over, empty
    assert memory.load_memory_variables({"question": "x"}) == {"history": ""}
    assert memory.conversation.history() == []
    with pytest.raises(ConfigError, match="output_key"):
        memory.save_context({"question": "a"}, {"one": "1", "two": "2"})
    with pytest.raises(ConfigError, match="input_key"):
        memory.save_context({"a": "1", "b": "2"}, {"text": "x"})
    memory.close()


def test_an_open_memory_can_be_passed(embedder: DeterministicFakeEmbedding) -> None:
    with ConversationMemory.open(":memory:", session="x", embedder=embedder) as conversation:
        conversation.add(HumanMessage("earlier"))
        memory = ContextAtticMemory(memory=conversation, return_messages=True)
        assert [m.content for m in memory.buffer] == ["earlier"]  # type: ignore[union-attr]


def test_in_a_legacy_conversation_chain(embedder: DeterministicFakeEmbedding) -> None:
    chains: Any = pytest.importorskip("langchain_classic.chains")
    model = FakeListChatModel(responses=["Hello!", "You said hi."])
    memory = ContextAtticMemory(embedder=embedder, max_token_limit=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # ConversationChain is legacy
        chain = chains.ConversationChain(llm=model, memory=memory)
        assert chain.invoke({"input": "hi"})["response"] == "Hello!"
        assert chain.invoke({"input": "what did I say?"})["response"] == "You said hi."
    assert [m.content for m in memory.conversation.history()] == [
        "hi", "Hello!", "what did I say?", "You said hi.",
    ]  # fmt: skip
    memory.close()


def test_an_engine_and_any_open_option_are_passed_on(embedder: Any) -> None:
    from memory import Engine

    with Engine(":memory:", embedder=embedder) as engine:
        classic = ContextAtticMemory(
            engine=engine,
            session="u1",
            options={"model": "gpt-4o-mini", "compress_threshold": 64},
        )
        conversation = classic.conversation
        assert conversation.engine is engine
        assert conversation.model == "gpt-4o-mini" and conversation.compress_threshold == 64
        classic.save_context({"input": "hi"}, {"output": "hello"})
        assert [m.content for m in engine.open(session="u1").history()] == ["hi", "hello"]


def test_misconfiguration_is_refused_at_construction(tmp_path: Any) -> None:
    db = str(tmp_path / "c.db")
    with pytest.raises(ConfigError, match=r"unknown field 'sesion'.*did you mean 'session'"):
        ContextAtticMemory(max_token_limit=500, path=db, sesion="alice")
    with pytest.raises(ConfigError, match="unknown field 'max_token_limt'"):
        ContextAtticMemory(max_token_limt=50)
    # A store that outlives the object needs a session: users would share "default".
    with pytest.raises(ConfigError, match="share the session 'default'"):
        ContextAtticMemory(max_token_limit=500, path=db)
    with pytest.raises(ConfigError, match=r"unknown option 'modle'.*did you mean 'model'"):
        ContextAtticMemory(session="a", options={"modle": "gpt-4o-mini"})
    with pytest.raises(ConfigError, match="no folder for the store"):
        ContextAtticMemory(session="a", path=str(tmp_path / "missing" / "a.db"))
    alice = ContextAtticMemory(max_token_limit=500, path=db, session="alice")
    alice.save_context({"input": "My locker code is 4471"}, {"output": "Stored."})
    bob = ContextAtticMemory(max_token_limit=500, path=db, session="bob")
    assert "4471" not in str(bob.load_memory_variables({"input": "hi"}))
    assert ContextAtticMemory().session == "default"  # a private in-memory store: alone


def test_the_new_input_recalls_an_evicted_fact() -> None:
    # The chain stores the input after reading the history (save_context): recall has to
    # follow the input itself, not the last stored question.
    cheap = FakeListChatModel(responses=["The user listed lockers and bag serials."] * 1000)
    memory = ContextAtticMemory(llm=cheap, max_token_limit=1000, return_messages=True)
    for i in range(60):  # the bundled MiniLM: relevance needs real embeddings
        fact = f"Locker {i} holds a bag with serial <{i * 7919}>."
        memory.save_context({"input": fact}, {"output": "Noted."})
    assert memory.conversation.wait_until_indexed(60)
    assert memory.conversation.wait_for_summary(60)
    question = {"input": "What is the serial of the bag in locker 5?"}
    assert "<39595>" not in str(memory.buffer)  # folded into a summary that lost it
    assert "<39595>" in str(memory.load_memory_variables(question)["history"])


def test_a_turn_of_several_blocks_keeps_them_apart_in_the_string_buffer(
    embedder: DeterministicFakeEmbedding,
) -> None:
    """The note on left-out turns heads the user's text; in the string form it is its
    own paragraph, not glued to the user's words ("</memory>Remember item 8")."""
    memory = ContextAtticMemory(max_token_limit=300, embedder=embedder, session="blocks")
    for i in range(15):
        memory.save_context({"input": f"Remember item {i}: code {1000 + i}."}, {"output": "Noted."})
    buffer = memory.load_memory_variables({"input": "next"})["history"]
    assert "</memory>\n\n" in buffer and "</memory>Remember" not in buffer
    memory.close()
