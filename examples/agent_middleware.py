"""A langchain ``create_agent`` agent whose model calls fit a budget.

``ContextAtticMiddleware`` replaces ``SummarizationMiddleware``: the model gets the
assembled prompt (recent turns, bulky tool outputs as digests) and a ``recall`` tool to
read the archived originals back, while the graph's state keeps everything.

    python examples/agent_middleware.py      # offline; OPENAI_API_KEY for a real model
"""

from __future__ import annotations

from _offline import chat_model, embedder, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

from memory import Budget
from memory.adapters.langchain import ContextAtticMiddleware


@tool
def read_build_log() -> str:
    """Return the log of the last nightly build."""
    lines = [f"02:{i // 60:02d}:{i % 60:02d} INFO compiled module_{i}.c" for i in range(600)]
    lines.insert(431, "02:07:11 ERROR linker: undefined reference to `crc32_update'")
    return "\n".join(lines)


SCRIPT = [
    tool_call("read_build_log", {}, "call-1"),
    tool_call("recall", {"query": "ERROR linker undefined reference"}, "call-2"),
    "The build failed at link time: `crc32_update` is undefined (02:07:11).",
]


def main() -> None:
    model = chat_model(SCRIPT)
    with ContextAtticMiddleware(
        budget=Budget(context_window=4000, reserve_output=500), embedder=embedder()
    ) as middleware:
        agent = create_agent(
            model,
            tools=[read_build_log],
            middleware=[middleware],
            system_prompt="You are a build engineer. Use recall to read archived outputs.",
            checkpointer=InMemorySaver(),
        )
        config: dict = {"configurable": {"thread_id": "nightly-42"}}
        question = "Why did last night's build fail? Read the log."
        result = agent.invoke({"messages": [HumanMessage(question)]}, config)
        report = middleware.last_report
        assert report is not None
        state_tokens = middleware.memory("nightly-42").counter.count_messages(result["messages"])
        print("answer:", result["messages"][-1].content)
        print(f"state: {len(result['messages'])} messages, {state_tokens} tokens")
        print(f"last prompt: {report.tokens} tokens (budget {report.budget})")
        print(f"archived refs: {', '.join(report.compressed_refs) or 'none'}")
        print(f"tokens saved: {report.tokens_saved}")


if __name__ == "__main__":
    main()
