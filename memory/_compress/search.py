"""Digest search results (``grep -rn``, ``rg -n``, ``git grep -n``): files, counts, lines.

Each match line reads ``path:line:text`` (``path:line:column:text`` for ``rg
--vimgrep``); ``grep -C`` context lines read ``path-line-text`` and groups are split by
``--``. The digest states the number of matching lines and files, every file with its
match count and line range, and each distinct matching line once with how often it
occurs; every number it states is counted on the whole output.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from memory._compress.base import Counter, Draft, DraftCompressor, clip
from memory._compress.fit import fit_levels, select_lines

__all__ = ["SearchCompressor", "SearchResults", "draft_search", "parse_search", "search_share"]

# A path has no blank and holds a letter, a dot, a slash or an underscore (so "12:00:05",
# a clock time, is no path); the line number does not start with 0.
_PATH = r"(?P<path>(?=[^\s:]*[A-Za-z./_])[^\s:]+)"
_MATCH = re.compile(_PATH + r":(?P<line>[1-9]\d*):(?:(?P<column>[1-9]\d*):)?(?P<text>.*)\Z")
_CONTEXT = re.compile(_PATH + r"-(?P<line>[1-9]\d*)-(?P<text>.*)\Z")
_SEPARATOR = "--"
MIN_SHARE = 0.8
"""Share of non-blank lines that must be matches (or context) for search results."""


@dataclass(slots=True)
class _File:
    matches: int = 0
    first: int = 0
    last: int = 0


@dataclass(frozen=True, slots=True)
class SearchResults:
    """Parsed search results.

    Attributes:
        matches: Matching lines, in order, as ``(path, line number, text)``.
        context: Context lines (``grep -C``) and ``--`` separators.
        other: Lines that are neither (``Binary file x matches``, warnings).
    """

    matches: list[tuple[str, int, str]]
    context: int
    other: list[str] = field(default_factory=list)


def search_share(lines: list[str]) -> float:
    """Share of the non-blank ``lines`` that are search matches, context or separators."""
    filled = [line for line in lines if line.strip()]
    hits = sum(1 for line in filled if _MATCH.match(line))
    if not hits:
        return 0.0
    context = sum(1 for line in filled if line == _SEPARATOR or _CONTEXT.match(line))
    return (hits + context) / len(filled)


def parse_search(text: str) -> SearchResults:
    """Parse ``path:line:text`` search results.

    Raises:
        ValueError: fewer than ``MIN_SHARE`` of the lines are search results.
    """
    matches: list[tuple[str, int, str]] = []
    context = 0
    other: list[str] = []
    lines = text.split("\n")
    for line in lines:
        found = _MATCH.match(line)
        if found is not None:
            matches.append((found["path"], int(found["line"]), found["text"]))
        elif line == _SEPARATOR or _CONTEXT.match(line):
            context += 1
        elif line.strip():
            other.append(line)
    if not matches or len(other) > (1 - MIN_SHARE) * (len(matches) + context + len(other)):
        raise ValueError("not search results (path:line:text)")
    return SearchResults(matches, context, other)


def _plural(n: int, word: str) -> str:
    suffix = "es" if word.endswith("ch") else "s"
    return f"{n:,} {word}{'' if n == 1 else suffix}"


def _files(results: SearchResults) -> dict[str, _File]:
    files: dict[str, _File] = {}
    for path, number, _ in results.matches:
        entry = files.get(path)
        if entry is None:
            entry = files[path] = _File(0, number, number)
        entry.matches += 1
        entry.first, entry.last = min(entry.first, number), max(entry.last, number)
    return files


def _distinct(results: SearchResults) -> list[tuple[str, int, str, int]]:
    """Each distinct matching text (stripped): count, first file, files it occurs in."""
    tally: dict[str, list[int]] = {}
    first_file: dict[str, str] = {}
    files_of: dict[str, set[str]] = {}
    for path, _, text in results.matches:
        key = text.strip()
        tally.setdefault(key, [0])[0] += 1
        first_file.setdefault(key, path)
        files_of.setdefault(key, set()).add(path)
    ranked = sorted(tally, key=lambda k: -tally[k][0])  # stable: first seen first among ties
    return [(k, tally[k][0], first_file[k], len(files_of[k])) for k in ranked]


def draft_search(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a search digest: files with match counts, each distinct matching line once.

    Raises:
        ValueError: ``text`` is not search results.
    """
    results = parse_search(text)
    files = _files(results)
    distinct = _distinct(results)
    n = len(results.matches)
    top = [f"{_plural(n, 'matching line')} in {_plural(len(files), 'file')}"]
    if results.context:
        top[0] += f", {_plural(results.context, 'context line')}"
    if results.other:
        top[0] += f", {_plural(len(results.other), 'other line')}"
    top.append(f"{_plural(len(distinct), 'distinct matching line')}")
    by_count = sorted(files, key=lambda p: -files[p].matches)
    file_lines = [
        f"  {clip(p, 160)}: {_plural(files[p].matches, 'match')}, lines "
        f"{files[p].first}-{files[p].last}"
        for p in by_count
    ]
    text_lines = [
        f"  x{c} {clip(t, 200)!r} (first in {clip(p, 80)}"
        + (f", {_plural(k, 'file')})" if k > 1 else ")")
        for t, c, p, k in distinct
    ]
    other = [f"  {clip(line)}" for line in results.other[:5]]

    def render(k: int) -> str:
        out = [*top, "files (matches, line range):", *file_lines[:k]]
        if len(files) > k:
            rest = sum(files[p].matches for p in by_count[k:])
            out.append(f"  [… {_plural(len(files) - k, 'more file')}, {_plural(rest, 'match')} …]")
        out += ["distinct matching lines (count):", *text_lines[:k]]
        if len(distinct) > k:
            rest = sum(c for _, c, _, _ in distinct[k:])
            more = _plural(len(distinct) - k, "more distinct line")
            out.append(f"  [… {more}, {_plural(rest, 'match')} …]")
        if other:
            out += ["other lines:", *other]
        return "\n".join(out)

    levels = max(len(files), len(distinct)) + 1
    best = fit_levels(render, levels, count=count, max_tokens=max_tokens)
    if count(best) > max_tokens:
        best = select_lines(top, [0.0] * len(top), count=count, max_tokens=max_tokens)
    note = f"search results · {_plural(n, 'match')} in {_plural(len(files), 'file')}"
    return Draft(best, n, False, note)


class SearchCompressor(DraftCompressor):
    """Digest search results (see :func:`draft_search`)."""

    kind = "search"
    draft = staticmethod(draft_search)
