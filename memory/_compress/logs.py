"""Digest logs: every error kept, repeats collapsed, head and tail shown.

Lines are normalised (digits, hex, timestamps masked) to find repeated templates; runs of
similar lines collapse to one line with a count. Every line that mentions an error,
warning or failure, and every Python traceback block, is kept whole; the rest is filled
in by rarity until the budget is spent.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
from dataclasses import dataclass

from memory._compress.base import Counter, Draft, DraftCompressor, clip
from memory._compress.fit import select_lines

__all__ = ["IMPORTANT_LINE", "LogCompressor", "draft_log", "important_lines"]

IMPORTANT_LINE = re.compile(
    r"\b(?:ERROR|ERRORS|ERR!?|WARN(?:ING)?|FATAL|CRITICAL|FAIL(?:ED|URE|S)?|PANIC|SEVERE)\b"
    r"|Traceback \(most recent call last\)|(?:Error|Exception):"
    r"|^\s*(?:error|warning|fatal|failed)\b|\b(?:error|warning)(?:\[\w+\])?:"
)
"""Matches a log line that must survive any digest (errors, warnings, failures)."""

MAX_LINES = 50_000  # lines analysed in full; beyond, the middle is only scanned for errors
HEAD_LINES = 8
TAIL_LINES = 8
_MASK = re.compile(
    r"\d{4}-\d\d-\d\d[T ]+\d\d:\d\d(?::\d\d)?(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
    r"|0x[0-9a-fA-F]+|\b[0-9a-f]{7,64}\b|\d+"
)
_TIMESTAMP = re.compile(
    r"\d{4}-\d\d-\d\d[T ]+\d\d:\d\d:\d\d"
    r"|\b[A-Z][a-z]{2} +\d{1,2} \d\d:\d\d:\d\d(?: \d{4})?"
    r"|\b\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d"
)
_WARNING_ONLY = re.compile(r"\bWARN(?:ING)?\b|^\s*warning\b|\bwarning(?:\[\w+\])?:")
"""A flagged line that only warns: when not every flagged line fits, errors go first."""
_SEVERE = re.compile(
    r"\b(?:ERROR|ERRORS|ERR!?|FATAL|CRITICAL|PANIC|SEVERE)\b|Error|Exception|Traceback", re.I
)
_TRACEBACK = "Traceback (most recent call last)"
# Every match of IMPORTANT_LINE contains one of these; str.find skips the rest quickly.
_TRIGGERS = (
    *("ERR", "WARN", "FATAL", "CRITICAL", "FAIL", "PANIC", "SEVERE", "Traceback"),
    *("Error", "Exception", "error", "warning", "fatal", "failed"),
)


def _error_like(lines: list[str]) -> list[bool]:
    """Flag lines matching ``IMPORTANT_LINE``, testing only lines with a trigger word."""
    joined = "\n".join(lines)
    starts = list(itertools.accumulate((len(line) + 1 for line in lines[:-1]), initial=0))
    candidates: set[int] = set()
    for trigger in _TRIGGERS:
        position = joined.find(trigger)
        while position != -1:
            index = bisect.bisect_right(starts, position) - 1
            candidates.add(index)
            following = starts[index + 1] if index + 1 < len(starts) else len(joined)
            position = joined.find(trigger, following)
    flags = [False] * len(lines)
    for index in candidates:
        flags[index] = bool(IMPORTANT_LINE.search(lines[index]))
    return flags


def important_lines(lines: list[str]) -> list[bool]:
    """Flag the lines a log digest must keep: error-like lines and whole traceback blocks."""
    flags = _error_like(lines)
    i = 0
    while i < len(lines):
        if _TRACEBACK in lines[i]:
            j = i + 1
            while j < len(lines) and (lines[j][:1] in (" ", "\t") or not lines[j].strip()):
                j += 1
            # The block ends with the exception line, the first unindented one.
            end = min(j + 1, len(lines))
            for k in range(i, end):
                flags[k] = True
            i = end
        else:
            i += 1
    return flags


@dataclass(frozen=True, slots=True)
class _Unit:
    text: str
    rank: float
    lines: int
    """Original log lines the unit stands for (a collapsed run: all of them)."""


def _template(line: str) -> str:
    return _MASK.sub("#", line[:300])


def _units(
    lines: list[str], flags: list[bool], templates: list[str], numbers: list[int]
) -> list[_Unit]:
    """Collapse runs of similar unimportant lines and rank what remains.

    ``numbers`` gives each analysed line's number in the original output, so a run's
    stated line range is true even when the middle of a huge log was skipped.
    """
    frequency: dict[str, int] = {}
    for template in templates:
        frequency[template] = frequency.get(template, 0) + 1
    seen: set[str] = set()
    units: list[_Unit] = []
    i, n = 0, len(lines)
    while i < n:
        j = i + 1
        if flags[i]:
            while j < n and lines[j] == lines[i] and numbers[j] == numbers[j - 1] + 1:
                j += 1
        else:
            while j < n and not flags[j] and templates[j] == templates[i]:
                if numbers[j] != numbers[j - 1] + 1:
                    break  # the skipped middle lies between: not one run
                j += 1
        text = clip(lines[i]) if not flags[i] else lines[i]
        if j - i > 1:
            similar = "identical" if flags[i] else "similar"
            text += f"   ⟨x{j - i} {similar}, lines {numbers[i]}-{numbers[j - 1]}⟩"
        if flags[i]:
            # Errors before warnings, the first of a shape before its repeats.
            warns = _WARNING_ONLY.search(lines[i]) is not None and not _SEVERE.search(lines[i])
            rank = (0.5 if warns else 0.0) + (0.0 if templates[i] not in seen else 0.25)
        elif not lines[i].strip():
            rank = 9.0
        elif i < HEAD_LINES or j > n - TAIL_LINES:
            rank = 1.0
        else:
            first = templates[i] not in seen
            rank = (2.0 if first else 4.0) + math.log(frequency[templates[i]])
        seen.add(templates[i])
        units.append(_Unit(text, rank, j - i))
        i = j
    return units


def _summary(lines: list[str], templates: list[str], skipped: bool) -> list[str]:
    """Time span and the most repeated line templates (``#`` masks digits and hex).

    A template's count is every analysed line of that shape, error lines included.
    """
    stamps = [m.group() for line in lines if (m := _TIMESTAMP.search(line[:120]))]
    out = []
    if stamps:
        out.append(f"time span: {stamps[0]} → {stamps[-1]}")
    frequency: dict[str, int] = {}
    for template, line in zip(templates, lines, strict=True):
        if line.strip():
            frequency[template] = frequency.get(template, 0) + 1
    top = sorted(frequency.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    repeated = [f"x{c} {clip(t.strip(), 80)!r}" for t, c in top if c >= 5]
    if repeated:
        scope = " (in the lines analysed)" if skipped else ""
        out.append(f"most repeated{scope}: " + "; ".join(repeated))
    return out


def draft_log(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a log digest: summary, every error/warning/traceback line, head, tail, rarities."""
    lines = text.split("\n")
    if len(lines) > 1 and lines[-1] == "":
        lines.pop()  # the final newline ends the last line; it starts no new one
    total = len(lines)
    flags = important_lines(lines)
    numbers = list(range(1, total + 1))
    skipped = total > MAX_LINES
    if skipped:
        half = MAX_LINES // 2
        middle = range(half, total - half)
        kept = [i for i in middle if flags[i]]
        marker = (
            f"[… {len(middle) - len(kept):,} lines in the middle were only scanned for errors …]"
        )
        lines = [*lines[:half], *(lines[i] for i in kept), marker, *lines[total - half :]]
        flags = [*flags[:half], *(True for _ in kept), True, *flags[total - half :]]
        numbers = [*numbers[:half], *(i + 1 for i in kept), 0, *numbers[total - half :]]
    templates = [_template(line) for line in lines]
    units = _units(lines, flags, templates, numbers)
    errors = sum(flags) - skipped  # the marker is flagged to keep it, but is no log line
    header = "\n".join(_summary(lines, templates, skipped))
    body = select_lines(
        [u.text for u in units],
        [u.rank for u in units],
        count=count,
        max_tokens=max_tokens,
        header=header,
        weights=[u.lines for u in units],
    )
    note = f"log · {total:,} lines · {errors:,} error/warning/traceback line" + (
        "" if errors == 1 else "s"
    )
    return Draft(body, total, False, note)


class LogCompressor(DraftCompressor):
    """Digest logs (see :func:`draft_log`)."""

    kind = "log"
    draft = staticmethod(draft_log)
