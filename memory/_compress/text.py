"""Digest plain text: the lead plus the most informative sentences, in original order.

A sentence is informative when its words are rare in the document (the mean
self-information of its distinct words), so boilerplate that repeats loses to the facts
that appear once. Line-oriented text (terminal output) is ranked line by line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

from memory._compress.base import Counter, Draft, DraftCompressor, clip, line_count, safe_count
from memory._compress.fit import head_tail, select_lines
from memory._compress.logs import IMPORTANT_LINE

__all__ = ["TextCompressor", "draft_text", "split_units"]

MAX_TEXT_CHARS = 2_000_000  # analysed in full; beyond, the head and the tail are
LEAD_UNITS = 3
_UNIT_CHARS = 400  # longer units are split so a giant line cannot starve the digest
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
_WORD = re.compile(r"[^\W_]{2,}", re.UNICODE)


def _pieces(unit: str) -> list[str]:
    pieces = []
    while len(unit) > _UNIT_CHARS:
        cut = unit.rfind(" ", _UNIT_CHARS // 2, _UNIT_CHARS)
        cut = cut + 1 if cut > 0 else _UNIT_CHARS
        pieces.append(unit[:cut])
        unit = unit[cut:]
    pieces.append(unit)
    return pieces


def split_units(text: str) -> list[str]:
    """Split text into sentences (prose) or lines (terminal output), dropping blanks."""
    lines = [line.rstrip() for line in text.split("\n")]
    filled = [line for line in lines if line.strip()]
    if not filled:
        return []
    ends = sum(1 for line in filled if line[-1:] in ".!?:")
    wordy = sum(1 for line in filled if line.lstrip()[:1].isalpha() and line.count(" ") >= 5)
    average = sum(len(line) for line in filled) / len(filled)
    prose = ends >= 0.4 * len(filled) or (average > 50 and wordy >= 0.6 * len(filled))
    units: list[str] = []
    if prose:
        for paragraph in re.split(r"\n\s*\n", text):
            flat = " ".join(paragraph.split())
            for sentence in _SENTENCE_END.split(flat) if flat else []:
                units.extend(_pieces(sentence))
    else:
        for line in filled:
            units.extend(_pieces(line))
    return units


def _scores(units: list[str]) -> list[float]:
    words_of = [dict.fromkeys(w.lower() for w in _WORD.findall(u)) for u in units]
    frequency: dict[str, int] = {}
    for words in words_of:
        for word in words:
            frequency[word] = frequency.get(word, 0) + 1
    total = max(1, len(units))
    # One logarithm per distinct word, not per occurrence: this is the hot loop.
    rarity = {word: math.log(total / count) for word, count in frequency.items()}
    scores = []
    for words in words_of:
        if not words:
            scores.append(0.0)
            continue
        information = sum(map(rarity.__getitem__, words)) / len(words)
        scores.append(information * min(1.0, len(words) / 8))
    return scores


_IMPORTANT_HINTS = (
    "err",
    "warn",
    "fatal",
    "crit",
    "fail",
    "panic",
    "severe",
    "traceback",
    "exception",
)


def _maybe_important(unit: str) -> bool:
    """``IMPORTANT_LINE.search``, skipped (cheaply) for units holding none of its words."""
    lowered = unit.lower()
    return any(h in lowered for h in _IMPORTANT_HINTS) and bool(IMPORTANT_LINE.search(unit))


def rank_units(units: list[str], pinned: Callable[[str], bool] | None = None) -> list[float]:
    """Rank units for :func:`select_lines`: lead, then errors and pinned units, then the rest.

    The rest is ranked by information, so rare facts beat repeated boilerplate.
    """
    scores = _scores(units)
    ranks = []
    for index, (unit, score) in enumerate(zip(units, scores, strict=True)):
        if index < LEAD_UNITS:
            ranks.append(-1e9 + index)
        elif _maybe_important(unit) or (pinned is not None and pinned(unit)):
            ranks.append(-1e6 + index)
        else:
            ranks.append(-score)
    return ranks


def _window(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    head, tail = text[: MAX_TEXT_CHARS * 3 // 4], text[-(MAX_TEXT_CHARS // 4) :]
    skipped = len(text) - len(head) - len(tail)
    return f"{head}\n\n[… {skipped:,} chars not analysed …]\n\n{tail}"


def draft_text(
    text: str,
    *,
    count: Counter,
    max_tokens: int,
    pinned: Callable[[str], bool] | None = None,
) -> Draft:
    """Make a text digest: the lead and the most informative sentences that fit.

    Args:
        text: The text.
        count: The token counter.
        max_tokens: The budget.
        pinned: Marks units to keep right after the lead (an HTML page's headings).
    """
    units = split_units(_window(text))
    if not units:
        body = head_tail(text, count=count, max_tokens=max_tokens)
        return Draft(body, 0, body == text, "text · no words")
    ranks = rank_units(units, pinned)
    body = select_lines(
        [clip(u, _UNIT_CHARS) for u in units],
        ranks,
        count=count,
        max_tokens=max_tokens,
        gap=lambda n: "[…]",
    )
    if safe_count(count, body) > max_tokens or not body.strip("[…]\n"):
        body = head_tail(text, count=count, max_tokens=max_tokens)
    lines = line_count(text)
    return Draft(body, lines, False, f"text · {lines:,} line{'s' * (lines != 1)}")


class TextCompressor(DraftCompressor):
    """Digest plain text (see :func:`draft_text`)."""

    kind = "text"
    draft = staticmethod(draft_text)
