"""Turn incoming messages into stored turns: counted, and compacted when bulky."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, ToolCall, ToolMessage, message_to_dict

from memory._archive import Archive, ArchivedOutput
from memory._compress.delta import call_key
from memory._context import sanitize
from memory._errors import InputError
from memory._tokens import TokenCounter
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


def _text_of(blocks: list[Any]) -> str | None:
    """Join the text blocks of a block-list content; None when it holds no text block."""
    texts = [b if isinstance(b, str) else b.get("text") for b in blocks if _is_text(b)]
    return "\n".join(t for t in texts if isinstance(t, str)) if texts else None


def _is_text(block: Any) -> bool:
    return isinstance(block, str) or (isinstance(block, dict) and block.get("type") == "text")


def _compact_blocks(blocks: list[Any], digest: str) -> list[Any]:
    """The first text block becomes the digest; other text goes; images and files stay."""
    out: list[Any] = []
    for block in blocks:
        if not _is_text(block):
            out.append(block)
        elif not any(_is_text(b) for b in out):
            out.append({"type": "text", "text": digest})
    return out


def _archived(
    text: str,
    *,
    counter: TokenCounter,
    archive: Archive,
    options: IngestOptions,
    call: str | None = None,
) -> ArchivedOutput | None:
    """Archive ``text`` when it is over the threshold and its digest is smaller."""
    # A token is at least one byte: shorter texts cannot pass the threshold.
    if len(text.encode("utf-8", "surrogatepass")) <= options.compress_threshold:
        return None
    original_tokens = counter.count(text)
    if original_tokens <= options.compress_threshold:
        return None
    return archive.prepare(
        text,
        max_tokens=max_digest_tokens(original_tokens, options.prompt_tokens),
        original_tokens=original_tokens,
        call=call,
    )


def _compact_output(
    message: ToolMessage, *, counter: TokenCounter, archive: Archive, options: IngestOptions
) -> tuple[BaseMessage, list[ArchivedOutput]]:
    """A tool result with its bulky text (a string or text blocks) replaced by a digest."""
    content = message.content
    text = content if isinstance(content, str) else _text_of(content)
    prepared = (
        None
        if text is None
        else _archived(
            text,
            counter=counter,
            archive=archive,
            options=options,
            call=archive.calls.get(message.tool_call_id),
        )
    )
    if prepared is None:
        return message, []
    compact: str | list[Any] = prepared.prompt_text
    if not isinstance(content, str):
        compact = _compact_blocks(content, prepared.prompt_text)
    return message.model_copy(update={"content": compact}), [prepared]


def _compact_calls(
    message: AIMessage, *, counter: TokenCounter, archive: Archive, options: IngestOptions
) -> tuple[BaseMessage, list[ArchivedOutput]]:
    """A tool call with its bulky string arguments (a whole file, a script) digested.

    The prompt copy keeps the call, its name and every small argument, so a later prompt
    still shows what was done; the argument's exact text is archived under its ref.
    """
    archived: list[ArchivedOutput] = []
    calls: list[ToolCall] = []
    replaced: dict[str, dict[str, Any]] = {}
    for call in message.tool_calls:
        if call["id"]:  # its answer is then compared first with answers to the same call
            archive.calls[call["id"]] = call_key(call["name"], call["args"])
        args = dict(call["args"])
        for name, value in call["args"].items():
            if isinstance(value, str):
                found = _archived(value, counter=counter, archive=archive, options=options)
                if found is not None:
                    args[name] = found.prompt_text
                    archived.append(found)
        calls.append(ToolCall(name=call["name"], args=args, id=call["id"], type="tool_call"))
        if args != call["args"] and call["id"]:
            replaced[call["id"]] = args
    if not archived:
        return message, []
    content = message.content
    if isinstance(content, list):  # Anthropic tool_use blocks repeat the arguments
        content = [
            {**b, "input": replaced[b["id"]]}
            if isinstance(b, dict) and b.get("type") == "tool_use" and b.get("id") in replaced
            else b
            for b in content
        ]
    extra = {k: v for k, v in message.additional_kwargs.items() if k != "tool_calls"}
    update = {"tool_calls": calls, "content": content, "additional_kwargs": extra}
    return message.model_copy(update=update), archived


def to_new_turn(
    message: BaseMessage,
    *,
    counter: TokenCounter,
    archive: Archive,
    options: IngestOptions,
) -> tuple[NewTurn, tuple[ArchivedOutput, ...]]:
    """Count a message; archive bulky tool output or call arguments and keep a digest.

    A tool result over the threshold (a string, or text blocks as MCP tools return:
    images and files in it are kept) and any string argument of a tool call over the
    threshold are archived byte-exact; the prompt copy holds digests in their place.

    Returns:
        The turn to store (original payload, plus the compact form if compressed) and
        the archived outputs to write in the same transaction.

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
    compact: BaseMessage = message
    archived: list[ArchivedOutput] = []
    # A recall result is the archive answering the model: compressing it again would
    # hide exactly what the model asked for.
    if isinstance(message, ToolMessage) and message.name != "recall":
        compact, archived = _compact_output(
            message, counter=counter, archive=archive, options=options
        )
    elif isinstance(message, AIMessage) and message.tool_calls:
        compact, archived = _compact_calls(
            message, counter=counter, archive=archive, options=options
        )
    if not archived:
        sent = counter.count_message(sanitize(message))  # as prompts send it
        return NewTurn(message.type, payload, sent, counter.name), ()
    compact_tokens = counter.count_message(sanitize(compact))
    # Fields are counted separately, so the original's count is the compact one with each
    # digest's count swapped for its original's (no second full tokenization).
    swapped = sum(p.record.tokens - p.record.digest_tokens for p in archived)
    turn = NewTurn(
        role=message.type,
        payload=payload,
        tokens=compact_tokens,
        counter=counter.name,
        compact=_dump(compact),
        raw_tokens=compact_tokens + max(0, swapped),
        ref=archived[0].ref,
    )
    return turn, tuple(archived)
