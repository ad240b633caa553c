"""A hand-written OpenAI-SDK-style agent loop under a token budget, with ``AgentLoop``.

Replays a recorded agent run (a SWE-agent transcript) as if the model were live: each
assistant message is the "model's reply", each tool result is recorded, and before each
reply the loop assembles the prompt it would send. With OPENAI_API_KEY set and the
``openai`` package installed, it then asks gpt-4o-mini a question over the same memory.

    python examples/raw_openai_loop.py [TRANSCRIPT]
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from _offline import FORCE_FAKE, embedder

from memory import Budget, ConversationMemory
from memory._replay import load_transcript
from memory.agent import AgentLoop

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "agent_transcripts" / "swe_agent_dev.jsonl"
BUNDLED = REPO / "examples" / "transcripts" / "marshmallow_1867.json"


def transcript(argv: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """Pick the transcript: the argument, the longest shared SWE-agent run, or ours."""
    if len(argv) > 1:
        return argv[1], load_transcript(argv[1])
    if SHARED.exists():
        runs = [json.loads(line) for line in SHARED.read_text(encoding="utf-8").splitlines()]
        longest = max(runs, key=lambda run: len(run["messages"]))
        return f"{SHARED.name}#{longest['id']}", longest["messages"]
    return BUNDLED.name, load_transcript(BUNDLED)


def replay(loop: AgentLoop, messages: list[dict[str, Any]]) -> None:
    """Drive the loop with the recorded messages, printing each prompt's size."""
    calls = 0
    for message in messages:
        role = message.get("role")
        if role == "user":
            loop.add_user(message["content"])
        elif role == "assistant":
            prompt = loop.openai_messages()  # what would go to client.chat.completions.create
            calls += 1
            report = loop.last_prompt.report if loop.last_prompt else None
            if report is not None and calls % 8 == 1:
                print(
                    f"call {calls:3d}: {len(prompt):3d} messages, {report.tokens:6,} tokens "
                    f"sent of {report.raw_tokens:7,} raw"
                )
            loop.add_openai_reply(message)  # the model's reply: a choices[0].message dict
        elif role == "tool":
            loop.add_tool_result(message["tool_call_id"], str(message["content"]))


def ask_live(loop: AgentLoop) -> None:
    """Ask a real model, when a key and the openai package are there."""
    if os.environ.get(FORCE_FAKE) or not os.environ.get("OPENAI_API_KEY"):
        print("(set OPENAI_API_KEY and install openai to ask a real model)")
        return
    try:
        from openai import OpenAI
    except ImportError:
        print("(install openai to ask a real model)")
        return
    loop.add_user("In two sentences: what was done so far, and what is left?")
    for _ in range(4):
        reply = (
            OpenAI()
            .chat.completions.create(
                model="gpt-4o-mini", messages=loop.openai_messages(), tools=loop.openai_tools()
            )
            .choices[0]
            .message
        )
        calls = loop.add_openai_reply(reply)
        if not calls:
            print("gpt-4o-mini:", reply.content)
            return
        loop.run_tool_calls(calls)  # recall runs locally, against this session's archive


def main() -> None:
    name, messages = transcript(sys.argv)
    system = "\n\n".join(str(m["content"]) for m in messages if m.get("role") == "system")
    conversation = [m for m in messages if m.get("role") != "system"]
    print(f"replaying {name}: {len(conversation)} messages")
    with ConversationMemory.open(
        ":memory:",
        session="replay",
        budget=Budget(context_window=8_000, reserve_output=1_000),
        model="gpt-4o-mini",
        embedder=embedder(),
    ) as memory:
        loop = AgentLoop(memory, system=system or None)
        replay(loop, conversation)
        final = loop.prompt().report
        print(
            f"final prompt: {final.tokens:,} tokens for {final.turns_total} messages "
            f"({final.raw_tokens:,} raw, {final.tokens_saved:,} saved)"
        )
        ask_live(loop)


if __name__ == "__main__":
    main()
