"""Digest tables and column output: header, row count, column ranges, first and last rows.

Understands CSV/TSV, markdown tables, ``ls -l``, ``find -ls``, ``apt-cache search``
(``name - description``), and whitespace-aligned columns such as ``pip list``.
"""

from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass

from memory._compress.base import Counter, Draft, DraftCompressor, clip, safe_count
from memory._compress.fit import fit_levels, select_lines

__all__ = ["Table", "TableCompressor", "draft_table", "has_header", "parse_table"]

MAX_ROWS = 200_000  # rows parsed; a longer table is digested from its first rows
_LS = re.compile(r"^[-dlcbpsD][rwxsStT-]{9}[.+@]?\s+\d+\s")
_FIND_LS = re.compile(r"^\s*\d+\s+\d+\s+[-dlcbpsD][rwxsStT-]{9}[.+@]?\s")
_NAME_DESC = re.compile(r"^\S+ - \S")
_DASHES = re.compile(r"^\s*-{2,}(?:\s+-{2,})+\s*$")
_MD_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(?:\|\s*:?-{2,}:?\s*)*\|?\s*$")
_NUMBER = re.compile(r"[-+]?\d+(?:[.,]\d+)?(?:[eE][-+]?\d+)?\Z")
_LS_COLUMNS = ("mode", "links", "owner", "group", "size", "month", "day", "time", "name")
_FIND_COLUMNS = ("inode", "blocks", *_LS_COLUMNS[:-1], "path")


@dataclass(frozen=True, slots=True)
class Table:
    """A parsed table.

    Attributes:
        columns: Column names (made up when the table has no header).
        rows: Parsed cells, one list per row.
        raw_rows: The rows' original lines.
        header_lines: The original header lines (names, separators); may be empty.
        preamble: Lines before the table that are not rows (``total 1016``).
        style: How the table was recognised: ``csv``, ``tsv``, ``markdown``, ``ls``...
    """

    columns: list[str]
    rows: list[list[str]]
    raw_rows: list[str]
    header_lines: list[str]
    preamble: list[str]
    style: str


def _share(lines: list[str], pattern: re.Pattern[str]) -> float:
    return sum(1 for line in lines if pattern.search(line)) / max(1, len(lines))


def _mode(values: list[int]) -> tuple[int, float]:
    tally: dict[int, int] = {}
    for value in values:
        tally[value] = tally.get(value, 0) + 1
    best = max(tally, key=lambda v: (tally[v], v))
    return best, tally[best] / max(1, len(values))


def _fixed(lines: list[str], style: str, names: tuple[str, ...], maxsplit: int) -> Table:
    start = 0
    while start < len(lines) and len(lines[start].split()) <= maxsplit // 2:
        start += 1
    body = lines[start:]
    rows = [line.split(None, maxsplit) for line in body]
    return Table(list(names), rows, body, [], lines[:start], style)


def has_header(rows: list[list[str]]) -> bool:
    """Decide from evidence whether the first row names the columns.

    A header cell is never a number and never recurs in its own column; a column votes
    for a header when its first cell differs from the body in kind (text over numbers)
    or in shape (a length no body cell has, over cells of one length). Without a vote
    the first row is data: a digest that counts it as a row is never wrong about counts.
    """
    if len(rows) < 2:
        return False
    first, body = rows[0], rows[1:]
    votes = 0
    for i, name in enumerate(first):
        name = name.strip()
        cells = [row[i].strip() for row in body if i < len(row)]
        if not name or _NUMBER.match(name) or name in cells:
            return False
        filled = [c for c in cells if c]
        numeric = sum(1 for c in filled if _NUMBER.match(c.replace(",", "")))
        lengths = {len(c) for c in filled}
        kind_differs = bool(filled) and numeric >= 0.8 * len(filled)
        shape_differs = len(filled) >= 2 and len(lengths) == 1 and len(name) not in lengths
        votes += kind_differs or shape_differs
    return votes > 0


def _delimited(lines: list[str], delimiter: str) -> Table:
    rows = list(csv.reader(lines, delimiter=delimiter))
    style = {"\t": "tsv", ",": "csv"}.get(delimiter, f"{delimiter!r}-separated")
    if has_header(rows):
        return Table(rows[0], rows[1:], lines[1:], lines[:1], [], style)
    names = [f"col{i + 1}" for i in range(len(rows[0]))]
    return Table(names, rows, lines, [], [], style)


def _markdown(lines: list[str]) -> Table:
    def cells(line: str) -> list[str]:
        return [c.strip() for c in line.strip().strip("|").split("|")]

    header_end = 2 if len(lines) > 1 and _MD_SEPARATOR.match(lines[1]) else 0
    names = cells(lines[0]) if header_end else [f"col{i + 1}" for i in range(len(cells(lines[0])))]
    body = lines[header_end:]
    return Table(names, [cells(line) for line in body], body, lines[:header_end], [], "markdown")


def _aligned(lines: list[str]) -> Table | None:
    """Parse whitespace-aligned columns, using a ``----- ---`` rule under a header if any."""
    if len(lines) > 2 and _DASHES.match(lines[1]):
        spans = [m.span() for m in re.finditer(r"-+", lines[1])]
        starts = [s for s, _ in spans]

        def cut(line: str) -> list[str]:
            bounds = [*starts[1:], len(line) + 1]
            return [line[a:b].strip() for a, b in zip(starts, bounds, strict=True)]

        return Table(
            cut(lines[0]), [cut(x) for x in lines[2:]], lines[2:], lines[:2], [], "aligned"
        )
    width, share = _mode([len(re.split(r"\s{2,}", line.strip())) for line in lines])
    if width >= 2 and share >= 0.7:
        rows = [re.split(r"\s{2,}", line.strip(), maxsplit=width - 1) for line in lines]
    else:
        width, share = _mode([len(line.split()) for line in lines])
        if width < 2 or share < 0.7:
            return None
        rows = [line.split(None, width - 1) for line in lines]
    if has_header(rows):
        return Table(rows[0], rows[1:], lines[1:], lines[:1], [], "aligned")
    return Table([f"col{i + 1}" for i in range(width)], rows, lines, [], [], "aligned")


def parse_table(text: str) -> Table:
    """Parse ``text`` as a table.

    Raises:
        ValueError: no table structure was found.
    """
    lines = [line for line in text.split("\n")[:MAX_ROWS] if line.strip()]
    if len(lines) < 2:
        raise ValueError("a table needs at least two rows")
    sample = lines[:300]
    table: Table | None = None
    if _share(sample, re.compile(r"^\s*\|")) >= 0.6:
        table = _markdown(lines)
    elif _share(sample, _LS) >= 0.6:
        table = _fixed(lines, "ls", _LS_COLUMNS, 8)
    elif _share(sample, _FIND_LS) >= 0.6:
        table = _fixed(lines, "find -ls", _FIND_COLUMNS, 10)
    elif _share(sample, _NAME_DESC) >= 0.8:
        rows = [line.split(" - ", 1) for line in lines]
        table = Table(["name", "description"], rows, lines, [], [], "name - description")
    else:
        for delimiter in ("\t", ",", ";", "|"):
            width, share = _mode([line.count(delimiter) for line in sample])
            if width >= 1 and share >= 0.8:
                table = _delimited(lines, delimiter)
                break
        else:
            table = _aligned(lines)
    if table is None or not table.rows:
        raise ValueError("no table structure found")
    return table


def _column_summary(name: str, cells: list[str]) -> str:
    values = [c for c in cells if c]
    if not values:
        return f"{name}: empty"
    tally: dict[str, int] = {}
    for value in values:
        tally[value] = tally.get(value, 0) + 1
    if len(tally) <= 5:
        common = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
        return f"{name}: " + ", ".join(f"{clip(v, 40)} x{n}" for v, n in common)
    numbers = [c for c in values if _NUMBER.match(c.replace(",", ""))]
    if len(numbers) >= 0.9 * len(values):
        floats = [float(c.replace(",", "")) for c in numbers]
        low, high = numbers[floats.index(min(floats))], numbers[floats.index(max(floats))]
        return f"{name}: number {clip(low, 30)}..{clip(high, 30)}"
    low, high = min(tally), max(tally)
    shared = os.path.commonprefix([low, high])  # noqa: RUF071 (characters, not paths)
    if len(shared) >= 8:
        low, high = low[len(shared) :], high[len(shared) :]
        return (
            f"{name}: {len(tally)} distinct, all start {clip(shared, 80)!r}, "
            f"then {clip(low, 30)!r}..{clip(high, 30)!r}"
        )
    return f"{name}: {len(tally)} distinct, {clip(low, 30)!r}..{clip(high, 30)!r}"


def _stats(table: Table) -> list[str]:
    out = []
    for i, name in enumerate(table.columns[:30]):
        cells = [row[i].strip() if i < len(row) else "" for row in table.rows]
        out.append("  " + clip(_column_summary(name, cells), 160))
    return out


def draft_table(text: str, *, count: Counter, max_tokens: int) -> Draft:
    """Make a table digest: columns, row count, per-column ranges, first and last rows.

    Raises:
        ValueError: ``text`` has no table structure.
    """
    table = parse_table(text)
    parsed = len(table.rows)
    # Rows past MAX_ROWS lines are counted, not parsed: the stated count is the true one.
    outside = len(table.header_lines) + len(table.preamble)
    n = max(parsed, sum(1 for line in text.split("\n") if line.strip()) - outside)
    named = " | ".join(table.columns)
    top = [f"{n:,} rows x {len(table.columns)} columns ({table.style}): {clip(named, 300)}"]
    top += [clip(line) for line in table.preamble[:3]]
    top.append("columns:" if n == parsed else f"columns (in the first {parsed:,} rows):")
    top += _stats(table)
    rows = [clip(line) for line in table.raw_rows]

    def render(k: int) -> str:
        shown = table.header_lines + rows[:k]
        if parsed > 2 * k:
            shown.append(f"[… {n - 2 * k:,} rows omitted …]")
            shown += rows[parsed - k :] if k else []
        else:
            shown += rows[k:]
            if n > parsed:
                shown.append(f"[… {n - parsed:,} more rows, not parsed …]")
        return "\n".join(top + shown)

    levels = (parsed + 1) // 2 + 1
    best = fit_levels(render, levels, count=count, max_tokens=max_tokens)
    if safe_count(count, best) > max_tokens:
        lines = best.split("\n")
        ranks = [float(i) for i in range(len(lines))]
        best = select_lines(lines, ranks, count=count, max_tokens=max_tokens)
    note = f"table · {n:,} rows x {len(table.columns)} cols"
    return Draft(best, n, False, note)


class TableCompressor(DraftCompressor):
    """Digest tables (see :func:`draft_table`)."""

    kind = "table"
    draft = staticmethod(draft_table)
