"""Normalization of OpenAI, Anthropic and LangChain messages; exchanges; pairing checks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    messages_to_dict,
)

from memory import InputError, normalize
from memory._messages import ExchangeBuilder, Turn
from memory._pairing import check_pairing

OPENAI = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "list /tmp"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": '{"p": 1}'}},
            {"id": "c2", "type": "function", "function": {"name": "du", "arguments": "{}"}},
        ],
    },
    {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
    {"role": "tool", "tool_call_id": "c2", "content": "4K"},
    {"role": "assistant", "content": "a.txt, 4K"},
]
ANTHROPIC = [
    {"role": "user", "content": "list /tmp"},
    {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "checking"},
            {"type": "tool_use", "id": "c1", "name": "ls", "input": {"p": 1}},
            {"type": "tool_use", "id": "c2", "name": "du", "input": {}},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "tool_result", "tool_use_id": "c1", "content": "a.txt"},
            {"type": "tool_result", "tool_use_id": "c2", "content": "4K"},
        ],
    },
    {"role": "assistant", "content": "a.txt, 4K"},
]


def test_openai_dicts_become_langchain_messages() -> None:
    messages = normalize(OPENAI)
    assert [type(m) for m in messages] == [
        SystemMessage,
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
    ]
    call = messages[2]
    assert isinstance(call, AIMessage)
    assert [c["id"] for c in call.tool_calls] == ["c1", "c2"]
    assert call.tool_calls[0]["args"] == {"p": 1}


def test_anthropic_blocks_become_tool_calls_and_tool_messages() -> None:
    messages = normalize(ANTHROPIC)
    assert [type(m) for m in messages] == [
        HumanMessage,
        AIMessage,
        ToolMessage,
        ToolMessage,
        AIMessage,
    ]
    call = messages[1]
    assert isinstance(call, AIMessage)
    assert [c["id"] for c in call.tool_calls] == ["c1", "c2"]
    assert [m.tool_call_id for m in messages[2:4] if isinstance(m, ToolMessage)] == ["c1", "c2"]


def test_anthropic_blocks_inside_langchain_messages_are_converted_too() -> None:
    raw = AIMessage(content=[{"type": "tool_use", "id": "t1", "name": "ls", "input": {}}])
    (message,) = normalize(raw)
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["id"] == "t1"


def test_one_message_or_many() -> None:
    assert normalize({"role": "user", "content": "hi"}) == [HumanMessage("hi")]
    assert normalize(HumanMessage("hi")) == [HumanMessage("hi")]
    assert normalize([]) == []


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"role": "wizard", "content": "x"}, "wizard"),
        (
            {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]},
            "cannot read|malformed|no id",
        ),
        (
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{x"}}
                ],
            },
            "arguments are not valid JSON",
        ),
        ({"role": "user", "content": [{"type": "hologram", "data": 1}]}, "unknown type 'hologram'"),
        ({"role": "user", "content": 42}, "content|cannot read"),
        ("just a string", "bare string|expected"),
        (42, "expected a LangChain message"),
    ],
)
def test_bad_messages_raise_input_error_naming_the_index(bad: Any, match: str) -> None:
    with pytest.raises(InputError, match=match) as info:
        normalize([{"role": "user", "content": "fine"}, bad] if bad != "just a string" else bad)
    if bad != "just a string":
        assert info.value.index == 1
        assert str(info.value).startswith("message 1: ")


def test_pairing_rejects_results_for_calls_never_issued_or_already_answered() -> None:
    call = AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "c1"}])
    result = ToolMessage("out", tool_call_id="c1")
    check_pairing([call, result], open_calls=(), issued_calls=())
    with pytest.raises(InputError, match="never issued") as info:
        check_pairing([HumanMessage("x"), result], open_calls=(), issued_calls=())
    assert info.value.index == 1
    with pytest.raises(InputError, match="already answered"):
        check_pairing([result], open_calls=(), issued_calls=("c1",))
    check_pairing([result], open_calls=("c1",), issued_calls=("c1",))
    with pytest.raises(InputError, match="still waiting"):
        check_pairing([call], open_calls=("c1",), issued_calls=("c1",))
    # An id may be reused once its call was answered, as recorded agent runs do.
    check_pairing([call, result], open_calls=(), issued_calls=("c1",))


def test_exchanges_group_a_call_with_all_its_results() -> None:
    builder = ExchangeBuilder()
    messages = normalize(OPENAI)
    builder.extend(Turn(seq=i + 1, message=m, tokens=10) for i, m in enumerate(messages))
    shapes = [[t.seq for t in e.turns] for e in builder.exchanges]
    assert shapes == [[1], [2], [3, 4, 5], [6]]
    assert all(e.complete for e in builder.exchanges)
    assert builder.exchanges[2].tokens == 30
    assert builder.open_calls == frozenset()


def test_incomplete_exchange_tracks_open_calls() -> None:
    builder = ExchangeBuilder()
    messages = normalize(OPENAI[:4])
    builder.extend(Turn(seq=i + 1, message=m, tokens=1) for i, m in enumerate(messages))
    assert builder.open_calls == frozenset({"c2"})
    assert not builder.exchanges[-1].complete


@pytest.mark.parametrize(
    ("message", "kind", "calls", "result_for"),
    [
        (HumanMessage("hi", name="Ann"), "human", (), None),
        (
            AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "c1", "type": "tool_call"}]),
            "ai",
            ("c1",),
            None,
        ),
        (ToolMessage("out", tool_call_id="c1"), "tool", (), "c1"),
        (SystemMessage("Session 1"), "system", (), None),
    ],
)
def test_a_stored_turn_builds_its_message_only_when_asked(
    message: Any, kind: str, calls: tuple[str, ...], result_for: str | None
) -> None:
    payload = json.dumps(messages_to_dict([message])[0])
    stored = Turn.stored(7, payload, 12, 30, "ref1")
    eager = Turn(7, message, 12, 30, "ref1")
    for turn in (stored, eager):
        assert (turn.seq, turn.tokens, turn.raw_tokens, turn.ref) == (7, 12, 30, "ref1")
        assert (turn.kind, turn.calls, turn.result_for) == (kind, calls, result_for)
        assert turn.text_parts() == (message.content, message.name)
    assert stored._message is None  # grouping and search did not build it
    assert stored.message == message and stored.message is stored.message
    assert stored == eager and "kind=" in repr(stored)


def test_stored_turns_group_like_built_ones() -> None:
    messages = [
        HumanMessage("go"),
        AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "c9", "type": "tool_call"}]),
        ToolMessage("a b", tool_call_id="c9"),
        AIMessage("done"),
    ]
    built, stored = ExchangeBuilder(), ExchangeBuilder()
    built.extend(Turn(i, m, 1) for i, m in enumerate(messages))
    stored.extend(
        Turn.stored(i, json.dumps(messages_to_dict([m])[0]), 1) for i, m in enumerate(messages)
    )
    assert [len(e.turns) for e in stored.exchanges] == [1, 2, 1]
    assert stored.exchanges == built.exchanges
    assert stored.exchanges[0].is_user_turn and not stored.exchanges[2].is_user_turn


def test_an_error_about_a_huge_message_does_not_repeat_it() -> None:
    secret = "secret " * 100_000
    with pytest.raises(InputError) as raised:
        normalize({"content": secret})  # no role: the converter quotes the whole dict
    text = str(raised.value)
    assert text.startswith("message 0: cannot read this message")
    assert len(text) < 600 and "characters left out" in text


@pytest.mark.parametrize(
    ("message", "says"),
    [
        (
            {"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": "ls", "arguments": "{}"}}]},
            "no 'id' field",
        ),
        ({"role": "tool", "content": "x"}, "no 'tool_call_id' field"),
        ({"role": "user", "content": 5}, "content must be text or a list of blocks, not int"),
        # A new-user trial: "bot" was refused naming 'function' as a role to use (refused
        # next), and a user message of content None was stored as an empty turn.
        ({"role": "bot", "content": "x"}, "unknown role 'bot': use 'user', 'assistant'"),
        ({"role": "function", "name": "f", "content": "x"}, "unknown role 'function'"),
        ({"role": "user", "content": None}, "a user message has no content (None)"),
        ({"role": None, "content": "x"}, "role must be text ('user', 'assistant'"),
    ],
)  # fmt: skip
def test_a_message_missing_a_field_is_named_in_one_line(message: Any, says: str) -> None:
    with pytest.raises(InputError) as raised:
        normalize(message)
    assert says in str(raised.value) and "\n" not in str(raised.value)


def test_a_call_id_used_again_once_answered_is_renamed_in_the_prompt() -> None:
    """Models behind OpenAI-compatible servers number their calls "call_0"... in every
    reply: stored as given, sent with ids used once (Anthropic refuses repeated
    ``tool_use`` ids), each result still answering its own call."""
    from langchain_core.embeddings import DeterministicFakeEmbedding

    from memory import ConversationMemory

    def call(text: str) -> dict[str, object]:
        arguments = '{"q":"' + text + '"}'
        function = {"name": "search", "arguments": arguments}
        return {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_0", "type": "function", "function": function}
        ]}  # fmt: skip

    with ConversationMemory.open(
        ":memory:", session="s", budget=4000, embedder=DeterministicFakeEmbedding(size=16)
    ) as mem:
        for text in ("kites", "boats", "trains"):
            mem.add({"role": "user", "content": f"find {text}"})
            mem.add(call(text))
            mem.add({"role": "tool", "tool_call_id": "call_0", "content": f"{text} found"})
        assert [m.tool_call_id for m in mem.history() if isinstance(m, ToolMessage)] == [
            "call_0"
        ] * 3  # stored as given
        prompt = mem.assemble(system="Be brief.")
        sent = prompt.to_openai()
        ids = [c["id"] for m in sent for c in m.get("tool_calls", [])]  # type: ignore[attr-defined]
        assert ids == ["call_0", "call_0_2", "call_0_3"]
        results = [(m["tool_call_id"], m["content"]) for m in sent if m["role"] == "tool"]
        assert results == [("call_0", "kites found"), ("call_0_2", "boats found"),
                           ("call_0_3", "trains found")]  # fmt: skip
        assert '"q":"boats"' in str(sent)  # the model's own argument strings, still sent
        uses = [b["id"] for t in prompt.to_anthropic()["messages"] for b in t["content"]
                if b["type"] == "tool_use"]  # fmt: skip
        assert uses == ids
        # Characters Anthropic refuses in an id are sent as "_" (its pattern [A-Za-z0-9_-]).
        mem.add({"role": "user", "content": "find planes"})
        odd = call("planes")
        odd["tool_calls"][0]["id"] = "fn.search:7"  # type: ignore[index]
        mem.add(odd)
        mem.add({"role": "tool", "tool_call_id": "fn.search:7", "content": "planes found"})
        sent = mem.assemble(system="Be brief.").to_anthropic()["messages"]
        assert "fn_search_7" in str(sent) and "fn.search:7" not in str(sent)
        assert prompt.tokens <= 4000
