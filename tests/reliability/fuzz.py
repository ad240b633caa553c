"""Hostile inputs (hypothesis strategies) and the property each must keep.

Shared by the tests here and ``benchmarks/reliability.py``, which runs more examples.
Every input ends in a typed error (a ``ContextAtticError``) or a correct result, and a
refused ``add`` leaves the history as it was.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st
from langchain_core.messages import AIMessage, BaseMessage

from memory import ConversationMemory
from memory._errors import ContextAtticError

NASTY = [
    "\x00",
    "\ud800",
    "\udfff",
    "'; DROP TABLE turns; --",
    '" OR 1=1 --',
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/dev/null",
    "%s%n%x",
    "</archived>",
    '"a" OR *',
    "NEAR(",
    '"unbalanced',
    "\u202e\u200b\ufeff",
    "🧨" * 3,
]
any_char = st.characters(exclude_categories=())  # surrogates (Cs) and NUL included
hostile_text = st.one_of(
    st.text(any_char, max_size=300),
    st.lists(st.one_of(st.sampled_from(NASTY), st.text(any_char, max_size=5)), max_size=8).map(
        "".join
    ),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | hostile_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(hostile_text, inner, max_size=4),
    max_leaves=40,
)
_KEYS = [
    "role",
    "content",
    "type",
    "text",
    "tool_calls",
    "tool_call_id",
    "id",
    "function",
    "name",
    "arguments",
    "tool_use_id",
    "input",
    "is_error",
]
_ROLES = ["user", "assistant", "system", "tool", "human", "ai", "developer", "function", "x"]
_BLOCKS = ["text", "tool_use", "tool_result", "image_url", "image", "thinking", "bogus"]
_leaf = st.one_of(
    st.none(),
    st.integers(),
    hostile_text,
    st.sampled_from(_ROLES),
    st.sampled_from(_BLOCKS),
    st.just("{}"),
    st.just("{not json"),
)
_keys = st.sampled_from(_KEYS) | hostile_text
_nested = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)
_message = st.dictionaries(_keys, _nested, max_size=6)
malformed = st.one_of(_message, st.lists(st.one_of(_message, _nested), max_size=4))
"""Random dicts and lists shaped like OpenAI / Anthropic payloads, mostly wrong."""


@st.composite
def openai_messages(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Valid-shaped OpenAI messages whose every string is hostile."""
    messages: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["user", "assistant", "system", "tool"]))
        if kind != "tool":
            messages.append({"role": kind, "content": draw(hostile_text)})
            continue
        call_id = draw(hostile_text.filter(lambda s: s.strip() != ""))
        arguments = json.dumps(draw(st.dictionaries(hostile_text, json_values, max_size=3)))
        function = {"name": draw(hostile_text) or "f", "arguments": arguments}
        call = {"id": call_id, "type": "function", "function": function}
        messages.append({"role": "assistant", "content": draw(hostile_text), "tool_calls": [call]})
        output = draw(st.one_of(hostile_text, json_values.map(json.dumps)))
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    return messages


def _snapshot(mem: ConversationMemory) -> list[dict[str, Any]]:
    return [m.model_dump() for m in mem.history()]


def _as_json_keeps_it(content: Any) -> Any:
    # Turns are stored as JSON, which joins an escaped surrogate pair into one character.
    return json.loads(json.dumps(content))


def _same_content(stored: BaseMessage, sent: Any) -> bool:
    content = sent.get("content", stored.content) if isinstance(sent, dict) else sent.content
    return bool(stored.content == _as_json_keeps_it(content))


def add_or_refuse(mem: ConversationMemory, messages: Any, *, exact: bool = True) -> str:
    """Add ``messages``; check the outcome; return ``"stored"`` or ``"refused"``.

    Raises:
        AssertionError: a raw (untyped) exception escaped, a refused add changed the
            history, or a stored message is not what was sent.
    """
    before = _snapshot(mem)
    try:
        seqs = mem.add(messages)
    except ContextAtticError:
        assert _snapshot(mem) == before, "a refused add changed the history"
        return "refused"
    except Exception as exc:
        raise AssertionError(f"untyped {type(exc).__name__} escaped add: {exc!r}") from exc
    history = mem.history()
    assert len(history) == len(before) + len(seqs)
    assert [m.model_dump() for m in history[: len(before)]] == before
    sent = messages if isinstance(messages, list) else [messages]
    if exact and len(sent) == len(seqs):
        for stored, original in zip(history[len(before) :], sent, strict=True):
            assert _same_content(stored, original), "stored content differs from the input"
    check_pairs(history)
    return "stored"


def check_pairs(history: list[BaseMessage]) -> None:
    """Every tool result follows its call; the store never holds an orphan result."""
    issued: set[str] = set()
    for message in history:
        if isinstance(message, AIMessage):
            issued.update(str(c["id"]) for c in message.tool_calls)
        elif message.type == "tool":
            assert getattr(message, "tool_call_id", None) in issued, "orphan tool result"
