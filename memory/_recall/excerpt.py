"""The part of a recalled line that answers the query, when the whole line does not fit.

A long message is recalled by its matching passage (``memory._recall.passages``), about
160 tokens. When even that does not fit the room left (a small budget's implicit recall
has 150 tokens, its wrapper included), the passage's sentences holding the most query
words are quoted instead, grown sentence by sentence while they fit, and marked as an
excerpt with ``…`` where text was left out. A line is cut only at sentence ends, never
inside a sentence, so an excerpt never misquotes a number or a name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

from stores.text_search import word_stems

__all__ = ["excerpt"]

PROSE_SHARE = 0.85
"""Only prose is cut into an excerpt: text whose characters are at least this share
letters and spaces. Code and file listings (an agent's observations: ``1374:    :param
kwargs:``) split badly at ``.`` and ``;``, and quoting a piece of one in every prompt was
billed uncached: on ``benchmarks/cost.py``'s SWE-agent runs at 4,000 tokens, katy-0 went
from 1.03x to 1.10x the raw history at 90% off."""
_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|(?<=[\u3002\uff01\uff1f\uff1b])\s*|\n+")
"""Where a sentence ends: ". " "! " "? " "; ", a line break, or a Chinese or Japanese full
stop, exclamation or question mark or semicolon (U+3002, U+FF01, U+FF1F, U+FF1B), which
take no space after them."""
_CJK_MARKS = frozenset(
    "\u3001\u3002\uff0c\uff01\uff1f\uff1b\uff1a\u300c\u300d\u300e\u300f\uff08\uff09"
)
"""Chinese and Japanese punctuation, prose's own (ideographic comma and full stop,
fullwidth comma, marks, colon, brackets and parentheses)."""
ELLIPSIS = "\u2026"


def excerpt(line: str, words: Collection[str], fits: Callable[[str], bool]) -> str | None:
    """The longest run of ``line``'s sentences around the one holding most of ``words``
    that ``fits``, labelled as an excerpt; None when the line is no passage of a long
    message in prose (a turn of its own, code, a listing), when no sentence holds a query
    word, or when the best one alone does not fit.

    Args:
        line: A recalled line, ``"speaker: text"`` or ``"speaker (part 2 of 9 of a long
            message): text"``.
        words: The query's words' stems, lower-cased (``stores.text_search.query_terms``
            with ``stemmed=True``): a sentence holds a word of the same stem.
        fits: Whether a candidate line fits the room left (counted by the caller).
    """
    head, colon, body = line.partition(": ")
    if not colon or not head.endswith(" of a long message)") or not _prose(body):
        return None  # a passage of a long message (a pasted report), in prose
    sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
    wanted = set(words)
    scores = [len(wanted & word_stems(s)) for s in sentences]
    if len(sentences) < 2 or max(scores) == 0:
        return None
    best = max(range(len(sentences)), key=lambda i: (scores[i], -i))
    label = f"{head[:-1]}, excerpt)" if head.endswith(")") else f"{head} (excerpt)"

    def render(low: int, high: int) -> str:
        before = f"{ELLIPSIS} " if low > 0 else ""
        after = f" {ELLIPSIS}" if high < len(sentences) else ""
        return f"{label}: {before}{' '.join(sentences[low:high])}{after}"

    low, high = best, best + 1
    if not fits(render(low, high)):
        return None
    while True:  # grow towards the better-matching neighbour first, the later on ties
        options = []
        if high < len(sentences):
            options.append((scores[high], 1, low, high + 1))
        if low > 0:
            options.append((scores[low - 1], 0, low - 1, high))
        grown = next(
            ((lo, hi) for *_, lo, hi in sorted(options, reverse=True) if fits(render(lo, hi))), None
        )
        if grown is None:
            return render(low, high)
        low, high = grown


def _prose(text: str) -> bool:
    """Whether ``text`` reads as prose (``PROSE_SHARE`` letters, spaces and CJK
    punctuation)."""
    plain = sum(1 for c in text if c.isalpha() or c.isspace() or c in _CJK_MARKS)
    return bool(text) and plain >= PROSE_SHARE * len(text)
