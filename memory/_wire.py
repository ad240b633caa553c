"""Prompt dicts every JSON encoder and HTTP client can send: text that encodes as UTF-8.

Python strings may hold lone surrogates (half of a UTF-16 pair, e.g. from a bad decode);
a message keeps them as stored, but ``json.dumps(..., ensure_ascii=False).encode()``
fails on them and a provider refuses the escaped form. ``Prompt.to_openai`` and
``to_anthropic`` send each one as ``?``, which is what the token counter counts in its
place (``memory._tokens``: UTF-8 encoding with ``errors="replace"``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["sendable"]


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
