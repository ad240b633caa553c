"""Checks every prompt must pass, shared by the assembly and memory property tests."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage


def assert_pairs_intact(messages: Sequence[BaseMessage]) -> None:
    open_calls: set[str] = set()
    for message in messages:
        if isinstance(message, ToolMessage):
            assert message.tool_call_id in open_calls, "tool result without its call"
            open_calls.discard(message.tool_call_id)
        else:
            assert not open_calls, "tool call without its results"
            if isinstance(message, AIMessage):
                open_calls = {str(c["id"]) for c in message.tool_calls}
    assert not open_calls, "tool call without its results"


def texts(message: BaseMessage) -> list[str]:
    """Every text piece of a message (its string content, or its text blocks)."""
    if isinstance(message.content, str):
        return [message.content]
    return [str(b.get("text", "")) for b in message.content if isinstance(b, dict)]


def assert_valid_for_providers(messages: Sequence[BaseMessage]) -> None:
    """One system message at most, first; then a user turn; no blank text block."""
    systems = [i for i, m in enumerate(messages) if isinstance(m, SystemMessage)]
    assert systems in ([], [0])
    conversation = messages[len(systems) :]
    if conversation:
        assert isinstance(conversation[0], HumanMessage), "must start on a user turn"
    for message in messages:
        if isinstance(message.content, list):
            for block in message.content:
                if isinstance(block, dict) and block.get("type") == "text":
                    assert str(block["text"]).strip(), "blank text block"
        elif not (isinstance(message, AIMessage) and message.tool_calls):
            assert message.content.strip(), "blank message"
