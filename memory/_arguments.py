"""Tool-call arguments sent back as the model wrote them.

langchain-core parses an OpenAI tool call's ``arguments`` string and writes it back
re-serialized (``{"a":1}`` becomes ``{"a": 1}``), which costs tokens and breaks the cached
prefix an app's own raw history would have. The original strings are kept in the
message's ``additional_kwargs`` and restored in ``Prompt.to_openai``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from memory._errors import InputError

__all__ = ["ARGUMENTS_KEY", "ROLES", "check_dict", "keep_arguments", "original_arguments"]

ARGUMENTS_KEY = "tool_call_arguments"
"""``additional_kwargs`` key holding the model's own argument strings, by tool call id."""


def keep_arguments(converted: BaseMessage, original: Mapping[str, Any]) -> BaseMessage:
    """Remember an OpenAI dict's argument strings as the model wrote them.

    langchain-core parses them and writes them back re-serialized (``{"a":1}`` becomes
    ``{"a": 1}``); ``Prompt.to_openai`` sends the originals back, byte for byte.
    """
    calls = original.get("tool_calls")
    if not isinstance(converted, AIMessage) or not isinstance(calls, list):
        return converted
    arguments = {
        str(c["id"]): c["function"]["arguments"]
        for c in calls
        if isinstance(c, Mapping)
        and c.get("id")
        and isinstance(c.get("function"), Mapping)
        and isinstance(c["function"].get("arguments"), str)
    }
    if not arguments:
        return converted
    extra = {**converted.additional_kwargs, ARGUMENTS_KEY: arguments}
    return converted.model_copy(update={"additional_kwargs": extra})


def original_arguments(
    openai_messages: list[dict[str, Any]], messages: Sequence[BaseMessage]
) -> None:
    """Put the model's own argument strings back into OpenAI dicts (in place).

    Matched message by message, in order (a call id may come back in a later turn),
    and only where the original parses to the same arguments as the call's.
    """
    originals = [
        m.additional_kwargs.get(ARGUMENTS_KEY) or {}
        for m in messages
        if isinstance(m, AIMessage) and m.tool_calls
    ]
    calling = [m for m in openai_messages if m.get("tool_calls")]
    if len(originals) != len(calling):
        return  # not one to one: send the re-serialized arguments
    for kept, message in zip(originals, calling, strict=True):
        for call in message["tool_calls"]:
            text = kept.get(call.get("id"))
            function = call.get("function")
            if text is None or not isinstance(function, dict):
                continue
            try:
                same = json.loads(text) == json.loads(function.get("arguments") or "null")
            except json.JSONDecodeError:
                same = False
            if same:  # never send arguments other than the call's
                function["arguments"] = text


ROLES = frozenset({"user", "human", "assistant", "ai", "system", "developer", "tool"})
"""The roles a dict message may have (LangChain's ``function`` and ``chat`` aside)."""


def check_dict(message: Mapping[str, Any], index: int) -> None:
    """Refuse a dict message whose fields have the wrong shape, naming what to send.

    Raises:
        InputError: the role is none of ``ROLES``, ``content`` is neither text, a list
            of blocks nor None (None only for an assistant's or a tool's), or
            ``tool_calls`` is not a list of calls.
    """
    role = message.get("role")
    if "role" in message and not isinstance(role, str):
        raise InputError(
            f"role must be text ('user', 'assistant', 'system', 'developer' or 'tool'), "
            f"not {type(role).__name__}",
            index=index,
        )
    if isinstance(role, str) and role not in ROLES:
        raise InputError(
            f"unknown role {role!r}: use 'user', 'assistant', 'system', 'developer' or 'tool'",
            index=index,
        )
    content = message.get("content")
    if content is None and role in ("user", "human", "system", "developer"):
        raise InputError(
            f"a {role} message has no content (None): send its text, or a list of blocks",
            index=index,
        )
    if not isinstance(content, str | list | None):
        raise InputError(
            f"content must be text or a list of blocks, not {type(content).__name__}",
            index=index,
        )
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise InputError(
            f"tool_calls must be a list of calls ([{{'id': ..., 'function': ...}}]), "
            f"not {type(calls).__name__}",
            index=index,
        )
