"""Tool calls and their results: every result answers an open call of its own id.

Providers refuse a prompt whose tool results do not answer a call of the prompt, or
whose calls share an id; a store that accepted such messages would build such prompts.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memory._errors import InputError

__all__ = ["check_pairing"]


def check_pairing(
    messages: Sequence[BaseMessage], *, open_calls: Iterable[str], issued_calls: Iterable[str]
) -> None:
    """Check that every tool result answers a call that was issued and is still open.

    Args:
        messages: New messages, in order.
        open_calls: Ids of tool calls already stored and not yet answered.
        issued_calls: Ids of every tool call already stored, answered or not.

    Raises:
        InputError: a tool result answers a call id never issued or already answered, a
            tool call reuses an id still waiting for its result, or two calls of one
            message share an id. Names the message index.
    """
    pending = set(open_calls)
    seen = set(issued_calls)
    for index, message in enumerate(messages):
        if isinstance(message, AIMessage):
            ids = [str(call["id"]) for call in message.tool_calls]
            if len(set(ids)) < len(ids):
                raise InputError(f"two of its tool calls have the same id: {ids}", index=index)
            for call_id in ids:
                if call_id in pending:
                    # Providers accept an id again once answered, never while still open.
                    raise InputError(
                        f"tool call id {call_id!r} is still waiting for its result", index=index
                    )
                seen.add(call_id)
                pending.add(call_id)
        elif isinstance(message, ToolMessage):
            call_id = message.tool_call_id
            if call_id not in pending:
                problem = "was already answered" if call_id in seen else "was never issued"
                raise InputError(
                    f"tool result for call id {call_id!r}, which {problem}", index=index
                )
            pending.discard(call_id)
