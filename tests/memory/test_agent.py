"""AgentLoop: hand-written OpenAI and Anthropic loops, with SDK-shaped fakes (no SDK)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from pydantic import BaseModel

from memory import ConfigError, ConversationMemory, InputError
from memory.agent import AgentLoop, ToolCall, to_anthropic

LOG = "\n".join(f"12:00:{i % 60:02d} INFO step {i} ok" for i in range(300))
LOG += "\n12:07:00 ERROR disk quota exceeded on /var/data"


class Function(BaseModel):
    name: str
    arguments: str


class OpenAIToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: Function


class ChatCompletionMessage(BaseModel):
    """The shape of openai's ``choices[0].message`` (None fields included)."""

    role: Literal["assistant"] = "assistant"
    content: str | None = None
    refusal: str | None = None
    audio: Any = None
    function_call: Any = None
    tool_calls: list[OpenAIToolCall] | None = None


class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


@pytest.fixture
def memory() -> Iterator[ConversationMemory]:
    with ConversationMemory.open(
        ":memory:",
        session="loop",
        budget=3000,
        embedder=DeterministicFakeEmbedding(size=64),
        compress_threshold=50,
    ) as mem:
        yield mem


def _openai_call(call_id: str, name: str, args: dict[str, Any]) -> ChatCompletionMessage:
    function = Function(name=name, arguments=json.dumps(args))
    return ChatCompletionMessage(tool_calls=[OpenAIToolCall(id=call_id, function=function)])


def test_openai_loop_runs_tools_and_recall(memory: ConversationMemory) -> None:
    assert not memory.policy.recall_tool
    loop = AgentLoop(memory, system="You are terse.", tools={"tail_log": lambda: LOG})
    assert memory.policy.recall_tool  # the loop answers recall calls; notes may name it
    loop.add_user("why did the job stop?")
    first = loop.openai_messages()
    assert first[0] == {"role": "system", "content": "You are terse."}
    assert first[-1] == {"role": "user", "content": "why did the job stop?"}
    calls = loop.add_openai_reply(_openai_call("c1", "tail_log", {}))
    assert calls == [ToolCall("c1", "tail_log", {})]
    assert loop.run_tool_calls(calls) == [LOG]
    second = loop.openai_messages()
    assert second[-1]["role"] == "tool" and "[ref " in str(second[-1]["content"])
    assert loop.last_prompt is not None and loop.last_prompt.report.compressed_refs
    ref = loop.last_prompt.report.compressed_refs[0]
    calls = loop.add_openai_reply(
        {"role": "assistant", "content": None, "tool_calls": [_dict_call("c2", ref)]}
    )
    (recalled,) = loop.run_tool_calls(calls)
    assert "disk quota exceeded" in recalled
    assert loop.add_openai_reply(ChatCompletionMessage(content="Disk quota.")) == []
    history = memory.history()
    assert [type(m) for m in history] == [
        HumanMessage, AIMessage, ToolMessage, AIMessage, ToolMessage, AIMessage,
    ]  # fmt: skip
    assert history[2].content == LOG
    assert loop.openai_tools()[0]["function"]["name"] == "recall"


def _dict_call(call_id: str, ref: str) -> dict[str, Any]:
    arguments = json.dumps({"ref": ref, "query": "disk quota"})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "recall", "arguments": arguments},
    }


def test_anthropic_loop(memory: ConversationMemory) -> None:
    loop = AgentLoop(memory, system="You are terse.", tools={"ls": lambda path: ["a", "b"]})
    loop.add_user("what is in /tmp?")
    first = loop.anthropic_request()
    assert first["system"].startswith("You are terse.")
    breakpoint_ = {"type": "ephemeral"}  # the stable part ends here: cached next call
    assert first["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "what is in /tmp?", "cache_control": breakpoint_}],
        }
    ]
    calls = loop.add_anthropic_reply(
        [TextBlock(text="Let me look."), ToolUseBlock(id="t1", name="ls", input={"path": "/tmp"})]
    )
    assert calls == [ToolCall("t1", "ls", {"path": "/tmp"})]
    assert loop.run_tool_calls(calls) == ['["a", "b"]']
    request = loop.anthropic_request()
    assert request["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "t1", "name": "ls", "input": {"path": "/tmp"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": '["a", "b"]'}],
                    "cache_control": breakpoint_,
                }
            ],
        },
    ]  # fmt: skip
    assert loop.anthropic_tools()[0]["name"] == "recall"


def test_anthropic_reply_as_a_response_object(memory: ConversationMemory) -> None:
    class Response(BaseModel):
        content: list[TextBlock]

    loop = AgentLoop(memory)
    loop.add_user("hi")
    assert loop.add_anthropic_reply(Response(content=[TextBlock(text="hello")])) == []
    assert memory.history()[-1].text == "hello"
    assert loop.anthropic_request()["messages"][-1]["role"] == "assistant"


def test_to_anthropic_merges_and_drops_a_leading_assistant_turn() -> None:
    call = AIMessage("", tool_calls=[{"name": "ls", "args": {}, "id": "t0"}])
    system, turns = to_anthropic(
        [
            SystemMessage("rules"),
            SystemMessage("summary"),
            call,
            ToolMessage("x", tool_call_id="t0"),
            HumanMessage("next"),
            AIMessage("done"),
        ]
    )
    assert system == "rules\n\nsummary"
    assert turns == [
        {"role": "user", "content": [{"type": "text", "text": "next"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "done"}]},
    ]


def test_unknown_tool_gets_a_message(memory: ConversationMemory) -> None:
    loop = AgentLoop(memory)
    loop.add_user("go")
    calls = loop.add_openai_reply(_openai_call("c1", "rm", {"path": "/"}))
    (result,) = loop.run_tool_calls(calls)
    assert "unknown tool 'rm'" in result and "recall" in result


def test_a_tool_that_raises_is_answered_with_its_error_and_the_run_goes_on(
    memory: ConversationMemory, caplog: pytest.LogCaptureFixture
) -> None:
    def ls(path: str) -> str:
        return f"{path}: a.txt b.txt"

    def broken() -> str:
        raise RuntimeError("boom")

    loop = AgentLoop(memory, tools={"ls": ls, "broken": broken})
    loop.add_user("go")
    reply = _openai_call("c1", "ls", {"pth": "/tmp"})  # a wrong argument name
    reply.tool_calls = [*reply.tool_calls, *_openai_call("c2", "broken", {}).tool_calls]
    reply.tool_calls.append(_openai_call("c3", "ls", {"path": "/tmp"}).tool_calls[0])
    calls = loop.add_openai_reply(reply)
    with caplog.at_level("WARNING", logger="memory"):
        wrong, failed, fine = loop.run_tool_calls(calls)
    assert isinstance(wrong, str) and "tool 'ls' failed" in wrong and "'pth'" in wrong
    assert "TypeError" in wrong and "call it again" in wrong
    assert isinstance(failed, str) and "RuntimeError: boom" in failed
    assert fine == "/tmp: a.txt b.txt"  # the batch's other calls ran, and all are stored
    stored = memory.history()[-3:]
    assert [m.tool_call_id for m in stored] == ["c1", "c2", "c3"]  # type: ignore[attr-defined]
    assert [m.status for m in stored] == ["error", "error", "success"]  # type: ignore[attr-defined]
    assert memory.assemble().report.pending_tool_calls == ()
    assert sum("raised on call" in r.getMessage() for r in caplog.records) == 2


def test_an_interrupt_in_a_tool_stores_nothing(memory: ConversationMemory) -> None:
    def stopped() -> str:
        raise KeyboardInterrupt

    loop = AgentLoop(memory, tools={"stopped": stopped})
    loop.add_user("go")
    calls = loop.add_openai_reply(_openai_call("c1", "stopped", {}))
    with pytest.raises(KeyboardInterrupt):
        loop.run_tool_calls(calls)
    loop.add_tool_result("c1", "error: interrupted", name="stopped")
    assert memory.history()[-1].content == "error: interrupted"


def _ls_loop(memory: ConversationMemory, ran: list[dict[str, Any]]) -> AgentLoop:
    """A loop with one tool, ``ls``, that records its arguments in ``ran``; a user turn."""

    def ls(**arguments: Any) -> str:
        ran.append(arguments)
        return "a.txt"

    loop = AgentLoop(memory, tools={"ls": ls})
    loop.add_user("go")
    return loop


def test_empty_or_non_object_arguments_do_not_stop_the_run(memory: ConversationMemory) -> None:
    ran: list[dict[str, Any]] = []
    loop = _ls_loop(memory, ran)
    calls = [
        {"id": f"c{n}", "type": "function", "function": {"name": "ls", "arguments": text}}
        for n, text in enumerate(["", "[1, 2]", "5"])
    ]
    found = loop.add_openai_reply({"role": "assistant", "content": None, "tool_calls": calls})
    assert [c.error is None for c in found] == [True, False, False]  # "" is no arguments
    results = loop.run_tool_calls(found)
    assert ran == [{}] and all("not an object" in str(r) for r in results[1:])


def test_a_malformed_tool_call_is_answered_with_its_error_and_the_run_goes_on(
    memory: ConversationMemory,
) -> None:
    ran: list[dict[str, Any]] = []
    loop = _ls_loop(memory, ran)
    bad = {"id": "c1", "type": "function", "function": {"name": "ls", "arguments": "{oops"}}
    good = {"id": "c2", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
    calls = loop.add_openai_reply({"role": "assistant", "content": None, "tool_calls": [bad]})
    # Returned, so the README's loop (`if not calls: break`) goes on to a retry.
    assert [c.id for c in calls] == ["c1"] and calls[0].error is not None
    results = loop.run_tool_calls(calls)
    assert ran == []  # nothing was run
    assert "'{oops' are not valid JSON" in str(results[0]) and "call the tool again" in str(
        results[0]
    )
    sent = loop.openai_messages()
    assert sent[-2]["tool_calls"][0]["id"] == "c1"  # the call and its answer, paired
    assert sent[-1]["tool_call_id"] == "c1" and sent[-1]["content"] == results[0]
    # Beside a well-formed call, that one runs.
    calls = loop.add_openai_reply({"role": "assistant", "content": "", "tool_calls": [bad, good]})
    assert [c.error is None for c in calls] == [False, True]
    loop.run_tool_calls(calls)
    assert ran == [{}]


def test_bad_input_is_refused(memory: ConversationMemory) -> None:
    loop = AgentLoop(memory)
    loop.add_user("go")
    with pytest.raises(InputError, match="never issued"):
        loop.add_tool_result("nope", "result")
    with pytest.raises(InputError):
        loop.add_anthropic_reply(42)
    with pytest.raises(InputError, match="assistant's role"):  # not a reply: not stored
        loop.add_openai_reply({"role": "user", "content": "I am the user, not a reply"})
    assert [m.type for m in memory.history()] == ["human"]
    with pytest.raises(ConfigError, match="'recall' is the loop's own"):
        AgentLoop(memory, tools={"recall": lambda query: "mine"})


def test_an_unanswered_call_is_left_out_until_answered(memory: ConversationMemory) -> None:
    loop = AgentLoop(memory)
    loop.add_user("first")
    loop.add_openai_reply(_openai_call("c1", "ls", {}))
    loop.add_user("never mind, second")
    messages = loop.openai_messages()
    assert messages[-1] == {"role": "user", "content": "never mind, second"}
    assert not any(m.get("tool_calls") for m in messages)
    assert loop.last_prompt is not None
    assert loop.last_prompt.report.pending_tool_calls == ("c1",)


def test_anthropic_output_keeps_thinking_images_and_result_order(
    memory: ConversationMemory,
) -> None:
    thinking = {"type": "thinking", "thinking": "check the dir", "signature": "c2lnbmF0dXJl"}
    redacted = {"type": "redacted_thinking", "data": "ZW5jcnlwdGVk"}
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    loop = AgentLoop(memory, system="sys")
    loop.add_user("show me the chart")
    loop.add_anthropic_reply(
        [thinking, redacted, {"type": "text", "text": "Opening it."},
         {"type": "tool_use", "id": "t9", "name": "screenshot", "input": {}}]
    )  # fmt: skip
    memory.add(
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t9",
                    "content": [{"type": "text", "text": "the chart:"}, image],
                },
                {"type": "text", "text": "what does it show?"},
            ],
        }
    )
    # history() keeps the tool result before the user text that followed it.
    assert [m.type for m in memory.history()] == ["human", "ai", "tool", "human"]
    turns = loop.anthropic_request()["messages"]
    assistant = turns[1]["content"]
    assert assistant[:2] == [thinking, redacted]  # first and unchanged
    assert assistant[-1]["type"] == "tool_use"
    result, text = turns[2]["content"]
    assert result["type"] == "tool_result" and text["type"] == "text"
    assert result["content"][1] == image  # the image inside the result is kept


def test_a_tool_that_returns_an_image_sends_it_as_a_block(memory: ConversationMemory) -> None:
    image = {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
    }
    shot = [{"type": "text", "text": "the page:"}, image]
    loop = AgentLoop(memory, tools={"screenshot": lambda url: shot})
    loop.add_user("show me")
    calls = loop.add_anthropic_reply(
        [{"type": "tool_use", "id": "s1", "name": "screenshot", "input": {"url": "u"}}]
    )
    assert loop.run_tool_calls(calls) == [shot]  # blocks, not their JSON text
    result = loop.anthropic_request()["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["content"][1] == image


def test_a_prompt_for_claude_carries_its_cache_breakpoint(memory: ConversationMemory) -> None:
    for i in range(12):
        memory.add({"role": "user", "content": f"Order {i}: ship {i * 10} boxes to Lyon."})
        memory.add({"role": "assistant", "content": f"Noted order {i}."})
    memory.add({"role": "user", "content": "How many boxes was order 3?"})
    prompt = memory.assemble(system="Be brief.")
    assert 1 < prompt.stable_count <= len(prompt.messages)
    request = prompt.to_anthropic()
    assert request["system"] == "Be brief."
    marked = [b for turn in request["messages"] for b in turn["content"] if "cache_control" in b]
    assert marked == [marked[0]] and marked[0]["cache_control"] == {"type": "ephemeral"}
    # For ChatAnthropic: the same messages, the last stable one's last block marked.
    messages = prompt.with_cache_breakpoint()
    assert [m.text for m in messages] == [m.text for m in prompt.messages]
    last_stable = messages[prompt.stable_count - 1].content
    assert isinstance(last_stable, list) and last_stable[-1]["cache_control"] == {
        "type": "ephemeral"
    }
    assert all(isinstance(m.content, str) for m in messages[prompt.stable_count :])


def test_records_with_a_type_key_are_data_not_content_blocks(memory: ConversationMemory) -> None:
    def events() -> list[dict[str, Any]]:
        return [{"type": "PushEvent", "repo": "a/b"}, {"type": "IssuesEvent", "repo": "a/c"}]

    loop = AgentLoop(memory, tools={"events": events})
    loop.add_user("what happened?")
    (result,) = loop.run_tool_calls(loop.add_openai_reply(_openai_call("c1", "events", {})))
    assert isinstance(result, str) and json.loads(result)[0]["type"] == "PushEvent"
    assert memory.assemble().report.pending_tool_calls == ()


def test_a_replayed_loop_keeps_the_times_it_is_given(memory: ConversationMemory) -> None:
    # A raw-SDK loop replayed from a log: its messages keep their times, so prompts
    # date them and date questions find them (they were stored as "now" before).
    loop = AgentLoop(memory, system="sys")
    loop.add_user("hi", timestamp="2023-06-03T10:00:00Z")
    loop.add_openai_reply({"role": "assistant", "content": "hello", "timestamp": 1685786460})
    loop.add_user("and then?", timestamp="2023-06-04T09:00:00Z")
    loop.add_anthropic_reply([{"type": "text", "text": "later"}], timestamp="2023-06-04T09:01Z")
    sent = [m.additional_kwargs.get("timestamp") for m in memory.history()]
    assert sent == [
        "2023-06-03T10:00:00Z", "2023-06-03T10:01:00Z",
        "2023-06-04T09:00:00Z", "2023-06-04T09:01:00Z",
    ]  # fmt: skip
    with pytest.raises(InputError):
        loop.add_user("when?", timestamp="not a time")
