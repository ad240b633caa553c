"""Normalize OpenAI, Anthropic and LangChain messages; group tool calls into exchanges.

Every input form becomes a LangChain message through langchain-core's own converters.
Anthropic dicts are routed through ``convert_to_openai_messages`` first: on its own,
``convert_to_messages`` keeps ``tool_use`` / ``tool_result`` blocks as plain content, while
the OpenAI route turns them into real ``tool_calls`` and ``ToolMessage`` objects.

An *exchange* is the unit that is kept or evicted whole: a single message, or an AI message
with tool calls together with all of its tool results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeAlias

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    convert_to_messages,
    convert_to_openai_messages,
    messages_from_dict,
)

from memory._arguments import check_dict, keep_arguments
from memory._errors import InputError
from memory._timestamps import carry_time
from memory._wire import check_identifiers

__all__ = [
    "Exchange",
    "ExchangeBuilder",
    "MessageLike",
    "Turn",
    "kind_of",
    "normalize",
]

MessageLike: TypeAlias = BaseMessage | Mapping[str, Any]

KNOWN_BLOCK_TYPES = frozenset(
    {
        "text",
        "image_url",
        "image",
        "input_image",
        "input_audio",
        "audio",
        "file",
        "document",
        "tool_use",
        "tool_result",
        "thinking",
        "redacted_thinking",
        "reasoning",
        "non_standard",
    }
)
_ANTHROPIC_BLOCKS = frozenset({"tool_use", "tool_result"})
_KINDS = (HumanMessage, AIMessage, SystemMessage, ToolMessage)


def normalize(messages: MessageLike | Sequence[MessageLike]) -> list[BaseMessage]:
    """Turn one message or a list of messages of any supported form into LangChain messages.

    Args:
        messages: LangChain messages, OpenAI chat dicts (with ``tool_calls`` and
            ``role: "tool"``) or Anthropic dicts (content blocks with ``tool_use`` /
            ``tool_result``); one or many.

    Returns:
        The messages as ``HumanMessage``, ``AIMessage``, ``SystemMessage`` or
        ``ToolMessage``; an Anthropic user turn holding several tool results becomes
        several ``ToolMessage`` objects.

    Raises:
        InputError: a message has an unknown role, a dict's ``tool_calls`` whose arguments
            are not JSON, a tool result without a call id, or content that is neither
            text nor known blocks. The error names the index of the offending input
            message. (A LangChain ``AIMessage`` with ``invalid_tool_calls``, as a model
            returns a malformed call, is accepted and kept as it is.)
    """
    if isinstance(messages, BaseMessage | Mapping):
        messages = [messages]
    if isinstance(messages, str | bytes):
        raise InputError("expected a message or a list of messages, not a bare string")
    if not isinstance(messages, Sequence):
        raise InputError(f"expected a message or a list of messages, not {type(messages).__name__}")
    normalized: list[BaseMessage] = []
    for index, message in enumerate(messages):
        for converted in _convert_one(message, index):
            _validate(converted, index)
            normalized.append(carry_time(converted, message, index))
    return normalized


def _convert_one(message: Any, index: int) -> list[BaseMessage]:
    if not isinstance(message, BaseMessage | Mapping):
        raise InputError(
            f"expected a LangChain message or a dict, got {type(message).__name__}", index=index
        )
    try:
        if _has_anthropic_blocks(message):
            converted = convert_to_messages(convert_to_openai_messages([message]))
            # A user turn's tool results answer the call before it: they come first,
            # then the user's text, as in the original message and as OpenAI requires.
            results = [m for m in converted if isinstance(m, ToolMessage)]
            return results + [m for m in converted if not isinstance(m, ToolMessage)]
        if isinstance(message, BaseMessage):
            if isinstance(message, ChatMessage):
                return convert_to_messages(convert_to_openai_messages([message]))
            return [message]
        check_dict(message, index)  # content of a wrong type, tool_calls not a list
        return [keep_arguments(m, message) for m in convert_to_messages([dict(message)])]
    except InputError:
        raise
    except RecursionError as exc:
        raise InputError("message is nested too deeply to read", index=index) from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"tool call arguments are not valid JSON ({exc})", index=index) from exc
    except KeyError as exc:  # a tool call's "id", a tool result's "tool_call_id"...
        raise InputError(f"cannot read this message: no {exc} field", index=index) from exc
    except (ValueError, TypeError, AttributeError) as exc:  # first line: no help links
        why = (str(exc) or repr(exc)).splitlines()[0]
        raise InputError(f"cannot read this message: {why}", index=index) from exc


def _has_anthropic_blocks(message: BaseMessage | Mapping[str, Any]) -> bool:
    content = message.content if isinstance(message, BaseMessage) else message.get("content")
    if not isinstance(content, list):
        return False
    return any(isinstance(b, Mapping) and b.get("type") in _ANTHROPIC_BLOCKS for b in content)


def _validate(message: BaseMessage, index: int) -> None:
    if not isinstance(message, _KINDS):
        raise InputError(
            f"unsupported message type {type(message).__name__}; use user, assistant, "
            "system or tool messages",
            index=index,
        )
    _validate_content(message.content, index)
    if isinstance(message, AIMessage):
        # A model's malformed call (``invalid_tool_calls``) is kept as LangChain keeps it:
        # the run goes on, and prompts show it as text (see ``memory._context.sanitize``).
        for call in message.tool_calls:
            if not call.get("id"):
                raise InputError(f"tool call {call.get('name')!r} has no id", index=index)
    if isinstance(message, ToolMessage) and not message.tool_call_id:
        raise InputError("tool result has no tool_call_id", index=index)
    check_identifiers(message, index)


def _validate_content(content: Any, index: int) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise InputError(
            f"content must be text or a list of blocks, not {type(content).__name__}",
            index=index,
        )
    for block in content:
        if isinstance(block, str):
            continue
        kind = block.get("type") if isinstance(block, Mapping) else None
        if kind not in KNOWN_BLOCK_TYPES:
            raise InputError(
                f"content block of unknown type {kind!r}; known types: "
                + ", ".join(sorted(KNOWN_BLOCK_TYPES)),
                index=index,
            )


_CHUNK_KINDS = {
    "HumanMessageChunk": "human",
    "AIMessageChunk": "ai",
    "ToolMessageChunk": "tool",
    "SystemMessageChunk": "system",
}


def kind_of(message_type: str) -> str:
    """The turn kind of a stored message type (a chunk's type names its message's kind)."""
    return _CHUNK_KINDS.get(message_type, message_type)


class Turn:
    """One stored message as prompts send it, with its position and token count.

    ``raw_tokens`` counts the original when the message was compacted (a tool output
    replaced by its digest, archived under ``ref``); otherwise it equals ``tokens``.
    ``kind`` is ``"human"``, ``"ai"``, ``"tool"``, ``"system"`` (or the message's type);
    ``calls`` the ids of the tool calls it issues; ``result_for`` the call it answers.
    A turn read back from a store (``Turn.stored``) builds its LangChain message on first
    use: reopening a long session groups and indexes turns without building them all.
    Treat turns as read-only.
    """

    __slots__ = (
        "_content",
        "_message",
        "_name",
        "_stored",
        "at",
        "calls",
        "kind",
        "raw_tokens",
        "ref",
        "result_for",
        "seq",
        "tokens",
    )

    def __init__(
        self,
        seq: int,
        message: BaseMessage,
        tokens: int,
        raw_tokens: int | None = None,
        ref: str | None = None,
        at: float | None = None,
    ) -> None:
        self.seq, self.tokens, self.raw_tokens, self.ref, self.at = seq, tokens, raw_tokens, ref, at
        self._message: BaseMessage | None = message
        self._stored: str | None = None
        self._content: str | list[Any] = ""
        self._name: str | None = None
        self.kind = kind_of(message.type)
        self.calls = (
            tuple(str(c["id"]) for c in message.tool_calls)
            if isinstance(message, AIMessage)
            else ()
        )
        self.result_for = message.tool_call_id if isinstance(message, ToolMessage) else None

    @classmethod
    def stored(
        cls,
        seq: int,
        payload: str,
        tokens: int,
        raw_tokens: int | None = None,
        ref: str | None = None,
        at: float | None = None,
    ) -> Turn:
        """A turn from a stored message (JSON of ``{"type": ..., "data": {...}}``, as
        ``messages_to_dict`` writes it), its message built when first used."""
        data = json.loads(payload)
        turn = cls.__new__(cls)
        turn.seq, turn.tokens, turn.raw_tokens, turn.ref, turn.at = seq, tokens, raw_tokens, ref, at
        turn._message, turn._stored = None, payload  # a string: nothing for the GC to walk
        body = data.get("data") or {}
        kind = str(data.get("type"))
        turn.kind = kind_of(kind)
        calls = body.get("tool_calls") or () if turn.kind == "ai" else ()
        turn.calls = tuple(str(c["id"]) for c in calls)
        result_for = body.get("tool_call_id") if turn.kind == "tool" else None
        turn.result_for = None if result_for is None else str(result_for)
        turn._content, turn._name = body.get("content", ""), body.get("name")
        return turn

    @property
    def message(self) -> BaseMessage:
        """The LangChain message (built from the stored JSON on first use)."""
        message = self._message
        if message is None:  # two threads may both build it: same value, either one kept
            (message,) = messages_from_dict([json.loads(self._stored or "{}")])
            self._message = message
        return message

    def text_parts(self) -> tuple[str | list[Any], str | None]:
        """Return the message's ``content`` and ``name`` without building the message."""
        if self._message is None:
            return self._content, self._name
        return self._message.content, self._message.name

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Turn):
            return NotImplemented
        mine = (self.seq, self.tokens, self.raw_tokens, self.ref, self.message)
        return mine == (other.seq, other.tokens, other.raw_tokens, other.ref, other.message)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Turn(seq={self.seq}, kind={self.kind!r}, tokens={self.tokens}, "
            f"raw_tokens={self.raw_tokens}, ref={self.ref!r})"
        )


@dataclass(frozen=True, slots=True)
class Exchange:
    """Messages kept or evicted together: one message, or a tool call with its results."""

    turns: tuple[Turn, ...]
    open_calls: frozenset[str] = field(default_factory=frozenset)
    tokens: int = field(init=False)
    """Total counted tokens of the exchange's messages (computed once)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "tokens", sum(t.tokens for t in self.turns))

    @property
    def first_seq(self) -> int:
        """Sequence number of the exchange's first message."""
        return self.turns[0].seq

    @property
    def complete(self) -> bool:
        """True when every tool call of the exchange has its result."""
        return not self.open_calls

    @property
    def is_user_turn(self) -> bool:
        """True when the exchange is a user's message."""
        return self.turns[0].kind == "human"

    @property
    def messages(self) -> list[BaseMessage]:
        """The exchange's messages, the tool call first."""
        return [t.message for t in self.turns]


class ExchangeBuilder:
    """Group turns into exchanges incrementally, as they are appended."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self._by_call: dict[str, int] = {}

    def extend(self, turns: Iterable[Turn]) -> None:
        """Append turns in order; a tool result joins the exchange that issued its call."""
        for turn in turns:
            self._append(turn)

    def _append(self, turn: Turn) -> None:
        if turn.result_for is not None and turn.result_for in self._by_call:
            position = self._by_call.pop(turn.result_for)
            owner = self.exchanges[position]
            self.exchanges[position] = replace(
                owner,
                turns=(*owner.turns, turn),
                open_calls=owner.open_calls - {turn.result_for},
            )
            return
        calls = frozenset(turn.calls)
        self.exchanges.append(Exchange(turns=(turn,), open_calls=calls))
        for call_id in calls:
            self._by_call[call_id] = len(self.exchanges) - 1

    @property
    def open_calls(self) -> frozenset[str]:
        """Ids of tool calls that have no result yet."""
        return frozenset(self._by_call)
