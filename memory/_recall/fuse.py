"""How ranked lists meet: exact phrases, segments' strength, and turns alternating with
archived chunks."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Protocol, TypeVar

import numpy as np

from stores.base import ChunkRecord

__all__ = [
    "MIN_EXACT_WORD",
    "QUESTION_PENALTY",
    "SEGMENT_BOOST",
    "alternate",
    "asks_only",
    "demote_questions",
    "exact_matches",
    "interleave",
    "phrase_pattern",
    "segment_strength",
]

MIN_EXACT_WORD = 6
"""A one-word query counts as a phrase when it is this long (an id, a rare name)."""
SEGMENT_BOOST = 0.4
"""Times the mean score of a segment's best turns, added to each of its turns."""
SEGMENT_TOP = 2
QUESTION_PENALTY = 1.0
"""Taken off the score of a turn that only asks (``asks_only``), in z-score units: a
question holds no fact to recall, and one asked before resembles the query more than its
answer does (LoCoMo dev: 1.1% of turns only ask, 0.2% of the evidence turns do)."""
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"\w+", re.UNICODE)
_T = TypeVar("_T")
_U = TypeVar("_U")


def phrase_pattern(query: str) -> re.Pattern[str] | None:
    """The query's words in order, punctuation and case aside, not inside a longer word
    ("file_17" is not in "file_170"; a CJK run has no word edges); None for no phrase."""
    words = _WORD.findall(query)
    if not words or (len(words) == 1 and len(words[0]) < MIN_EXACT_WORD):
        return None  # one short word is no phrase; BM25 ranks it
    body = r"\W+".join(re.escape(w) for w in words)
    return re.compile(rf"(?<![A-Za-z0-9]){body}(?![A-Za-z0-9])", re.IGNORECASE)


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


def alternate(first: Sequence[_T], second: Sequence[_U]) -> Iterator[_T | _U]:
    """Alternate two ranked lists, best of each first (an equal-weight rank fusion),
    one item at a time: a reader that stops early pays only for what it read."""
    for position in range(max(len(first), len(second))):
        if position < len(first):
            yield first[position]
        if position < len(second):
            yield second[position]


def interleave(first: Sequence[_T], second: Sequence[_U]) -> list[_T | _U]:
    """``alternate``'s items in a list."""
    return list(alternate(first, second))


def segment_strength(
    seqs: np.typing.NDArray[np.int64],
    scores: np.typing.NDArray[np.float64],
    starts: np.typing.NDArray[np.int64],
) -> np.typing.NDArray[np.float64]:
    """For each turn, the mean score of the best ``SEGMENT_TOP`` turns of its segment."""
    if len(seqs) == 0:
        return np.zeros(0, dtype=np.float64)
    segment = np.searchsorted(starts, seqs, side="right")
    order = np.lexsort((-scores, segment))
    sorted_segments, sorted_scores = segment[order], scores[order]
    labels, first = np.unique(sorted_segments, return_index=True)
    if len(labels) < 2:
        # One segment lifts every turn alike: the order stays, only the floor would move.
        return np.zeros(len(seqs), dtype=np.float64)
    counts = np.diff(np.append(first, len(order)))
    take = np.minimum(counts, SEGMENT_TOP)
    running = np.concatenate([[0.0], np.cumsum(sorted_scores)])
    top = (running[first + take] - running[first]) / take
    return np.asarray(top[np.searchsorted(labels, segment)], dtype=np.float64)


def asks_only(text: str) -> bool:
    """Whether every sentence of ``text`` (a turn's text without its speaker) is a
    question: "How many boxes was order #2?", not "I moved. Have you been?"."""
    sentences = [s for s in _SENTENCE_END.split(text.strip()) if s]
    return bool(sentences) and all(s.endswith("?") for s in sentences)


class _Scored(Protocol):
    @property
    def seq(self) -> int: ...
    @property
    def score(self) -> float: ...


_S = TypeVar("_S", bound=_Scored)


def demote_questions(
    ranked: Sequence[_S], text_of: Callable[[int], str | None], top: int
) -> list[_S]:
    """``ranked`` (best first) again, the turns among its first ``top`` that only ask
    placed as if ``QUESTION_PENALTY`` were off their score (ties keep their order):
    what states something comes first. ``text_of(seq)`` gives a turn's text without
    its speaker (None: not a text turn); only the first ``top`` are read."""
    asking = {
        r.seq for r in ranked[:top] if (text := text_of(r.seq)) is not None and asks_only(text)
    }
    if not asking:
        return list(ranked)
    return sorted(ranked, key=lambda r: -(r.score - QUESTION_PENALTY * (r.seq in asking)))
