"""The recall tool's own answers are not searched again: what they quote is searched already."""

from __future__ import annotations

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
