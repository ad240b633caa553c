"""Anthropic prompt-cache breakpoints on LangChain messages (langchain-anthropic reads them).

langchain-anthropic passes a content block's ``cache_control`` through to the API, so
marking the last block of a prompt's stable part lets Anthropic serve everything up to it
from its prompt cache on the next call (reads at 10% of the input price, writes at 125%:
docs.anthropic.com, prompt caching).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from memory._anthropic import CACHE_BREAKPOINT

__all__ = ["with_breakpoint"]


def with_breakpoint(messages: Sequence[BaseMessage], stable_count: int) -> list[BaseMessage]:
    """Return the messages with a ``cache_control`` breakpoint on message ``stable_count - 1``.

    The marked message is copied (its content turned into blocks); the others are the
    same objects. Nothing is marked when ``stable_count`` is out of range or the message
    has no block to mark.
    """
    marked = list(messages)
    position = stable_count - 1
    if not 0 <= position < len(marked):
        return marked
    message = marked[position]
    content = message.content
    blocks: list[Any] = (
        [{"type": "text", "text": content}] if isinstance(content, str) and content
        else [dict(b) if isinstance(b, dict) else b for b in content]
    )  # fmt: skip
    if not blocks or not isinstance(blocks[-1], dict):
        return marked
    blocks[-1] = {**blocks[-1], "cache_control": dict(CACHE_BREAKPOINT)}
    marked[position] = message.model_copy(update={"content": blocks})
    return marked
