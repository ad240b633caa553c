"""One message's tokens in OpenAI's chat format (the cookbook's formula, extended).

Every message costs ``TOKENS_PER_MESSAGE`` plus the tokens of each of its string fields
(a ``name`` one more); each tool call ``TOKENS_PER_TOOL_CALL`` plus its id, function
name and JSON arguments; text blocks count by their text, images, files and audio by
``memory._media``, other blocks by their JSON; a prompt ``REPLY_PRIMING_TOKENS`` more.
Source: OpenAI cookbook, "How to count tokens with tiktoken" (``num_tokens_from_messages``
for gpt-4o and gpt-4: 3 per message, 1 per name, 3 to prime the reply).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from langchain_core.messages import BaseMessage, convert_to_openai_messages

from memory._arguments import original_arguments
from memory._media import MediaRule, rule_for_model
from memory._media import block_tokens as media_block_tokens

__all__ = [
    "DEFAULT_MEDIA_RULES",
    "REPLY_PRIMING_TOKENS",
    "TOKENS_PER_MESSAGE",
    "TOKENS_PER_NAME",
    "TOKENS_PER_TOOL_CALL",
    "openai_message_tokens",
]

TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_PER_TOOL_CALL = 3
REPLY_PRIMING_TOKENS = 3
DEFAULT_MEDIA_RULES = rule_for_model(None)


def openai_message_tokens(
    message: BaseMessage,
    count_text: Callable[[str], int],
    rules: tuple[MediaRule, ...] = DEFAULT_MEDIA_RULES,
) -> int:
    """Count one message in OpenAI's chat format with a text counter (see module docs).

    Images, files and audio count by ``rules`` (``memory._media``), not as text. Tool
    call arguments count as ``Prompt.to_openai`` sends them: the model's own strings
    where kept (``memory._arguments``), which may be far longer than langchain-core's
    re-serialized form (``json.dumps``' ``\\u00fc`` escapes: 67 tokens against 49)."""
    total = 0
    converted = [dict(m) for m in convert_to_openai_messages([message])]
    original_arguments(converted, [message])
    for as_dict in converted:
        total += TOKENS_PER_MESSAGE
        for key, value in as_dict.items():
            total += _field_tokens(key, value, count_text, rules)
    return total


def _field_tokens(
    key: str, value: Any, count_text: Callable[[str], int], rules: tuple[MediaRule, ...]
) -> int:
    if value is None:
        return 0
    if key == "tool_calls":
        return sum(_tool_call_tokens(call, count_text) for call in value)
    if isinstance(value, str):
        return count_text(value) + (TOKENS_PER_NAME if key == "name" else 0)
    if isinstance(value, list):
        return sum(_block_tokens(block, count_text, rules) for block in value)
    return count_text(json.dumps(value, ensure_ascii=False, sort_keys=True, default=str))


def _tool_call_tokens(call: dict[str, Any], count_text: Callable[[str], int]) -> int:
    function = call.get("function", {})
    parts = (call.get("id") or "", function.get("name") or "", function.get("arguments") or "")
    return TOKENS_PER_TOOL_CALL + sum(count_text(part) for part in parts)


def _block_tokens(
    block: Any, count_text: Callable[[str], int], rules: tuple[MediaRule, ...]
) -> int:
    if isinstance(block, str):
        return count_text(block)
    if isinstance(block, dict):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            return count_text(block["text"])
        media = media_block_tokens(block, rules)
        if media is not None:
            return media
    return count_text(json.dumps(block, ensure_ascii=False, sort_keys=True, default=str))
