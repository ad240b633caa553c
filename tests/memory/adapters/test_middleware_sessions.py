"""The middleware's held sessions under a server's load: a session is never released
while a model call (or a tool run) uses it, however idle or many the others."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from conftest_models import ScriptedChatModel
from langchain.agents import create_agent
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from memory.adapters.langchain import ContextAtticMiddleware


class Waiting(ScriptedChatModel):
    """Replies "answer"; a prompt holding "slow" waits for ``go`` (a slow model call)."""

    started: Any = None
    go: Any = None

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        if any("slow" in str(m.content) for m in messages):
            self.started.set()
            assert self.go.wait(30)
        return super()._generate(messages, *args, **kwargs)


@pytest.mark.parametrize("thread_id", [True, False])
def test_a_session_in_a_model_call_is_not_released_while_others_are_served(
    thread_id: bool, embedder: DeterministicFakeEmbedding
) -> None:
    """Its handle idles past ``idle_seconds`` while another request comes and goes: the
    reply is still stored (it raised ClosedError and the paid reply was lost)."""
    model = Waiting(messages=iter([AIMessage("answer")] * 4))
    model.started, model.go = threading.Event(), threading.Event()
    outcome: dict[str, Any] = {}
    with ContextAtticMiddleware(budget=2000, embedder=embedder, idle_seconds=0.05) as middleware:
        agent = create_agent(model, middleware=[middleware])

        def config(name: str) -> Any:
            return {"configurable": {"thread_id": name}} if thread_id else {}

        def slow() -> None:
            try:
                outcome["state"] = agent.invoke(
                    {"messages": [HumanMessage("slow one")]}, config("A")
                )
            except Exception as exc:  # reported below, with its type
                outcome["error"] = exc

        worker = threading.Thread(target=slow)
        worker.start()
        assert model.started.wait(30)
        time.sleep(0.2)  # A's handle is idle past idle_seconds
        agent.invoke({"messages": [HumanMessage("quick one")]}, config("B"))  # releases idle ones
        model.go.set()
        worker.join(30)
        assert "error" not in outcome, repr(outcome.get("error"))
        state = outcome["state"]["messages"]
        session = "A" if thread_id else f"run:{state[0].id}"
        assert [m.content for m in middleware.memory(session).history()] == ["slow one", "answer"]
        time.sleep(0.1)
        agent.invoke({"messages": [HumanMessage("quick two")]}, config("C"))
        assert middleware.sessions_held == 1  # once done, A is released when idle


def test_an_async_session_in_a_model_call_is_not_released_while_others_are_served(
    embedder: DeterministicFakeEmbedding,
) -> None:
    """The same under asyncio, runs without a thread id (the trial: 29 of 100 failed)."""
    model = Waiting(messages=iter([AIMessage("answer")] * 4))
    model.started, model.go = threading.Event(), threading.Event()

    async def run(agent: Any) -> Any:
        slow = asyncio.create_task(agent.ainvoke({"messages": [HumanMessage("slow one")]}))
        assert await asyncio.to_thread(model.started.wait, 30)
        await asyncio.sleep(0.2)
        await agent.ainvoke({"messages": [HumanMessage("quick one")]})
        model.go.set()
        return await slow

    with ContextAtticMiddleware(budget=2000, embedder=embedder, idle_seconds=0.05) as middleware:
        state = asyncio.run(run(create_agent(model, middleware=[middleware])))["messages"]
        history = middleware.memory(f"run:{state[0].id}").history()
        assert [m.content for m in history] == ["slow one", "answer"]
