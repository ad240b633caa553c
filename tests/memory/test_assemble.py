"""Budgeted assembly: the guarantees hold over random conversations (hypothesis)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from memory import Budget, BudgetError, ConfigError, TiktokenCounter, assemble
from memory.assemble import RECALL_HEADER, SUMMARY_HEADER
from memory.messages import Exchange, ExchangeBuilder, Turn

COUNTER = TiktokenCounter("o200k_base")
words = st.text(alphabet=st.sampled_from('abc xyz 0123 日本語 {}[]:",\n'), min_size=0, max_size=400)


@st.composite
def conversations(draw: st.DrawFn) -> list[BaseMessage]:
    """Random valid histories: user turns, replies, tool calls with (maybe pending) results."""
    messages: list[BaseMessage] = []
    next_id = 0
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["user", "ai", "tools", "system"]))
        if kind == "user":
            messages.append(HumanMessage(draw(words)))
        elif kind == "ai":
            messages.append(AIMessage(draw(words)))
        elif kind == "system":
            messages.append(SystemMessage(draw(words)))
        else:
            ids = [f"call_{next_id + i}" for i in range(draw(st.integers(1, 3)))]
            next_id += len(ids)
            calls = [{"name": "run", "args": {"cmd": draw(words)}, "id": i} for i in ids]
            messages.append(AIMessage(draw(words), tool_calls=calls))
            answered = ids if draw(st.booleans()) or len(messages) < 3 else ids[:-1]
            messages.extend(ToolMessage(draw(words), tool_call_id=i) for i in answered)
    return messages


def exchanges_of(messages: Sequence[BaseMessage]) -> list[Exchange]:
    builder = ExchangeBuilder()
    builder.extend(
        Turn(seq=i + 1, message=m, tokens=COUNTER.count_message(m)) for i, m in enumerate(messages)
    )
    return builder.exchanges


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


@given(
    history=conversations(),
    limit=st.integers(20, 3000),
    system=st.one_of(st.none(), words),
    summary=st.one_of(st.none(), words),
    recalled=st.lists(words, max_size=4),
)
def test_assembly_guarantees(
    history: list[BaseMessage],
    limit: int,
    system: str | None,
    summary: str | None,
    recalled: list[str],
) -> None:
    exchanges = exchanges_of(history)
    try:
        prompt = assemble(
            exchanges, limit, COUNTER, system=system, summary=summary, recalled=recalled
        )
    except BudgetError as error:
        users = [m for m in history if isinstance(m, HumanMessage)]
        pinned = COUNTER.count_messages(([SystemMessage(system)] if system else []) + users[-1:])
        assert pinned > limit
        assert error.over_by == pinned - limit > 0
        assert f"over by {pinned - limit}" in str(error)
        return
    body = [m for m in prompt.messages]
    # 1. never over the budget, and the count is the real count of what is sent
    assert prompt.tokens <= limit
    assert prompt.tokens == COUNTER.count_messages(body)
    # 2. no tool result without its call, no call without its results
    assert_pairs_intact(body)
    # 3. the current user turn is always there
    users = [m for m in history if isinstance(m, HumanMessage)]
    if users:
        assert any(m is users[-1] for m in body)
    # 4. chronological: system, summary, recalled, then history in order
    positions = {id(m): i for i, m in enumerate(history)}
    sent = [positions[id(m)] for m in body if id(m) in positions]
    firsts = [positions[id(e.turns[0].message)] for e in exchanges]
    kept_firsts = [p for p in sent if p in firsts]
    assert kept_firsts == sorted(kept_firsts)
    head = body[: len(body) - len(sent)]
    assert all(isinstance(m, SystemMessage) for m in head)
    assert prompt.report.tokens == prompt.tokens
    assert prompt.report.turns_kept + prompt.report.turns_omitted == len(history)


def test_budget_error_says_by_how_much() -> None:
    exchanges = exchanges_of([HumanMessage("word " * 300)])
    with pytest.raises(BudgetError, match=r"over by \d+") as info:
        assemble(exchanges, 100, COUNTER, system="be brief")
    assert info.value.needed == info.value.available + info.value.over_by
    assert info.value.available == 100


def test_newest_exchanges_are_kept_and_the_window_is_contiguous() -> None:
    history: list[BaseMessage] = []
    for i in range(30):
        history += [HumanMessage(f"question {i} " * 20), AIMessage(f"answer {i} " * 20)]
    exchanges = exchanges_of(history)
    prompt = assemble(exchanges, 800, COUNTER, system="sys")
    texts = [m.content for m in prompt.messages[1:]]
    assert texts[-1] == history[-1].content
    kept = [i for i, m in enumerate(history) if m.content in texts]
    assert kept == list(range(kept[0], len(history)))
    assert prompt.report.turns_omitted == kept[0]
    assert prompt.report.omitted_ranges == ((1, kept[0]),)
    assert prompt.report.tokens_saved == prompt.report.raw_tokens - prompt.tokens > 0


def test_pinned_user_turn_survives_a_long_tool_loop() -> None:
    history: list[BaseMessage] = [HumanMessage("fix the bug in parser.py")]
    for i in range(20):
        call = {"name": "run", "args": {"cmd": f"step {i}"}, "id": f"c{i}"}
        history += [
            AIMessage("", tool_calls=[call]),
            ToolMessage("output " * 50, tool_call_id=f"c{i}"),
        ]
    prompt = assemble(exchanges_of(history), 600, COUNTER)
    assert prompt.messages[0] is history[0]
    assert prompt.messages[-1] is history[-1]
    assert_pairs_intact(prompt.messages)


def test_pending_tool_calls_are_not_sent() -> None:
    call = AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "p1"}])
    prompt = assemble(exchanges_of([HumanMessage("hi"), call]), 500, COUNTER)
    assert call not in prompt.messages
    assert prompt.report.pending_tool_calls == ("p1",)


def test_summary_and_recalled_come_first_and_respect_their_caps() -> None:
    history = [HumanMessage("q1"), AIMessage("a1"), HumanMessage("q2")]
    prompt = assemble(
        exchanges_of(history),
        Budget(context_window=2000, reserve_output=500),
        COUNTER,
        system="sys",
        summary="Alice likes tea.",
        recalled=["snippet one", "x " * 2000, "snippet three"],
    )
    contents = [str(m.content) for m in prompt.messages]
    assert contents[0] == "sys"
    assert contents[1] == SUMMARY_HEADER + "Alice likes tea."
    assert contents[2].startswith(RECALL_HEADER)
    assert "snippet one" in contents[2] and "snippet three" in contents[2]
    assert "x x x" not in contents[2]  # too big for the recall share: skipped, not cut
    assert prompt.report.recalled_included == 2
    assert prompt.report.summary_included
    assert prompt.report.parts.summary > 0 and prompt.report.parts.recalled > 0


def test_bad_shares_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        assemble([], 100, COUNTER, summary_share=1.5)
    with pytest.raises(ConfigError):
        Budget(context_window=100, reserve_output=100)
    with pytest.raises(ConfigError):
        assemble([], "100", COUNTER)  # type: ignore[arg-type]


def test_empty_history_gives_just_the_system_prompt() -> None:
    prompt = assemble([], 100, COUNTER, system="hello")
    assert [m.content for m in prompt.messages] == ["hello"]
    assert prompt.to_openai() == [{"role": "system", "content": "hello"}]
