"""Turn incoming messages into stored turns: counted, and compacted when bulky."""

from __future__ import annotations

import json
from dataclasses import dataclass

from langchain_core.messages import BaseMessage, ToolMessage, message_to_dict

from memory.archive import Archive, ArchivedOutput
from memory.errors import InputError
from memory.tokens import TokenCounter
from stores.base import NewTurn

__all__ = ["DEFAULT_COMPRESS_THRESHOLD", "DEFAULT_DIGEST_SHARE", "IngestOptions", "to_new_turn"]

DEFAULT_COMPRESS_THRESHOLD = 500
"""Tool outputs above this many tokens are archived and sent as a digest."""
DEFAULT_DIGEST_SHARE = 0.10
"""Largest share of the prompt budget one digest may take."""
MIN_DIGEST_TOKENS = 120
DIGEST_RATIO = 0.12
"""Largest share of its original a digest may take."""


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """When to compress a tool output, and the prompt budget its digest must respect."""

    compress_threshold: int
    prompt_tokens: int


def max_digest_tokens(original_tokens: int, prompt_tokens: int) -> int:
    """Size a digest: at most 12% of the original and 10% of the prompt budget."""
    share = int(prompt_tokens * DEFAULT_DIGEST_SHARE)
    return max(MIN_DIGEST_TOKENS, min(share, int(original_tokens * DIGEST_RATIO)))


def _dump(message: BaseMessage) -> str:
    try:
        return json.dumps(message_to_dict(message), default=str)
    except RecursionError as exc:
        raise InputError("message is nested too deeply to store") from exc


def to_new_turn(
    message: BaseMessage,
    *,
    counter: TokenCounter,
    archive: Archive,
    options: IngestOptions,
) -> tuple[NewTurn, ArchivedOutput | None]:
    """Count a message; archive a bulky tool output and keep its digest for prompts.

    Returns:
        The turn to store (original payload, plus the compact form if compressed) and
        the archived output to write in the same transaction, if any.

    Raises:
        InputError: the tool output is larger than the archive accepts.
    """
    payload = _dump(message)
    if isinstance(message, ToolMessage):
        content = message.content
        raw = content if isinstance(content, str) else json.dumps(content, default=str)
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > archive.max_output_bytes:
            raise InputError(
                f"tool output of {size:,} bytes exceeds max_output_bytes "
                f"({archive.max_output_bytes:,}); raise the limit or truncate the output"
            )
    # A recall result is the archive answering the model: compressing it again would
    # hide exactly what the model asked for.
    is_output = isinstance(message, ToolMessage) and message.name != "recall"
    text = message.content if is_output else None
    # A token is at least one byte: shorter outputs cannot pass the threshold.
    if (
        not isinstance(text, str)
        or len(text.encode("utf-8", "surrogatepass")) <= options.compress_threshold
    ):
        return NewTurn(message.type, payload, counter.count_message(message), counter.name), None
    original_tokens = counter.count(text)
    if original_tokens > options.compress_threshold:
        prepared = archive.prepare(
            text,
            max_tokens=max_digest_tokens(original_tokens, options.prompt_tokens),
            original_tokens=original_tokens,
        )
        if prepared is not None:
            compact = message.model_copy(update={"content": prepared.prompt_text})
            compact_tokens = counter.count_message(compact)
            # Fields are counted separately, so the original message's count is the
            # compact one with the content's count swapped (no second full tokenization).
            raw_tokens = compact_tokens - counter.count(prepared.prompt_text) + original_tokens
            turn = NewTurn(
                role=message.type,
                payload=payload,
                tokens=compact_tokens,
                counter=counter.name,
                compact=_dump(compact),
                raw_tokens=max(raw_tokens, compact_tokens),
                ref=prepared.ref,
            )
            return turn, prepared
    tokens = counter.count_message(message)
    return NewTurn(message.type, payload, tokens, counter.name), None
