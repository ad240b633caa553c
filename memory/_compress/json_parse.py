"""Parse JSON leniently: a truncated document (a tool that cut its output) is repaired.

The open brackets are closed at the last complete value; text after the JSON value (an
``npm warn`` line) is kept apart.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_PARSE_CHARS", "ParsedJSON", "parse_lenient", "repair_truncated"]

MAX_PARSE_CHARS = 2_000_000  # beyond this only a prefix is parsed (repaired as truncated)
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|["\[\]{},]')
_CLOSER = {"{": "}", "[": "]"}


@dataclass(frozen=True, slots=True)
class ParsedJSON:
    """A leniently parsed JSON document.

    Attributes:
        value: The decoded value.
        end: Offset in the input where the JSON (or its repaired prefix) stops.
        repaired: Whether brackets were closed to make a truncated prefix parse.
        trailing: Text after the JSON value, stripped.
    """

    value: Any
    end: int
    repaired: bool
    trailing: str


def repair_truncated(text: str) -> str | None:
    """Close the open brackets of a truncated JSON prefix at its last complete value.

    Returns:
        The repaired JSON text, or ``None`` when brackets do not match.
    """
    stack: list[str] = []
    safe_end, safe_closers = -1, ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token == '"':
            break  # an unterminated string: the text was cut inside it
        if token in "[{":
            stack.append(_CLOSER[token])
            safe_end, safe_closers = match.end(), "".join(reversed(stack))
        elif token in "]}":
            if not stack or stack.pop() != token:
                return None
            safe_end, safe_closers = match.end(), "".join(reversed(stack))
            if not stack:
                return text[:safe_end]
        elif token == ",":
            safe_end, safe_closers = match.start(), "".join(reversed(stack))
    if safe_end < 0:
        return None
    return text[:safe_end] + safe_closers


def parse_lenient(text: str) -> ParsedJSON:
    """Parse the JSON value at the start of ``text``, repairing truncation.

    Raises:
        ValueError: ``text`` does not start with a JSON object or array.
    """
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] not in ("{", "["):
        raise ValueError("not a JSON object or array")
    window = text[: start + MAX_PARSE_CHARS]
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(window, start)
        return ParsedJSON(value, end, False, text[end:].strip())
    except json.JSONDecodeError as exc:
        error_at = exc.pos
        # Only a document cut short is repaired; a syntax error mid-way is not JSON.
        at_end = error_at >= len(window.rstrip()) or exc.msg.startswith("Unterminated string")
        if not at_end:
            raise ValueError(f"invalid JSON at char {error_at}: {exc.msg}") from None
    fixed = repair_truncated(window[start:error_at])
    if fixed is None:
        raise ValueError("JSON could not be repaired")
    value = json.loads(fixed)
    if not isinstance(value, (dict, list)):
        raise ValueError("not a JSON object or array")
    return ParsedJSON(value, error_at, True, text[error_at:].strip())
