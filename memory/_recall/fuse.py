"""How ranked lists meet: exact phrases, and turns alternating with archived chunks."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from stores.base import ChunkRecord

__all__ = ["MIN_EXACT_WORD", "exact_matches", "interleave", "phrase_pattern"]

MIN_EXACT_WORD = 6
"""A one-word query counts as a phrase when it is this long (an id, a rare name)."""
_WORD = re.compile(r"\w+", re.UNICODE)
_T = TypeVar("_T")
_U = TypeVar("_U")


def phrase_pattern(query: str) -> re.Pattern[str] | None:
    """The query's words in order, punctuation and case aside; None for no phrase."""
    words = _WORD.findall(query)
    if not words or (len(words) == 1 and len(words[0]) < MIN_EXACT_WORD):
        return None  # one short word is no phrase; BM25 ranks it
    return re.compile(r"\W+".join(re.escape(w) for w in words), re.IGNORECASE)


def exact_matches(query: str, chunks: list[ChunkRecord]) -> list[int]:
    """Ids of chunks where the query's words occur in order (punctuation and case aside).

    A phrase that straddles two chunks is found in their joined text and credited to the
    chunk where it starts.
    """
    pattern = phrase_pattern(query)
    if pattern is None:
        return []
    found: list[int] = []
    for position, record in enumerate(chunks):
        following = chunks[position + 1] if position + 1 < len(chunks) else None
        joined = record.text
        if (
            following is not None
            and following.ref == record.ref
            and following.idx == record.idx + 1
        ):
            joined += following.text
        match = pattern.search(joined)
        if match is not None and match.start() < len(record.text):
            found.append(record.id)
    return found


def interleave(first: Sequence[_T], second: Sequence[_U]) -> list[_T | _U]:
    """Alternate two ranked lists, best of each first (an equal-weight rank fusion)."""
    merged: list[_T | _U] = []
    for position in range(max(len(first), len(second))):
        if position < len(first):
            merged.append(first[position])
        if position < len(second):
            merged.append(second[position])
    return merged
