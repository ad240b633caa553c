"""Tool calls and their results: every result answers an open call of its own id.

Providers refuse a prompt whose tool results do not answer a call of the prompt, or
whose calls share an id; a store that accepted such messages would build such prompts.
An id used again once its call was answered is accepted (models behind OpenAI-compatible
servers number their calls "call_0", "call_1"... in every reply), and renamed in the
prompts that hold both calls (``unique_call_ids``): Anthropic refuses a request whose
``tool_use`` ids repeat, and ids outside ``[A-Za-z0-9_-]``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memory._arguments import ARGUMENTS_KEY
from memory._errors import InputError

__all__ = ["check_pairing", "unique_call_ids"]

_OTHER = re.compile(r"[^A-Za-z0-9_-]")
"""What Anthropic refuses in a ``tool_use`` id (it takes ``^[a-zA-Z0-9_-]+$``)."""


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


def unique_call_ids(messages: Sequence[BaseMessage]) -> list[BaseMessage]:
    """The messages with each tool call id used once, in the characters every provider
    takes: a call whose id an earlier call of the prompt had is sent as ``"<id>_2"``
    (``_3``...), its results with it (the first keeps its id, so a prompt's start does
    not change); other characters than ``[A-Za-z0-9_-]`` are sent as ``_``. Renamed
    messages are copies; the others are the same objects."""
    seen: set[str] = set()
    current: dict[str, str] = {}  # an id as stored -> as sent, for the results to come
    renamed_messages: list[BaseMessage] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            renamed: dict[str, str] = {}
            for call in message.tool_calls:
                stored = str(call["id"])
                base = sent = _OTHER.sub("_", stored) or "call"
                copy = 1
                while sent in seen:
                    copy += 1
                    sent = f"{base}_{copy}"
                seen.add(sent)
                current[stored] = sent
                if sent != stored:
                    renamed[stored] = sent
            if renamed:
                message = _renamed(message, renamed)
        elif isinstance(message, ToolMessage):
            sent = current.get(message.tool_call_id, message.tool_call_id)
            if sent != message.tool_call_id:
                message = message.model_copy(update={"tool_call_id": sent})
        renamed_messages.append(message)
    return renamed_messages


def _renamed(message: AIMessage, renamed: dict[str, str]) -> AIMessage:
    """``message`` with its calls' ids renamed: its ``tool_calls``, its content's
    ``tool_use`` blocks and the argument strings kept for them (``memory._arguments``)."""
    calls = [{**c, "id": renamed.get(str(c["id"]), c["id"])} for c in message.tool_calls]
    content = message.content
    if isinstance(content, list):
        content = [
            {**b, "id": renamed[b["id"]]}
            if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id") in renamed
            else b
            for b in content
        ]
    extra = dict(message.additional_kwargs)
    kept = extra.get(ARGUMENTS_KEY)
    if isinstance(kept, dict):
        extra[ARGUMENTS_KEY] = {renamed.get(k, k): v for k, v in kept.items()}
    return message.model_copy(
        update={"tool_calls": calls, "content": content, "additional_kwargs": extra}
    )
