"""Split a tool output into chunks on its natural boundaries, for embedding and recall.

Chunks tile the text exactly: the first starts at 0, each starts where the previous one
ends, the last ends at ``len(text)``, and ``chunk.text == chunk.prefix +
text[chunk.start:chunk.end]``. Only tables use ``prefix``: every chunk after the first
repeats the table's header so each chunk reads on its own.

Boundaries go from coarse to fine (a diff: commits, files, hunks, lines); a piece over
the budget is cut at the next finer boundary, and a single line still over it is cut by
characters, at a space where one is near.
"""

from __future__ import annotations

import bisect
import itertools
import re
from dataclasses import dataclass

from memory._compress.base import Chunk, Counter, DigestKind, safe_count
from memory._errors import ConfigError

__all__ = ["DEFAULT_CHUNK_TOKENS", "chunk", "merge_small"]

DEFAULT_CHUNK_TOKENS = 256
MAX_STRUCTURE_CHARS = 8_000_000  # structure is looked for in this much; beyond, lines only
_CHARS_PER_TOKEN_CEILING = 12  # a span this many chars per budget token is never counted
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_TRACEBACK_BLOCK = re.compile(
    r"^[ \t]*Traceback \(most recent call last\):\n(?:(?:[ \t].*)?\n)*.*$", re.MULTILINE
)


@dataclass(frozen=True, slots=True)
class _Piece:
    start: int
    end: int
    tokens: int


def _starts(text: str, pattern: str) -> list[int]:
    return [m.start() for m in re.finditer(pattern, text[:MAX_STRUCTURE_CHARS], re.MULTILINE)]


def _json_levels(text: str) -> list[list[int]]:
    depth1: list[int] = []
    depth2: list[int] = []
    depth = 0
    for match in _JSON_TOKEN.finditer(text[:MAX_STRUCTURE_CHARS]):
        token = match.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
        elif token == ",":
            cut = match.end()
            while cut < len(text) and text[cut] in " \t\r\n":
                cut += 1
            (depth1 if depth == 1 else depth2 if depth == 2 else []).append(cut)
    return [depth1, depth2]


def _log_levels(text: str) -> list[list[int]]:
    blocks = _starts(text, r"^(?=\S)")
    inside = [(m.start(), m.end()) for m in _TRACEBACK_BLOCK.finditer(text[:MAX_STRUCTURE_CHARS])]
    if inside:
        blocks = [c for c in blocks if not any(a < c <= b for a, b in inside)]
    return [blocks]


_OPENER = re.compile(
    r"(?:@|(?:async )?def |class |function |fn |func |pub |export |public |struct )"
)


def _code_levels(text: str) -> list[list[int]]:
    """Cut before top-level definitions, then members, then blank-line paragraphs.

    A decorator or comment directly above a definition stays with it.
    """
    top: list[int] = []
    members: list[int] = []
    paragraphs: list[int] = []
    offset, previous, blank_before = 0, "", True
    for line in text[:MAX_STRUCTURE_CHARS].split("\n"):
        stripped = line.lstrip()
        if stripped:
            indent = len(line) - len(stripped)
            attached = not blank_before and previous.startswith(("@", "#", "//", "/*", "*"))
            opens = blank_before or (bool(_OPENER.match(stripped)) and not attached)
            if opens and indent == 0 and stripped[0] not in ")]}":
                top.append(offset)
            elif opens and 0 < indent <= 8:
                members.append(offset)
            if blank_before:
                paragraphs.append(offset)
            previous, blank_before = stripped, False
        else:
            blank_before = True
        offset += len(line) + 1
    return [top, members, paragraphs]


def _file_starts(text: str) -> list[int]:
    """Offsets where search results (``path:line:text``) move on to another file."""
    starts: list[int] = []
    previous, offset = "", 0
    for line in text.split("\n"):
        path = line.split(":", 1)[0]
        if path != previous:
            starts.append(offset)
            previous = path
        offset += len(line) + 1
    return starts


def _levels(text: str, kind: DigestKind, header_end: int) -> list[list[int]]:
    """Return cut positions per level, coarse to fine; lines come last for every kind."""
    if kind == "json":
        levels = _json_levels(text)
    elif kind == "log":
        levels = _log_levels(text)
    elif kind == "code":
        levels = _code_levels(text)
    elif kind == "diff":
        levels = [
            _starts(text, r"^commit [0-9a-f]{7,}"),
            _starts(text, r"^diff --git " if "diff --git " in text else r"^--- \S.*\n\+\+\+ "),
            _starts(text, r"^@@ "),
        ]
    elif kind == "html":
        levels = [
            _starts(text, r"^\s*<(?:h[1-3]|section|article)\b"),
            _starts(text, r"^\s*<(?:h[4-6]|p|div|pre|ul|ol|table|li|tr)\b"),
        ]
    elif kind == "search":
        levels = [_file_starts(text)]
    elif kind == "table":
        levels = []
    else:
        levels = [_starts(text, r"(?<=\n\n)(?=\S)"), _starts(text, r"(?<=[.!?] )(?=\S)")]
    lines = [m.end() for m in re.finditer(r"\n", text)]
    levels.append(lines)
    # A cut inside the header would separate a table from its column names.
    return [sorted(c for c in level if header_end <= c < len(text) and c > 0) for level in levels]


def _hard_split(text: str, start: int, end: int, budget: int, count: Counter) -> list[_Piece]:
    pieces: list[_Piece] = []
    while start < end:
        size = min(end - start, max(1, budget * 4))
        while True:
            stop = start + size
            if stop < end:
                space = text.rfind(" ", start + size // 2, stop)
                stop = space + 1 if space > start else stop
            tokens = safe_count(count, text[start:stop])
            if tokens <= budget or stop - start <= 1:
                break
            size = max(1, size // 2)
        pieces.append(_Piece(start, stop, tokens))
        start = stop
    return pieces


def _merge(run: list[_Piece], budget: int) -> list[_Piece]:
    """Join adjacent pieces while their tokens add up to at most ``budget``."""
    out: list[_Piece] = []
    for piece in run:
        if out and out[-1].tokens + piece.tokens <= budget:
            last = out.pop()
            piece = _Piece(last.start, piece.end, last.tokens + piece.tokens)
        out.append(piece)
    return out


def _split(
    text: str,
    span: tuple[int, int],
    level: int,
    levels: list[list[int]],
    budget: int,
    count: Counter,
) -> list[_Piece]:
    """Cut a span at the coarsest boundaries that bring its pieces under budget.

    Sub-spans that fit are merged with their fitting neighbours; a sub-span that had to
    be cut finer keeps its own pieces, so a chunk never straddles a coarser boundary
    next to a finer cut (a big method starts its own chunk).
    """
    start, end = span
    if end - start <= budget * _CHARS_PER_TOKEN_CEILING:
        tokens = safe_count(count, text[start:end])
        if tokens <= budget:
            return [_Piece(start, end, tokens)]
    if level >= len(levels):
        return _hard_split(text, start, end, budget, count)
    cuts = levels[level]
    inner = cuts[bisect.bisect_right(cuts, start) : bisect.bisect_left(cuts, end)]
    out: list[_Piece] = []
    run: list[_Piece] = []
    for sub in itertools.pairwise([start, *inner, end]):
        pieces = _split(text, sub, level + 1, levels, budget, count)
        if len(pieces) == 1:
            run.extend(pieces)
        else:
            out += _merge(run, budget) + pieces
            run = []
    return out + _merge(run, budget)


def _table_header(text: str) -> tuple[int, str]:
    """Return where a table's header ends and the header text to repeat."""
    from memory._compress.table import parse_table

    head = "\n".join(text[:20_000].split("\n")[:60])
    try:
        table = parse_table(head)
    except ValueError:
        return 0, ""
    if not table.header_lines:
        return 0, ""
    last = table.header_lines[-1]
    end = text.find(last) + len(last)
    if end < len(last) or end >= len(text):
        return 0, ""
    end += 1 if text[end : end + 1] == "\n" else 0
    return end, text[:end] if not table.preamble else "\n".join(table.header_lines) + "\n"


def chunk(
    text: str, kind: DigestKind, *, count: Counter, max_tokens: int = DEFAULT_CHUNK_TOKENS
) -> list[Chunk]:
    """Split ``text`` into chunks of about ``max_tokens`` tokens on natural boundaries.

    Args:
        text: The tool output.
        kind: Its kind (see :func:`detect_kind`), which picks the boundaries.
        count: Counts the tokens of a string.
        max_tokens: The most tokens a chunk should hold, table header included.

    Returns:
        Chunks tiling ``text`` exactly, in order; none for an empty text.

    Raises:
        ConfigError: ``max_tokens`` is less than 1.
    """
    if max_tokens < 1:
        raise ConfigError(f"max_tokens must be >= 1, got {max_tokens}")
    if not text:
        return []
    header_end, prefix = _table_header(text) if kind == "table" else (0, "")
    prefix_tokens = safe_count(count, prefix) if prefix else 0
    if prefix_tokens * 2 > max_tokens:
        header_end, prefix, prefix_tokens = 0, "", 0
    budget = max(1, max_tokens - prefix_tokens)
    levels = _levels(text, kind, header_end)
    pieces = _split(text, (0, len(text)), 0, levels, budget, count)
    return [_make(text, p.start, p.end, prefix, header_end) for p in pieces]


def _make(text: str, start: int, end: int, prefix: str, header_end: int) -> Chunk:
    used = prefix if prefix and start >= header_end > 0 else ""
    return Chunk(start, end, used + text[start:end], used)


def merge_small(pieces: list[Chunk], min_tokens: int, *, count: Counter) -> list[Chunk]:
    """Join chunks far below the target size to the next one (a stray line is no chunk)."""
    merged: list[Chunk] = []
    for piece in pieces:
        if merged and count(merged[-1].text) < min_tokens and not piece.prefix:
            last = merged[-1]
            merged[-1] = Chunk(last.start, piece.end, last.text + piece.text, last.prefix)
        else:
            merged.append(piece)
    return merged
