"""Count a text line by line, each line's tokens remembered: exact for tiktoken.

A prompt's long texts are made of lines that recur from call to call: a recall block is
the turns the packing counted one by one a moment before, the running summary's lines
stay while its header's count of left-out messages moves. Encoding such a block again
costs ~0.9 ms for 2,000 tokens; adding up remembered lines costs a few microseconds.

The sum is exact, not an estimate, because tiktoken cuts text into pieces with a
regular expression before byte-pair encoding each piece alone, and no piece spans a
newline that has a printable ASCII character on each side ("x\\ny"). In the patterns of
``cl100k_base`` and ``o200k_base`` (tiktoken's ``openai_public.py``), a newline belongs
to a run of whitespace (``\\s*[\\r\\n]+``, ``\\s+(?!\\S)``, ``\\s+``) or ends a run of
punctuation (``[^\\s\\p{L}\\p{N}]+[\\r\\n]*``; ``o200k_base`` lets a ``/`` follow: so the
character after the newline is never ``/``), and no pattern reads past a newline into a
letter, digit or sign. A newline after a non-space character is a whole run, matched the
same whether the text ends there or goes on. So ``count(a + b) == count(a) + count(b)``
when ``a`` ends with such a newline and ``b`` starts with such a character
(``tests/memory/test_line_counts.py`` checks it against whole-text encoding, with
hypothesis, for both encodings).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["MAX_LINE", "MAX_LINES", "MAX_TEXT", "LineCounts"]

_ENDS = "".join(map(chr, range(0x21, 0x7F)))
"""A line is cut after a newline that follows one of these (printable ASCII, no space)..."""
_STARTS = _ENDS.replace("/", "")
"""... and comes before one of these (see the module docs)."""
MAX_LINES = 8_192
"""Lines remembered (all forgotten when full): a recall block of 2,000 tokens has ~70."""
MAX_LINE = 2_048
"""Longest line remembered, in characters; longer ones are counted each time."""
MAX_TEXT = 65_536
"""Longest text counted line by line, in characters; a longer one (a tool output) is
encoded whole: its thousands of lines would crowd out the lines that recur."""


class LineCounts:
    """Count texts as the sum of their lines, each line counted once by ``count_text``.

    Args:
        count_text: Counts a piece of text; must be additive over the cuts described in
            the module docs (tiktoken's ``cl100k_base`` and ``o200k_base`` are).
    """

    def __init__(self, count_text: Callable[[str], int]) -> None:
        self._count_text = count_text
        self._known: dict[str, int] = {}

    def count(self, text: str) -> int:
        """Count ``text``: remembered lines added up, the others counted (and kept)."""
        if len(text) > MAX_TEXT:
            return self._count_text(text)
        known = self._known
        total = 0
        for line in _lines(text):
            tokens = known.get(line)
            if tokens is None:
                tokens = self._count_text(line)
                if len(line) <= MAX_LINE:
                    if len(known) >= MAX_LINES:
                        known.clear()  # (a race with another thread only loses entries)
                    known[line] = tokens
            total += tokens
        return total


def _lines(text: str) -> list[str]:
    """``text`` cut where the module docs say a count adds up; each line keeps its
    newline. (``str.split`` and a look at each end: a regular expression that looks
    both ways is ten times slower on a 15,000-character block.)"""
    if "\n" not in text:
        return [text]
    parts = text.split("\n")
    lines: list[str] = []
    held = parts[0]
    for part in parts[1:]:
        if held and part and held[-1] in _ENDS and part[0] in _STARTS:
            lines.append(held + "\n")
            held = part
        else:
            held += "\n" + part
    lines.append(held)
    return lines
