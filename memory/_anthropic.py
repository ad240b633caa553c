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

__all__ = [
    "CACHE_BREAKPOINT",
    "MAX_BREAKPOINTS",
    "marks_in",
    "to_anthropic",
    "unmarked",
    "with_breakpoint",
]

CACHE_BREAKPOINT = {"type": "ephemeral"}
"""Anthropic's 5-minute prompt cache (docs.anthropic.com, prompt caching)."""
MAX_BREAKPOINTS = 4
"""``cache_control`` blocks Anthropic accepts in one request (same source): the caller's
own marks count, and ours are added only while they fit (the stable part's first)."""
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
    messages: Sequence[BaseMessage],
    *,
    cache_after: int | None = None,
    anchor_after: int | None = None,
) -> tuple[str | list[dict[str, Any]], list[dict[str, Any]]]:
    """Convert prompt messages to Anthropic's ``(system, messages)``.

    Args:
        messages: A prompt's messages (``Prompt.messages``).
        cache_after: How many leading messages are stable (``Prompt.stable_count``);
            the last block of the last of them gets a ``cache_control`` breakpoint.
            None: no breakpoint.
        anchor_after: How many leading messages every prompt repeats across folds
            (``Prompt.anchor_count``); a second breakpoint goes on the last block of the
            last of them. None: none.

    Returns:
        The system text (system messages joined; as one text block when a breakpoint
        ends there, the only way to mark it) and the turns. A leading assistant
        turn (its user turn left out) is dropped with its results, since Anthropic
        wants the conversation to open with the user.
    """
    text = "\n\n".join(m.text for m in messages if isinstance(m, SystemMessage))
    turns: list[dict[str, Any]] = []
    marks: list[dict[str, Any]] = []
    ends = {e for e in (cache_after, anchor_after) if e}
    for position, message in enumerate(messages):
        if not isinstance(message, SystemMessage):
            role, blocks = _turn(message)
            if turns and turns[-1]["role"] == role:
                turns[-1]["content"].extend(blocks)
            elif blocks:
                turns.append({"role": role, "content": blocks})
            if position + 1 in ends and turns:
                marks.append(turns[-1]["content"][-1])
    while turns and turns[0]["role"] == "assistant":
        dropped = {b["id"] for b in turns.pop(0)["content"] if b.get("type") == "tool_use"}
        if turns:
            kept = [b for b in turns[0]["content"] if b.get("tool_use_id") not in dropped]
            turns[0]["content"] = kept
            if not kept:
                turns.pop(0)
    _order_results_first(turns)
    sent = [b for t in turns for b in t["content"]]
    marks = [m for m in marks if any(m is b for b in sent)]
    leading = next((i for i, m in enumerate(messages) if not isinstance(m, SystemMessage)), 0)
    on_system = bool(text) and any(0 < end <= leading for end in ends)
    room = MAX_BREAKPOINTS - sum("cache_control" in b for b in sent)
    for mark in marks[::-1][: max(room, 0)]:  # the stable part's first
        mark["cache_control"] = dict(CACHE_BREAKPOINT)
    if on_system and room > len(marks):  # a breakpoint ends the system part
        block = {"type": "text", "text": text, "cache_control": dict(CACHE_BREAKPOINT)}
        return [block], turns
    return text, turns


def _order_results_first(turns: list[dict[str, Any]]) -> None:
    """Put a user turn's ``tool_result`` blocks before its other blocks."""
    for turn in turns:
        if turn["role"] == "user":
            content = turn["content"]
            results = [b for b in content if b.get("type") == "tool_result"]
            if results:
                turn["content"] = results + [b for b in content if b.get("type") != "tool_result"]


def with_breakpoint(
    messages: Sequence[BaseMessage], stable_count: int, anchor_count: int = 0, *, taken: int = 0
) -> list[BaseMessage]:
    """Return the messages with a ``cache_control`` breakpoint on message ``stable_count - 1``
    (langchain-anthropic passes a content block's ``cache_control`` through to the API),
    and one on message ``anchor_count - 1`` (``to_anthropic``'s ``anchor_after``).

    A marked message is copied (its content turned into blocks); the others are the
    same objects. Nothing is marked where a count is out of range or the message has no
    block to mark, nor past ``MAX_BREAKPOINTS`` with the marks the messages carry and
    ``taken`` (those elsewhere in the request: the system's).
    """
    marked = list(messages)
    room = MAX_BREAKPOINTS - taken - sum(marks_in(m) for m in messages)
    for count in sorted({stable_count, anchor_count} - {0}, reverse=True)[: max(room, 0)]:
        _mark(marked, count - 1)  # the stable part's first, while they fit
    return marked


def unmarked(message: BaseMessage) -> BaseMessage:
    """``message`` without the ``cache_control`` marks of its blocks (a stored message
    keeps those its app sent then: sent again they would mark stale places and pass
    ``MAX_BREAKPOINTS``); the same object when it has none."""
    content = message.content
    if isinstance(content, str) or not marks_in(message):
        return message
    blocks = [
        {k: v for k, v in b.items() if k != "cache_control"} if isinstance(b, dict) else b
        for b in content
    ]
    return message.model_copy(update={"content": blocks})


def marks_in(message: BaseMessage) -> int:
    """``cache_control`` blocks the message carries already (the caller's own)."""
    content = message.content
    return (
        0
        if isinstance(content, str)
        else sum(isinstance(b, dict) and "cache_control" in b for b in content)
    )


def _mark(marked: list[BaseMessage], position: int) -> None:
    """Put a breakpoint on the last block of message ``position`` (in place)."""
    if not 0 <= position < len(marked):
        return
    message = marked[position]
    content = message.content
    blocks: list[Any] = (
        [{"type": "text", "text": content}] if isinstance(content, str) and content
        else [dict(b) if isinstance(b, dict) else b for b in content]
    )  # fmt: skip
    if not blocks or not isinstance(blocks[-1], dict):
        return
    blocks[-1] = {**blocks[-1], "cache_control": dict(CACHE_BREAKPOINT)}
    marked[position] = message.model_copy(update={"content": blocks})
