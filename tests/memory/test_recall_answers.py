"""The recall tool's own answers are not searched again: what they quote is searched already."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from memory import ConversationMemory

LOG = "\n".join(f"12:{i // 60:02d}:{i % 60:02d} INFO request {i} ok" for i in range(300))
LOG += "\n13:00:00 ERROR payments-gw timeout after 30 s"


@pytest.mark.parametrize("named", [True, False])
def test_a_recall_answer_is_never_recalled_nested_in_a_later_one(named: bool) -> None:
    """A new-user trial: the model's recall answer was indexed as a tool result, so a later
    recall quoted the ERROR line twice, the second time inside ``tool recall: Quoted...``."""
    with ConversationMemory.open(":memory:", session="r", budget=2000) as mem:
        mem.add({"role": "user", "content": "why do payments fail?"})
        call = {"name": "tail", "args": {}, "id": "c1", "type": "tool_call"}
        mem.add([AIMessage("", tool_calls=[call]), ToolMessage(LOG, tool_call_id="c1")])
        mem.wait_until_indexed()
        answer = mem.recall(query="payments-gw timeout")
        asked = {"name": "recall", "args": {"query": "payments-gw timeout"}, "id": "c2",
                 "type": "tool_call"}  # fmt: skip
        result = ToolMessage(answer, tool_call_id="c2", name="recall" if named else None)
        mem.add([AIMessage("", tool_calls=[asked]), result])
        mem.add({"role": "assistant", "content": "The payment gateway timed out."})
        for i in range(12):
            mem.add([{"role": "user", "content": f"Next task {i}: tidy the docs."},
                     {"role": "assistant", "content": "Done. " * 40}])  # fmt: skip
        mem.wait_until_indexed()
        again = mem.recall(query="payments-gw timeout")
        assert again.count("ERROR payments-gw timeout") == 1
        assert "tool recall" not in again and again.count("Quoted data") == 1
        prompt = mem.assemble(query="payments-gw timeout")
        sent = "\n".join(str(m.content) for m in prompt.messages)
        assert "tool recall" not in sent


@pytest.mark.parametrize("budget", [600, 800, 4000])
def test_the_recall_tools_answer_fits_the_prompt_it_is_sent_in(budget: int) -> None:
    """A new-user trial: at budgets 600-800 the tool's default 800-token answer made the
    round that asked for it too big to send, and every later ``assemble`` raised."""
    with ConversationMemory.open(":memory:", session="b", budget=budget) as mem:
        for i in range(40):
            mem.add([{"role": "user", "content": f"Note {i}: the payments-gw shard {i} is up."},
                     {"role": "assistant", "content": f"Noted, shard {i}."}])  # fmt: skip
        mem.wait_until_indexed()
        asked = {"name": "recall", "args": {"query": "payments-gw shard"}, "id": "c1",
                 "type": "tool_call"}  # fmt: skip
        answer = str(mem.recall_tool().invoke({"query": "payments-gw shard"}))
        assert mem.counter.count(answer) <= max(160, min(468, budget // 4))
        mem.add([AIMessage("", tool_calls=[asked]),
                 ToolMessage(answer, tool_call_id="c1", name="recall")])  # fmt: skip
        prompt = mem.assemble(system="You are an ops agent.")
        assert prompt.tokens <= budget
        assert answer in "\n".join(str(m.content) for m in prompt.messages)


@pytest.mark.parametrize("asked", ["4000", 4000.0, 4000])
def test_an_agent_loops_recall_is_capped_whatever_type_its_max_tokens(asked: object) -> None:
    """A new-user trial: ``max_tokens: "4000"`` (or 4000.0) from the model skipped the cap,
    a 3,930-token answer came back at a budget of 800, and every later prompt raised."""
    from memory.agent import AgentLoop

    with ConversationMemory.open(":memory:", session="a", budget=800) as mem:
        for i in range(60):
            mem.add([{"role": "user", "content": f"Note {i}: shard {i} of payments-gw is up."},
                     {"role": "assistant", "content": f"Noted, shard {i} is up."}])  # fmt: skip
        mem.wait_until_indexed()
        loop = AgentLoop(mem, system="You are an ops agent.")
        arguments = json.dumps({"query": "payments-gw shard up", "max_tokens": asked})
        calls = loop.add_openai_reply({"role": "assistant", "content": None, "tool_calls": [
            {"id": "r1", "type": "function",
             "function": {"name": "recall", "arguments": arguments}}]})  # fmt: skip
        (answer,) = loop.run_tool_calls(calls)
        assert mem.counter.count(str(answer)) <= 800 // 4
        assert loop.prompt().tokens <= 800


def test_every_answer_of_the_recall_tool_opens_as_recall_openings_says() -> None:
    """A nameless tool result opening so is taken for the recall tool's answer and not
    searched (a trial: "Nothing in the archive matches 'INC-9999 outage'." indexed made
    INC-9999 look common, and came back as a hit): every answer must open so."""
    from memory._recall.passages import RECALL_OPENINGS
    from memory.tool import handle_tool_call

    with ConversationMemory.open(":memory:", session="o", budget=2000) as mem:
        mem.add({"role": "user", "content": "why do payments fail?"})
        call = {"name": "tail", "args": {}, "id": "c1", "type": "tool_call"}
        mem.add([AIMessage("", tool_calls=[call]), ToolMessage(LOG, tool_call_id="c1")])
        for i in range(3):
            mem.add([{"role": "user", "content": f"Note {i}: payments run on shard {i}."},
                     {"role": "assistant", "content": "Noted, payments shard."}])  # fmt: skip
        mem.wait_until_indexed()
        ref = mem.archive.refs()[0].ref
        answers = [
            mem.recall(query="payments-gw timeout"),
            mem.recall(ref=ref, page=2),
            mem.recall(query="zzqx-0000"),
            mem.recall(ref=ref, query="zzqx-0000"),
            mem.recall(query="payments"),
            mem.recall(),
            mem.recall(ref="deadbeef"),
            handle_tool_call(mem._state.recall, {"query": 5, "max_tokens": "x"}),
        ]
        for answer in answers:
            assert answer.startswith(RECALL_OPENINGS), answer[:80]
        mem.add([AIMessage("", tool_calls=[{**call, "id": "c2", "name": "recall"}]),
                 ToolMessage(answers[6], tool_call_id="c2")])  # fmt: skip
        for i in range(12):
            mem.add([{"role": "user", "content": f"Next task {i}: tidy the docs."},
                     {"role": "assistant", "content": "Done. " * 40}])  # fmt: skip
        mem.wait_until_indexed()
        assert "tool: No archived output" not in mem.recall(query="deadbeef")


def test_an_agent_recalls_a_small_result_of_the_task_it_is_still_running() -> None:
    """A second trial: the tool read only the turns before the question in front of the
    model, so a one-task agent could recall none of its own small tool results."""
    from memory.agent import AgentLoop

    tools = {"fetch_token": lambda: "deploy token is TK-ZEBRA-5521 (expires Friday)",
             "step": lambda: "step done; " + "ok " * 60}  # fmt: skip
    with ConversationMemory.open(":memory:", session="t", budget=1500) as mem:
        loop = AgentLoop(mem, system="You are a deploy agent.", tools=tools)
        loop.add_user("Deploy the payments service.")
        for number in range(25):
            name = "fetch_token" if number == 0 else "step"
            calls = loop.add_openai_reply({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"s{number}", "type": "function",
                 "function": {"name": name, "arguments": "{}"}}]})  # fmt: skip
            loop.run_tool_calls(calls)
        sent = [str(m.content) for m in loop.prompt().messages if m.type == "tool"]
        assert not any("TK-ZEBRA-5521" in text for text in sent)  # its round left the window
        mem.wait_until_indexed()
        for query in ("deploy token", "TK-ZEBRA-5521"):
            answer = str(mem.recall_tool().invoke({"query": query}))
            assert "tool fetch_token: deploy token is TK-ZEBRA-5521" in answer, query
            assert "user: Deploy the payments service." not in answer  # the question itself


@pytest.mark.parametrize(("budget", "calls"), [(1000, 4), (800, 4), (500, 3)])
def test_parallel_recalls_share_the_room_for_their_answers(budget: int, calls: int) -> None:
    """A second trial: each of 4 recalls in one reply got a quarter of an 800-token budget,
    and the round they made no longer fitted: every later prompt raised."""
    from memory.agent import AgentLoop

    log = "\n".join(
        f"12:{i // 60:02d}:{i % 60:02d} INFO worker {i % 7} batch {i}" for i in range(600)
    )
    with ConversationMemory.open(":memory:", session="p", budget=budget) as mem:
        loop = AgentLoop(mem, system="You are an ops agent.", tools={"tail_log": lambda: log})
        loop.add_user("Read the whole log and tell me what happened.")
        tail = {"id": "c0", "type": "function", "function": {"name": "tail_log", "arguments": "{}"}}
        loop.run_tool_calls(
            loop.add_openai_reply({"role": "assistant", "content": "", "tool_calls": [tail]})
        )
        ref = mem.archive.refs()[0].ref
        asked = [{"id": f"r{i}", "type": "function", "function": {
            "name": "recall", "arguments": json.dumps({"ref": ref, "page": i + 1})}}
            for i in range(calls)]  # fmt: skip
        answers = loop.run_tool_calls(
            loop.add_openai_reply({"role": "assistant", "content": "", "tool_calls": asked})
        )
        assert sum(mem.counter.count(str(a)) for a in answers) <= budget // 2  # wrappers aside
        assert loop.prompt().tokens <= budget


def test_many_async_sessions_recall_their_own_small_tool_results(tmp_path: Path) -> None:
    """Server-shaped: 40 sessions of one engine, handled concurrently with the async API,
    never closed; each recalls its own small tool result and no other session's."""
    import asyncio

    from memory import Engine

    engine = Engine(str(tmp_path / "server.db"))

    async def handle(n: int) -> str:
        mem = engine.open(session=f"user-{n}", budget=800)  # left open, as a handler does
        call = {"name": "lookup", "args": {}, "id": f"c{n}", "type": "tool_call"}
        await mem.aadd({"role": "user", "content": "Find my order."})
        await mem.aadd([AIMessage("", tool_calls=[call]),
                        ToolMessage(f"order ORD-{n:04d} ships from depot D{n}",
                                    tool_call_id=f"c{n}", name="lookup")])  # fmt: skip
        for i in range(8):
            await mem.aadd([{"role": "user", "content": f"Step {i}: small talk."},
                            {"role": "assistant", "content": "Sure. " * 30}])  # fmt: skip
        await asyncio.to_thread(mem.wait_until_indexed)
        return await mem.arecall(query="which depot does my order ship from?")

    async def serve() -> list[str]:
        return await asyncio.gather(*(handle(n) for n in range(40)))

    try:
        for n, answer in enumerate(asyncio.run(serve())):
            assert f"tool lookup: order ORD-{n:04d} ships from depot D{n}" in answer
            assert answer.count("ORD-") == 1  # no other session's
    finally:
        engine.close()
