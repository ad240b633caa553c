"""Prompts in Anthropic's Messages API shape: ``system`` text and user/assistant turns.

Tool calls become ``tool_use`` blocks and results ``tool_result`` blocks at the start of
the next user turn (Anthropic wants them first); consecutive messages of one role are
merged into one turn. Assistant turns keep their ``thinking`` / ``redacted_thinking``
blocks first and unchanged, as Anthropic requires when they are sent back. Images inside
tool results are sent as image blocks, not dropped. A ``cache_control`` breakpoint can
mark the end of the prompt's stable part, so the next call reads it from the cache.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage

__all__ = ["CACHE_BREAKPOINT", "to_anthropic", "with_breakpoint"]

CACHE_BREAKPOINT = {"type": "ephemeral"}
"""Anthropic's 5-minute prompt cache (docs.anthropic.com, prompt caching)."""
_THINKING = ("thinking", "redacted_thinking")
_DATA_URL = re.compile(r"^data:(?P<media>[\w/+.-]+);base64,(?P<data>.*)$", re.DOTALL)


def _image(block: dict[str, Any]) -> dict[str, Any] | None:
    """An Anthropic image block from an OpenAI ``image_url`` or LangChain image block."""
    if block.get("type") == "image" and "source" in block:
        return dict(block)
    url = block.get("image_url", {}).get("url") if block.get("type") == "image_url" else None
    if block.get("type") == "image" and block.get("base64"):
        media = block.get("mime_type", "image/png")
        return {
            "type": "image",
            "source": {"type": "base64", "media_type": media, "data": block["base64"]},
        }
    if not isinstance(url, str):
        return None
    match = _DATA_URL.match(url)
    if match:
        source = {"type": "base64", "media_type": match["media"], "data": match["data"]}
        return {"type": "image", "source": source}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _blocks(content: Any) -> list[dict[str, Any]]:
    """Content as Anthropic blocks: text (never blank), images, other blocks as they are."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    blocks = []
    for block in content:
        if isinstance(block, str):
            block = {"type": "text", "text": block}
        if block.get("type") == "text" and not str(block.get("text", "")).strip():
            continue  # Anthropic refuses blank text blocks
        blocks.append(_image(block) or dict(block))
    return blocks


def _turn(message: BaseMessage) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(message, ToolMessage):
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id}
        inner = _blocks(message.content)
        if inner:
            result["content"] = inner
        if message.status == "error":
            result["is_error"] = True
        return "user", [result]
    if isinstance(message, AIMessage):
        uses = [
            {"type": "tool_use", "id": c["id"], "name": c["name"], "input": c["args"]}
            for c in message.tool_calls
        ]
        blocks = [b for b in _blocks(message.content) if b.get("type") != "tool_use"]
        thinking = [b for b in blocks if b.get("type") in _THINKING]
        rest = [b for b in blocks if b.get("type") not in _THINKING]
        return "assistant", [*thinking, *rest, *uses]
    return "user", _blocks(message.content)


def to_anthropic(
    messages: Sequence[BaseMessage], *, cache_after: int | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """Convert prompt messages to Anthropic's ``(system, messages)``.

    Args:
        messages: A prompt's messages (``Prompt.messages``).
        cache_after: How many leading messages are stable (``Prompt.stable_count``);
            the last block of the last of them gets a ``cache_control`` breakpoint.
            None: no breakpoint.

    Returns:
        The system text (system messages joined) and the turns. A leading assistant
        turn (its user turn left out) is dropped with its results, since Anthropic
        wants the conversation to open with the user.
    """
    system = "\n\n".join(m.text for m in messages if isinstance(m, SystemMessage))
    turns: list[dict[str, Any]] = []
    mark: dict[str, Any] | None = None
    for position, message in enumerate(messages):
        if not isinstance(message, SystemMessage):
            role, blocks = _turn(message)
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            elif blocks:
                turns.append({"role": role, "content": blocks})
        if cache_after is not None and position == cache_after - 1 and turns:
            mark = turns[-1]["content"][-1]
    while turns and turns[0]["role"] == "assistant":
        dropped = {b["id"] for b in turns.pop(0)["content"] if b.get("type") == "tool_use"}
        if turns:
            kept = [b for b in turns[0]["content"] if b.get("tool_use_id") not in dropped]
            turns[0]["content"] = kept
            if not kept:
                turns.pop(0)
    _order_results_first(turns)
    if mark is not None and any(mark is b for t in turns for b in t["content"]):
        mark["cache_control"] = dict(CACHE_BREAKPOINT)
    return system, turns


def _order_results_first(turns: list[dict[str, Any]]) -> None:
    """Put a user turn's ``tool_result`` blocks before its other blocks."""
    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            results = [b for b in content if b.get("type") == "tool_result"]
            if results:
                turn["content"] = results + [b for b in content if b.get("type") != "tool_result"]


def with_breakpoint(messages: Sequence[BaseMessage], stable_count: int) -> list[BaseMessage]:
    """Return the messages with a ``cache_control`` breakpoint on message ``stable_count - 1``
    (langchain-anthropic passes a content block's ``cache_control`` through to the API).

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
