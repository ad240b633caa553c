"""Narrow a quoted archive hit to the lines that match a query.

A recalled chunk of a log or a listing is quoted by the lines holding the query's
(rarest) words, each with a line around it, or the whole indented block or Python
traceback it sits in when that is short; a chunk of minified JSON (one line) by the
records holding them (``memory._records``); gaps are marked "…".
"""

from __future__ import annotations

import re
import unicodedata

from memory._records import records_of
from stores.text_search import query_terms, stem, word_pattern, word_stems

__all__ = [
    "FOCUS_CONTEXT_LINES",
    "MAX_BLOCK_LINES",
    "QUOTE_WORDS",
    "RARE_LINES",
    "block_around",
    "focus",
    "focused",
    "holds_a_word",
    "quotes",
]

FOCUS_CONTEXT_LINES = 1
"""Lines kept around each matching line when a hit is narrowed to its matching lines."""
MAX_BLOCK_LINES = 24
"""A matching line inside an indented block (a JSON object, a function) or a Python
traceback brings its whole block when that is at most this many lines: an order's id
comes with its matching note, a stack with its error."""
QUOTE_WORDS = 6
"""Fewest words in a row of a hit a query must hold to quote it (``quotes``): then the hit
comes back whole. Narrowed to the lines of the quote's rarest words, the 30-token spans of
``benchmarks/tool_outputs.py`` (the query their first 12 words) came back 751 times of 920;
with a quote's hit whole, 851 (866 with no hit narrowed at all)."""
_WORD = re.compile(r"\w+")
RARE_LINES = 5
"""When the query's rarest word in a hit is on at most this many lines, the hit is
narrowed to the lines of its rarest words (those on at most twice as many lines):
"the note zebra-7781" picks zebra's line, not every line holding "note"."""


def focus(text: str, query: str) -> str:
    """Narrow a hit to the lines holding the query's words (and a line around each),
    gaps marked "…"; the whole text when no line, or most lines, match, or when the query
    quotes it (``quotes``)."""
    return focused(text, query)[0]


def focused(text: str, query: str) -> tuple[str, int, int]:
    """``focus``'s text, and the first and last line kept (0-based, in ``text``)."""
    terms = query_terms(query)
    last_line = text.count("\n")
    if not terms or quotes(text, query):
        return text, 0, last_line
    lines = text.split("\n")
    if len(lines) == 1 and (records := records_of(text)) is not None:
        return _focused_records(records, terms), 0, 0
    matching = _matching_lines(lines, terms)
    if not matching or 2 * len(matching) > len(lines):
        return text, 0, last_line
    keep = sorted({j for i in matching for j in block_around(lines, i)})
    return "\n".join(_with_gaps(lines, keep, "…")), keep[0], keep[-1]


def _with_gaps(pieces: list[str], keep: list[int], gap: str) -> list[str]:
    """The pieces at ``keep`` (ascending), with ``gap`` wherever pieces are left out."""
    out: list[str] = []
    for position, j in enumerate(keep):
        if (position == 0 and j > 0) or (position and j != keep[position - 1] + 1):
            out.append(gap)
        out.append(pieces[j])
    if keep[-1] < len(pieces) - 1:
        out.append(gap)
    return out


def quotes(text: str, query: str) -> bool:
    """Whether ``query`` quotes ``text``: ``QUOTE_WORDS`` of its words in a row are words in
    a row of ``text`` (compared lowercase; the query's first and last words may be cut
    mid-word and are left out; a quote may run on into the next chunk). A query that
    quotes is reading the original, not looking something up in it."""
    words = _WORD.findall(query.lower())[1:-1]
    if len(words) < QUOTE_WORDS:
        return False
    held = f" {' '.join(_WORD.findall(text.lower()))} "
    return any(
        f" {' '.join(words[i : i + QUOTE_WORDS])} " in held
        for i in range(len(words) - QUOTE_WORDS + 1)
    )


def _focused_records(records: list[str], terms: list[str]) -> str:
    """One line of minified JSON narrowed to the records holding the query's words, as
    lines are (``_matching_lines``), gaps marked "…"; the whole line when none, or most,
    match."""
    matching = _matching_lines(records, terms)
    if not matching or 2 * len(matching) > len(records):
        return "".join(records)
    return "".join(_with_gaps(records, matching, "… ")).rstrip(" ")


def _matching_lines(lines: list[str], terms: list[str]) -> list[int]:
    """The lines holding the query's rare words (``RARE_LINES``), else any of its words."""
    found: dict[str, list[int]] = {}
    for term in terms:
        pattern = word_pattern(term)
        found[term] = [i for i, line in enumerate(lines) if pattern.search(line)]
    counts = [len(at) for at in found.values() if at]
    rarest = min(counts, default=0)
    if 0 < rarest <= RARE_LINES:  # the rarest words, and those nearly as rare
        return sorted({i for at in found.values() if 0 < len(at) <= 2 * rarest for i in at})
    return sorted({i for at in found.values() for i in at})


def block_around(lines: list[str], i: int) -> range:
    """The lines to quote for matching line ``i``: its Python traceback, or the indented
    block it is in (opener to closer), when that is at most ``MAX_BLOCK_LINES`` lines;
    else the line and ``FOCUS_CONTEXT_LINES`` on each side."""
    near = range(max(i - FOCUS_CONTEXT_LINES, 0), min(i + FOCUS_CONTEXT_LINES + 1, len(lines)))
    for found in (_traceback_around(lines, i), _indented_block(lines, i)):
        if found is not None and len(found) <= MAX_BLOCK_LINES:
            return range(min(found.start, near.start), max(found.stop, near.stop))
    return near


def _indent(line: str) -> int | None:
    return None if not line.strip() else len(line) - len(line.lstrip())


def _indented_block(lines: list[str], i: int) -> range | None:
    """From the nearest line above ``i`` indented less (its opener) to the first line
    below indented less (its closer); None at the top level (a log's lines)."""
    depth = _indent(lines[i])
    if not depth:
        return None
    opener = next((j for j in range(i - 1, -1, -1) if (_indent(lines[j]) or 0) < depth
                   and lines[j].strip()), None)  # fmt: skip
    closer = next((k for k in range(i + 1, len(lines)) if lines[k].strip()
                   and (_indent(lines[k]) or 0) < depth), len(lines) - 1)  # fmt: skip
    return None if opener is None else range(opener, closer + 1)


def _traceback_around(lines: list[str], i: int) -> range | None:
    """The Python traceback holding line ``i`` ("Traceback (most recent call last):" to
    its unindented exception line), or None."""
    start = next((j for j in range(i, max(i - MAX_BLOCK_LINES, -1), -1)
                  if lines[j].startswith("Traceback (most recent call last)")), None)  # fmt: skip
    if start is None:
        return None
    end = next((k for k in range(start + 1, len(lines)) if lines[k].strip()
                and not lines[k][0].isspace()), None)  # fmt: skip
    return None if end is None or end < i else range(start, end + 1)


def holds_a_word(text: str, query: str) -> bool:
    """Whether ``text`` holds one of the query's words (True for a query of none), their
    diacritics aside, as the full-text index folds them ("zurich" is in "Zürich"), or a
    word of the same stem, as the turn index reads them ("painting" for "paint",
    ``stores.text_search.stem``)."""
    terms = query_terms(query)
    if not terms:
        return True
    if not (text.isascii() and all(t.isascii() for t in terms)):
        text, terms = _folded(text), [_folded(t) for t in terms]
    if any(word_pattern(term).search(text) for term in terms):
        return True
    stems = word_stems(text)
    return any(stem(term) in stems for term in terms)


def _folded(text: str) -> str:
    """``text`` without its combining marks (diacritics): "Zürich" is "Zurich"."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
