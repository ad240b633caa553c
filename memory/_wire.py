"""Prompt dicts every JSON encoder and HTTP client can send: text that encodes as UTF-8.

Python strings may hold lone surrogates (half of a UTF-16 pair, e.g. from a bad decode);
a message keeps them as stored, but ``json.dumps(..., ensure_ascii=False).encode()``
fails on them and a provider refuses the escaped form. ``Prompt.to_openai`` and
``to_anthropic`` send each one as ``?``, which is what the token counter counts in its
place (``memory._tokens``: UTF-8 encoding with ``errors="replace"``).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from memory._errors import InputError

__all__ = ["check_identifiers", "sendable"]


def sendable(value: Any) -> Any:
    """``value`` with each lone surrogate in its strings (in dicts, lists and tuples, at
    any depth) replaced by ``?``; the same objects where there is none."""
    if isinstance(value, str):
        if value.isascii():
            return value
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {key: sendable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(sendable(item) for item in value)
    return value


def check_identifiers(message: BaseMessage, index: int) -> None:
    """Refuse a message whose ``name``, tool call ids or tool names hold a lone
    surrogate: they are stored and sent exactly (no ``?`` may stand in for part of an
    id), and no store or provider takes such text.

    Raises:
        InputError: naming the field and the message's index.
    """
    fields = [("name", message.name)]
    if isinstance(message, ToolMessage):
        fields.append(("tool_call_id", message.tool_call_id))
    if isinstance(message, AIMessage):
        for call in message.tool_calls:
            fields += [("tool call id", call.get("id")), ("tool name", call.get("name"))]
    for field, value in fields:
        if isinstance(value, str) and sendable(value) != value:
            raise InputError(
                f"{field} {value!r} holds a lone surrogate (half of a UTF-16 pair): "
                "decode the text that made it with errors='replace'",
                index=index,
            )
