"""ContextAtticMiddleware inside langchain's create_agent, with scripted fake models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.utils import count_tokens_approximately
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from memory import ConfigError, InputError
from memory.adapters.langchain import ContextAtticMiddleware

LOG = "\n".join(f"12:00:{i % 60:02d} INFO step {i} ok" for i in range(300))
LOG += "\n12:07:00 ERROR disk quota exceeded on /var/data"


@tool
def tail_log() -> str:
    """Return the job's log."""
    return LOG


def _call(name: str, args: dict[str, Any], call_id: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": name, "args": args, "id": call_id}])


def _middleware(embedder: DeterministicFakeEmbedding, **options: Any) -> ContextAtticMiddleware:
    options.setdefault("compress_threshold", 50)
    return ContextAtticMiddleware(embedder=embedder, **options)


def _texts(messages: list[BaseMessage]) -> str:
    return "\n".join(str(m.content) for m in messages)


def test_tool_output_is_archived_and_recalled(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted(
        _call("tail_log", {}, "c1"),
        _call("recall", {"query": "disk quota"}, "c2"),
        "The disk quota on /var/data was exceeded.",
    )
    with _middleware(embedder, budget=2000) as middleware:
        agent = create_agent(model, tools=[tail_log], middleware=[middleware])
        result = agent.invoke({"messages": [HumanMessage("why did the job stop?")]})

        state = result["messages"]
        assert [type(m).__name__ for m in state] == [
            "HumanMessage", "AIMessage", "ToolMessage", "AIMessage", "ToolMessage", "AIMessage",
        ]  # fmt: skip
        assert state[2].content == LOG  # the state keeps the full output
        assert "disk quota exceeded" in str(state[4].content)  # recall ran, same session
        second_prompt = _texts(model.prompts[1])
        assert "[ref " in second_prompt and LOG not in second_prompt
        memory = middleware.memory(f"run:{state[0].id}")
        assert [m.content for m in memory.history()] == [m.content for m in state]
        assert middleware.last_report is not None
        assert middleware.last_report.compressed_refs


def test_recall_tool_is_registered(embedder: DeterministicFakeEmbedding) -> None:
    middleware = _middleware(embedder)
    assert [t.name for t in middleware.tools] == ["recall"]
    # so its prompts may tell the model that the tool reads what they leave out
    assert middleware.memory("t").policy.recall_tool


def test_prompt_fits_the_budget_while_state_keeps_everything(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    turns = 12
    model = scripted(*[f"answer {i} " + "words " * 40 for i in range(turns)])
    saver = InMemorySaver()
    with _middleware(embedder, budget=300) as middleware:
        agent = create_agent(model, middleware=[middleware], checkpointer=saver)
        config: Any = {"configurable": {"thread_id": "t-1"}}
        for i in range(turns):
            result = agent.invoke({"messages": [HumanMessage(f"question {i}")]}, config)
        assert len(result["messages"]) == 2 * turns
        last = model.prompts[-1]
        assert last[-1].content == f"question {turns - 1}"
        assert len(last) < 2 * turns - 1
        assert middleware.last_report is not None
        assert middleware.last_report.tokens <= 300
        history = middleware.memory("t-1").history()
        assert len(history) == 2 * turns  # each message stored exactly once
        assert middleware.memory("t-1").session == "t-1"


def test_resent_history_without_ids_is_not_stored_twice(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("first answer", "second answer")
    with _middleware(embedder, session="chat") as middleware:
        agent = create_agent(model, middleware=[middleware])
        agent.invoke({"messages": [{"role": "user", "content": "hi"}]})
        agent.invoke(
            {
                "messages": [
                    {"role": "user", "content": "hi"},
                    {"role": "assistant", "content": "first answer"},
                    {"role": "user", "content": "and then?"},
                ]
            }
        )
        contents = [m.content for m in middleware.memory("chat").history()]
    assert contents == ["hi", "first answer", "and then?", "second answer"]


def test_below_the_trigger_the_full_list_is_sent(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted(*["ok " * 30] * 4)
    with _middleware(embedder, budget=200, trigger=("messages", 5)) as middleware:
        agent = create_agent(model, middleware=[middleware])
        messages: list[Any] = []
        for i in range(4):
            messages = agent.invoke({"messages": [*messages, HumanMessage(f"q{i} " * 20)]})[
                "messages"
            ]
    assert len(model.prompts[1]) == 3  # 3 messages < 5: untouched
    assert len(model.prompts[3]) < 7  # 7 messages >= 5: assembled under 200 tokens


def test_keep_messages_and_a_langchain_token_counter(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted(*[f"a{i}" for i in range(6)])
    with _middleware(
        embedder, keep=("messages", 4), token_counter=count_tokens_approximately
    ) as middleware:
        agent = create_agent(model, middleware=[middleware])
        messages: list[Any] = []
        for i in range(6):
            messages = agent.invoke({"messages": [*messages, HumanMessage(f"q{i}")]})["messages"]
        memory = middleware.memory(f"run:{messages[0].id}")  # no thread id: the run's own
        assert memory.counter.name.startswith("messages-callable")
    assert len(model.prompts[-1]) <= 5


def test_system_prompt_and_state_system_messages_are_merged(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("fine")
    with _middleware(embedder) as middleware:
        agent = create_agent(model, middleware=[middleware], system_prompt="Be brief.")
        state = agent.invoke(
            {"messages": [SystemMessage("Answer in French."), HumanMessage("hello")]}
        )["messages"]
        history = middleware.memory(f"run:{state[1].id}").history()
    prompt = model.prompts[0]
    assert [type(m) for m in prompt] == [SystemMessage, HumanMessage]  # one system message
    assert str(prompt[0].content).startswith("Be brief.\n\nAnswer in French.")
    assert [m.content for m in history] == ["hello", "fine"]  # instructions are not history


def test_cache_control_blocks_of_the_system_message_are_kept(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("fine")
    block = {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}
    with _middleware(embedder) as middleware:
        agent = create_agent(model, middleware=[middleware], system_prompt=SystemMessage([block]))
        agent.invoke({"messages": [HumanMessage("hello")]})
    system = model.prompts[0][0]
    assert isinstance(system, SystemMessage) and isinstance(system.content, list)
    assert system.content[0] == block


def test_a_tool_result_first_is_refused(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("never")
    with _middleware(embedder) as middleware:
        agent = create_agent(model, middleware=[middleware])
        with pytest.raises(InputError, match="never issued"):
            agent.invoke({"messages": [ToolMessage("orphan", tool_call_id="x")]})


def test_an_unanswered_call_is_left_out_of_the_prompt(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("sure")
    dangling = _call("tail_log", {}, "lost")
    with _middleware(embedder) as middleware:
        agent = create_agent(model, middleware=[middleware])
        agent.invoke({"messages": [HumanMessage("a"), dangling, HumanMessage("b")]})
        report = middleware.last_report
    sent = model.prompts[0]
    assert dangling.tool_calls[0]["id"] not in str([getattr(m, "tool_calls", []) for m in sent])
    assert sent[-1].content == "b"
    assert report is not None and report.pending_tool_calls == ("lost",)


def test_async_agent(scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding) -> None:
    model = scripted(_call("tail_log", {}, "c1"), "done")
    with _middleware(embedder) as middleware:
        agent = create_agent(model, tools=[tail_log], middleware=[middleware])
        result = asyncio.run(agent.ainvoke({"messages": [HumanMessage("go")]}))
        assert result["messages"][-1].content == "done"
        first = result["messages"][0]
        assert len(middleware.memory(f"run:{first.id}").history()) == 4


def test_model_writes_the_running_summary(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted(*[f"answer {i} " + "words " * 40 for i in range(12)])
    summarizer = scripted(*["The user asked twelve questions."] * 50)
    with _middleware(embedder, model=summarizer, budget=400) as middleware:
        agent = create_agent(model, middleware=[middleware])
        messages: list[Any] = []
        for i in range(12):
            messages = agent.invoke({"messages": [*messages, HumanMessage(f"question {i}")]})[
                "messages"
            ]
        deadline = time.monotonic() + 20
        while not summarizer.prompts and time.monotonic() < deadline:
            time.sleep(0.05)  # the summary is written in the background
    assert summarizer.prompts, "the model given to the middleware wrote no summary"


@pytest.mark.parametrize(
    "options",
    [
        {"trigger": ("turns", 3)},
        {"trigger": ("tokens", 0)},
        {"keep": ("messages", -1)},
        {"budgt": 300},
        {"budget": "300"},
        {"path": "/no/such/folder/a.db"},
    ],
)
def test_bad_options_are_refused(
    options: dict[str, Any], embedder: DeterministicFakeEmbedding
) -> None:
    with pytest.raises(ConfigError):
        _middleware(embedder, **options)


def test_fraction_needs_a_model_profile(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted("x")
    with _middleware(embedder, keep=("fraction", 0.5)) as middleware:
        agent = create_agent(model, middleware=[middleware])
        with pytest.raises(ConfigError, match="max_input_tokens"):
            agent.invoke({"messages": [HumanMessage("hello")]})
    profiled = scripted("x")
    profiled.profile = {"max_input_tokens": 1000}
    with _middleware(embedder, keep=("fraction", 0.5)) as middleware:
        agent = create_agent(profiled, middleware=[middleware])
        agent.invoke({"messages": [HumanMessage("hello")]})
        assert middleware.last_report is not None and middleware.last_report.budget == 500


def test_a_recall_result_is_not_archived_again(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    big_log = LOG * 4
    model = scripted(
        _call("tail_big_log", {}, "c1"), _call("recall", {"query": "disk quota"}, "c2"), "ok"
    )

    @tool
    def tail_big_log() -> str:
        """Return a long log."""
        return big_log

    with ContextAtticMiddleware(embedder=embedder) as middleware:  # default threshold
        agent = create_agent(model, tools=[tail_big_log], middleware=[middleware])
        agent.invoke({"messages": [HumanMessage("why?")]})
    recalled = model.prompts[2][-1]
    assert isinstance(recalled, ToolMessage)
    assert str(recalled.content).startswith("Quoted data from the archive")
    assert "disk quota exceeded" in str(recalled.content)


def test_an_anthropic_model_gets_a_cache_breakpoint_on_the_stable_part(
    embedder: DeterministicFakeEmbedding,
) -> None:
    from conftest_models import AnthropicLike, ScriptedChatModel

    for model_class, marked in ((AnthropicLike, True), (ScriptedChatModel, False)):
        model = model_class(messages=iter(["first", "second"]))
        with _middleware(embedder, budget=4000) as middleware:
            agent = create_agent(
                model, middleware=[middleware], system_prompt="sys", checkpointer=InMemorySaver()
            )
            config: Any = {"configurable": {"thread_id": "t"}}
            agent.invoke({"messages": [HumanMessage("hello there")]}, config)
            agent.invoke({"messages": [HumanMessage("and again")]}, config)
        prompt = model.prompts[-1]
        flagged = [
            m
            for m in prompt
            if isinstance(m.content, list)
            and any(isinstance(b, dict) and "cache_control" in b for b in m.content)
        ]
        if marked:  # the whole prompt is stable (no recall): the breakpoint is on the last turn
            assert flagged == [prompt[-1]]
            assert prompt[-1].content[-1]["cache_control"] == {"type": "ephemeral"}
        else:
            assert flagged == []


def test_runs_without_a_thread_id_share_nothing(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    """Two users, no thread id, one middleware on one file: neither sees the other."""
    model = scripted("Hello Alice.", "Hello there.")
    with _middleware(embedder, budget=2000) as middleware:
        agent = create_agent(model, middleware=[middleware])
        agent.invoke({"messages": [HumanMessage("I am Alice, my password hint is harbour42")]})
        agent.invoke({"messages": [HumanMessage("Who am I?")]})
    second = _texts(model.prompts[1])
    assert "Alice" not in second and "harbour42" not in second
    assert "Who am I?" in second


def test_idle_sessions_are_released(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    model = scripted(*[f"reply {n}" for n in range(6)])
    with _middleware(embedder, idle_seconds=0.05) as middleware:
        agent = create_agent(model, middleware=[middleware])
        for n in range(3):
            config: Any = {"configurable": {"thread_id": f"t-{n}"}}
            agent.invoke({"messages": [HumanMessage(f"hello {n}")]}, config)
            time.sleep(0.1)
        assert middleware.sessions_held == 1  # only the latest run's session is held
        config = {"configurable": {"thread_id": "t-0"}}
        agent.invoke({"messages": [HumanMessage("hello 0"), AIMessage("reply 0")]}, config)
        history = [m.content for m in middleware.memory("t-0").history()]
        assert history == ["hello 0", "reply 0", "reply 3"]  # reopened, nothing stored twice


def test_a_regenerated_reply_is_not_sent_again(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    """The app removes a wrong reply (RemoveMessage) and asks again: the next prompt
    holds the new exchange only, never the removed reply."""
    from langchain_core.messages import RemoveMessage

    model = scripted("The capital is Lyon.", "The capital is Paris.", "You asked twice.")
    with _middleware(embedder, budget=2000) as middleware:
        agent = create_agent(model, middleware=[middleware], checkpointer=InMemorySaver())
        config: Any = {"configurable": {"thread_id": "regen"}}
        state = agent.invoke({"messages": [HumanMessage("Capital of France?")]}, config)
        wrong = state["messages"][-1]
        agent.update_state(config, {"messages": [RemoveMessage(id=wrong.id)]})
        agent.invoke({"messages": [HumanMessage("Capital of France, again?")]}, config)
        agent.invoke({"messages": [HumanMessage("What did I ask?")]}, config)
        history = middleware.memory("regen").history()
        audit = middleware.memory("regen").history(include_retracted=True)
    assert "Lyon" not in _texts(model.prompts[1]) and "Lyon" not in _texts(model.prompts[2])
    assert "Paris" in _texts(model.prompts[2])
    assert "The capital is Lyon." not in [m.content for m in history]
    assert "The capital is Lyon." in [m.content for m in audit]  # kept for audit


def test_without_a_checkpointer_the_memory_is_the_history(
    scripted: Callable[..., Any], embedder: DeterministicFakeEmbedding
) -> None:
    """A thread id and only the new message per invoke: nothing is retracted."""
    model = scripted("Noted: 42.", "It was 42.")
    with _middleware(embedder, budget=2000) as middleware:
        agent = create_agent(model, middleware=[middleware])
        config: Any = {"configurable": {"thread_id": "no-saver"}}
        agent.invoke({"messages": [HumanMessage("My number is 42.")]}, config)
        agent.invoke({"messages": [HumanMessage("What was my number?")]}, config)
    assert "My number is 42." in _texts(model.prompts[1])


def test_costs_are_priced_as_the_agents_model_without_model_name(
    embedder: DeterministicFakeEmbedding,
) -> None:
    from conftest_models import ScriptedChatModel

    class Named(ScriptedChatModel):
        model_name: str = "gpt-4o-mini"

    model = Named(messages=iter(["fine", "sure"]))
    with _middleware(embedder) as middleware:
        agent = create_agent(model, middleware=[middleware])
        agent.invoke({"messages": [HumanMessage("hello")]})
        report = middleware.last_report
        assert report is not None and report.session_cost_usd is not None  # was None
        assert report.money_saved_usd is not None
