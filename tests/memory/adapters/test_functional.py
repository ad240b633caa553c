"""summarize_messages: the pure function for code that keeps its own state."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

from memory import InputError
from memory.adapters.functional import RunningSummary, summarize_messages


def _conversation(turns: int) -> list[Any]:
    messages: list[Any] = []
    for i in range(turns):
        messages.append(HumanMessage(f"Question {i}: what about the Paris office in 2024?"))
        messages.append(AIMessage(f"Answer {i}: " + "The office moved to Lyon on 3 May. " * 5))
    return messages


def test_a_short_conversation_is_sent_whole() -> None:
    messages = _conversation(2)
    result = summarize_messages(messages, budget=4000, system="Be brief.")
    assert result.messages == [SystemMessage("Be brief."), *messages]
    assert result.running_summary == RunningSummary()
    assert result.report.tokens <= 4000


def test_evicted_turns_are_folded_into_the_summary(scripted: Callable[..., Any]) -> None:
    model = scripted(*["The office moved from Paris to Lyon."] * 5)
    messages = _conversation(20)
    result = summarize_messages(messages, budget=600, model=model)
    state = result.running_summary
    assert state.text == "The office moved from Paris to Lyon." and state.covers > 0
    assert result.report.tokens <= 600
    # The summary is quoted data in a user turn (after the pinned opening turn), never
    # a system message.
    assert not any(isinstance(m, SystemMessage) for m in result.messages)
    assert result.messages[0] == messages[0]
    assert isinstance(result.messages[1], HumanMessage)
    first_block = result.messages[1].content[0]
    assert isinstance(first_block, dict) and "Lyon" in first_block["text"]
    assert first_block["text"].startswith('<memory source="running summary')
    assert result.messages[-1] == messages[-1]
    # The next call passes the state back: covered messages are not sent again.
    messages.append(HumanMessage("And the Berlin office?"))
    again = summarize_messages(messages, budget=600, model=model, running_summary=state)
    assert again.running_summary.covers >= state.covers
    covered = messages[1 : again.running_summary.covers]  # all but the pinned opening
    assert all(m not in again.messages for m in covered)
    assert again.messages[-1].content == "And the Berlin office?"


def test_the_offline_default_summarizer() -> None:
    result = summarize_messages(_conversation(20), budget=600)
    assert result.running_summary.covers > 0
    assert "Lyon" in result.running_summary.text


def test_openai_dicts_and_system_messages() -> None:
    result = summarize_messages(
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
        ],
        budget=1000,
        system="You are kind.",
    )
    assert [m.type for m in result.messages] == ["system", "human", "ai"]
    assert result.messages[0].content == "You are kind.\n\nBe brief."


def test_bad_input_is_refused() -> None:
    with pytest.raises(InputError, match="never issued"):
        summarize_messages([ToolMessage("x", tool_call_id="nope")], budget=1000)
    with pytest.raises(InputError, match="covers 5 messages"):
        summarize_messages(
            [HumanMessage("hi")], budget=1000, running_summary=RunningSummary("s", 5)
        )


def test_an_unanswered_call_is_left_out() -> None:
    dangling = AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "c1"}])
    result = summarize_messages([HumanMessage("a"), dangling, HumanMessage("b")], budget=1000)
    assert dangling not in result.messages
    assert result.report.pending_tool_calls == ("c1",)


def test_the_async_twin_gives_the_same_result_off_the_event_loop() -> None:
    import asyncio
    import threading

    from memory.adapters.functional import asummarize_messages

    messages = [HumanMessage(f"question {i} " * 40) for i in range(12)]
    loop_thread = threading.get_ident()
    seen: list[int] = []

    def counter(text: str) -> int:
        seen.append(threading.get_ident())
        return len(text) // 4 + 1

    async def main() -> Any:
        return await asummarize_messages(messages, budget=600, token_counter=counter)

    result = asyncio.run(main())
    assert (
        result.messages == summarize_messages(messages, budget=600, token_counter=counter).messages
    )
    assert seen and loop_thread not in seen[: len(seen) // 2]
