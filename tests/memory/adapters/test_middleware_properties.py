"""The prompt guarantees through ``ContextAtticMiddleware`` in ``create_agent`` runs.

Random agent runs (parallel tool calls, outputs above and below the archive threshold,
several user turns on one thread) are driven by a scripted model; every prompt the model
is sent must fit the budget, keep tool pairs intact, be valid for every provider and
carry the latest tool round whenever it fits.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from prompt_checks import assert_pairs_intact, assert_valid_for_providers

from memory.adapters.langchain import ContextAtticMiddleware


@tool
def read_file(path: str) -> str:
    """Return a file's text (its size is in its name: big files are 80 lines)."""
    lines = 80 if path.startswith("big") else 2
    return "\n".join(f"{path}:{n}: value = {n * 7}" for n in range(lines))


# A step is a list of files read in parallel (one tool round) or None: the final answer.
ROUNDS = st.lists(
    st.lists(st.sampled_from(["big_a.py", "small_b.py", "big_c.txt", "small_d.md"]), max_size=4),
    max_size=5,
)


def _script(turns: list[list[list[str]]]) -> list[AIMessage | str]:
    replies: list[AIMessage | str] = []
    for turn, rounds in enumerate(turns):
        for step, files in enumerate(rounds):
            if not files:
                continue
            calls = [
                {"name": "read_file", "args": {"path": f}, "id": f"t{turn}s{step}c{i}"}
                for i, f in enumerate(files)
            ]
            replies.append(AIMessage("", tool_calls=calls))
        replies.append(f"done with turn {turn}")
    return replies


# `scripted` is a factory: nothing in it carries over between examples.
@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(turns=st.lists(ROUNDS, min_size=1, max_size=4), budget=st.integers(1500, 4000))
def test_every_prompt_of_an_agent_run_keeps_the_guarantees(
    turns: list[list[list[str]]],
    budget: int,
    scripted: Callable[..., Any],
) -> None:
    model = scripted(*_script(turns))
    middleware = ContextAtticMiddleware(
        budget=budget, embedder=DeterministicFakeEmbedding(size=16), compress_threshold=120
    )
    with middleware:
        agent = create_agent(
            model,
            tools=[read_file],
            middleware=[middleware],
            system_prompt="You read files.",
            checkpointer=InMemorySaver(),
        )
        config: Any = {"configurable": {"thread_id": "run"}}
        for turn in range(len(turns)):
            agent.invoke({"messages": [HumanMessage(f"turn {turn}: read the files")]}, config)
        counter = middleware.memory("run").counter
    for prompt in model.prompts:
        assert counter.count_messages(prompt) <= budget
        assert_pairs_intact(prompt)
        assert_valid_for_providers(prompt)
        assert sum(isinstance(m, SystemMessage) for m in prompt) == 1
        last = prompt[-1]
        if isinstance(last, ToolMessage):  # the round the model just ran is all there
            round_ids = {m.tool_call_id for m in prompt if isinstance(m, ToolMessage)}
            call = next(m for m in reversed(prompt) if isinstance(m, AIMessage) and m.tool_calls)
            assert {c["id"] for c in call.tool_calls} <= round_ids
