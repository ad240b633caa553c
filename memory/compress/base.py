"""Shared values and helpers of the compressors: ``Digest``, ``Chunk``, ``Compressor``.

A *digest* is the compact, structure-aware stand-in for a long tool output; the output
itself is archived byte-exact elsewhere. Every compressor turns a string into a ``Draft``
(the body plus a few facts); :func:`finish` adds the token counts to make a ``Digest``.

The helpers here keep the budget arithmetic in one place: :func:`select_lines` keeps the
most important lines of a long list in their original order, :func:`fit_levels` picks the
richest rendering that fits, :func:`fit_graded` renders every line at the richest common
detail level and spends what is left on the best-ranked lines, and :func:`head_tail` is
the last resort of every kind.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, runtime_checkable

__all__ = [
    "DEFAULT_LINE_WIDTH",
    "Chunk",
    "Compressor",
    "Counter",
    "Digest",
    "DigestKind",
    "Draft",
    "DraftCompressor",
    "clip",
    "finish",
    "fit_graded",
    "fit_levels",
    "head_tail",
    "head_window",
    "line_count",
    "safe_count",
    "sanitize",
    "select_lines",
    "tokens_of_original",
]

DigestKind = Literal["json", "log", "code", "table", "search", "diff", "html", "text"]
"""The kinds of content a digest can be made for."""

Counter = Callable[[str], int]
"""Counts the tokens of a string (e.g. a tiktoken encoder's ``len(encode(s))``)."""

DEFAULT_LINE_WIDTH = 240
"""Lines longer than this many characters are cut short in lossy digests."""

_EXACT_COUNT_CHARS = 1_000_000  # above this, the original's tokens are estimated from samples
_SAMPLE_CHARS = 100_000


@dataclass(frozen=True, slots=True)
class Digest:
    """A compact stand-in for a tool output, ready to go into a prompt.

    Attributes:
        text: The digest body, without any ``[ref …]`` header (the caller adds it).
        kind: The kind of content the digest was made for.
        original_tokens: Tokens of the original output (estimated above 1 MB).
        digest_tokens: Tokens of ``text``.
        items: Array items, log lines, rows, files changed...; ``None`` when meaningless.
        lossless: Whether the original can be rebuilt from ``text`` alone.
        note: A short human description such as ``"json array · 200 items"``.
    """

    text: str
    kind: DigestKind
    original_tokens: int
    digest_tokens: int
    items: int | None
    lossless: bool
    note: str


@dataclass(frozen=True, slots=True)
class Chunk:
    """One piece of a chunked output: ``text == prefix + original[start:end]``.

    Attributes:
        start: Offset of the piece in the original string.
        end: Offset just past the piece; the next chunk starts here.
        text: What to embed or show: ``prefix`` followed by the exact slice.
        prefix: Context prepended to the slice (a table's header); empty for most kinds.
    """

    start: int
    end: int
    text: str
    prefix: str = ""


@dataclass(frozen=True, slots=True)
class Draft:
    """A compressor's result before token counting.

    Attributes:
        text: The digest body.
        items: The number of items the body summarises, when meaningful.
        lossless: Whether the original can be rebuilt from ``text``.
        note: A short human description.
    """

    text: str
    items: int | None
    lossless: bool
    note: str


@runtime_checkable
class Compressor(Protocol):
    """Turns one kind of tool output into a digest that fits a token budget."""

    @property
    def kind(self) -> DigestKind:
        """Return the kind of content this compressor handles."""
        ...

    def compress(self, text: str, *, count: Counter, max_tokens: int) -> Digest:
        """Return a digest of ``text`` of at most about ``max_tokens`` tokens.

        Raises:
            ValueError: ``text`` is not of this compressor's kind.
        """
        ...


class DraftCompressor:
    """A ``Compressor`` made of a kind and a draft function; subclasses set both.

    ``draft(text, *, count, max_tokens) -> Draft`` does the kind's work; this class adds
    the token counts (:func:`finish`).
    """

    kind: ClassVar[DigestKind]
    draft: ClassVar[Callable[..., Draft]]

    def compress(self, text: str, *, count: Counter, max_tokens: int) -> Digest:
        """Return a digest of ``text`` of at most about ``max_tokens`` tokens.

        Raises:
            ValueError: ``text`` is not of this compressor's kind.
        """
        draft = type(self).draft(text, count=count, max_tokens=max_tokens)
        return finish(
            draft, self.kind, count=count, original_tokens=tokens_of_original(count, text)
        )


def safe_count(count: Counter, text: str) -> int:
    """Count tokens, surviving counters that choke on lone surrogates or odd input."""
    try:
        return int(count(text))
    except Exception:
        try:
            return int(count(sanitize(text)))
        except Exception:
            return len(text) // 4 + 1


def tokens_of_original(count: Counter, text: str) -> int:
    """Count the tokens of a possibly huge original, estimating past 1 MB from samples."""
    if len(text) <= _EXACT_COUNT_CHARS:
        return safe_count(count, text)
    step = (len(text) - _SAMPLE_CHARS) // 2
    samples = [text[i : i + _SAMPLE_CHARS] for i in (0, step, len(text) - _SAMPLE_CHARS)]
    sampled = sum(safe_count(count, s) for s in samples)
    return max(1, round(sampled * len(text) / (3 * _SAMPLE_CHARS)))


def sanitize(text: str) -> str:
    """Replace lone surrogates with U+FFFD so the text can be encoded as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def line_count(text: str) -> int:
    """Count the lines of ``text`` as a reader does: a final newline ends a line, adds none."""
    if not text:
        return 0
    return text.count("\n") + (0 if text.endswith("\n") else 1)


def clip(line: str, width: int = DEFAULT_LINE_WIDTH) -> str:
    """Cut ``line`` to ``width`` characters, marking the cut with an ellipsis."""
    if len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "…"


def head_window(text: str, limit: int) -> str:
    """Return the start of ``text`` up to ``limit`` chars, cut after a blank line or newline.

    Compressors analyse only this much of a huge output so its cost stays bounded.
    """
    if len(text) <= limit:
        return text
    cut = text.rfind("\n\n", limit // 2, limit)
    if cut < 0:
        cut = text.rfind("\n", 0, limit)
    return text[: cut + 1] if cut > 0 else text[:limit]


def finish(draft: Draft, kind: DigestKind, *, count: Counter, original_tokens: int) -> Digest:
    """Count a draft's tokens and wrap it as a ``Digest``."""
    return Digest(
        text=draft.text,
        kind=kind,
        original_tokens=original_tokens,
        digest_tokens=safe_count(count, draft.text),
        items=draft.items,
        lossless=draft.lossless,
        note=draft.note,
    )


def _gap(n: int) -> str:
    return f"[… {n} line{'s' if n != 1 else ''} omitted …]"


def _render_kept(lines: Sequence[str], kept: list[int], gap: Callable[[int], str]) -> str:
    out: list[str] = []
    previous = -1
    for i in kept:
        if i - previous > 1:
            out.append(gap(i - previous - 1))
        out.append(lines[i])
        previous = i
    if len(lines) - previous > 1:
        out.append(gap(len(lines) - previous - 1))
    return "\n".join(out)


def select_lines(
    lines: Sequence[str],
    ranks: Sequence[float],
    *,
    count: Counter,
    max_tokens: int,
    header: str = "",
    gap: Callable[[int], str] = _gap,
) -> str:
    """Keep the best-ranked lines (lowest rank first) that fit, in their original order.

    Dropped runs are replaced by one ``gap`` marker each. The number of lines kept is found
    by binary search, so ``count`` runs on budget-sized strings only, about log2(n) times.

    Args:
        lines: The candidate lines, in output order.
        ranks: One rank per line; lower ranks are kept first, ties by position.
        count: The token counter.
        max_tokens: The budget for the whole result, ``header`` included.
        header: Text put before the kept lines.
        gap: Makes the marker for a run of ``n`` dropped lines.

    Returns:
        The header and the kept lines; just the header (and a gap) when nothing fits.
    """
    order = sorted(range(len(lines)), key=lambda i: (ranks[i], i))
    prefix = header + "\n" if header else ""

    def render(k: int) -> str:
        kept = sorted(order[:k])
        return prefix + _render_kept(lines, kept, gap) if lines else header

    # Bound the search by a generous character estimate so huge inputs stay cheap.
    char_budget = max_tokens * 8 + 200
    sizes = [len(lines[i]) + 1 for i in order]
    cumulative = list(_accumulate(sizes))
    hi = min(len(lines), bisect.bisect_right(cumulative, char_budget) + 1)
    lo = 0
    best = render(0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best


def _accumulate(sizes: Sequence[int]) -> list[int]:
    total = 0
    out: list[int] = []
    for size in sizes:
        total += size
        out.append(total)
    return out


def fit_levels(
    render: Callable[[int], str], levels: int, *, count: Counter, max_tokens: int
) -> str:
    """Return the richest of ``render(0..levels-1)`` that fits (higher level = richer).

    Assumes size grows with the level; returns ``render(0)`` when nothing fits.
    """
    lo, hi = 0, levels - 1
    best = render(0)
    if safe_count(count, best) > max_tokens:
        return best
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best


def fit_graded(
    line: Callable[[int, int], str | None],
    ranks: Sequence[float],
    levels: int,
    *,
    count: Counter,
    max_tokens: int,
    footer: Sequence[str] = (),
) -> str | None:
    """Show every line at the richest detail level that fits, the best-ranked ones richer.

    All lines get one level ``l``, then the best-ranked (lowest rank first, ties by
    position) get ``l + 1`` as far as the budget allows. The search is binary over
    ``levels * len(ranks)`` steps; ``count`` never sees text over eight characters per
    token of budget (such text is taken not to fit).

    Args:
        line: ``line(i, level)`` renders line ``i`` at a level (``None`` hides it); a
            line must not shrink as its level grows.
        ranks: One rank per line; lower ranks are upgraded first.
        levels: The number of detail levels.
        count: The token counter.
        max_tokens: The budget for the whole result, ``footer`` included.
        footer: Lines always put after the others.

    Returns:
        The lines in their original order, or ``None`` when level 0 does not fit.
    """
    order = sorted(range(len(ranks)), key=lambda i: (ranks[i], i))
    upgrade_at = {index: position for position, index in enumerate(order)}
    rendered: dict[tuple[int, int], str | None] = {}
    counted: dict[str, int] = {}
    max_chars = max_tokens * 8 + 200

    def render(step: int) -> str:
        level, upgraded = divmod(step, max(1, len(ranks)))
        out: list[str] = []
        size = 0  # characters so far
        for i in range(len(ranks)):
            key = (i, min(levels - 1, level + (upgrade_at[i] < upgraded)))
            if key not in rendered:
                rendered[key] = line(*key)
            text = rendered[key]
            if text is not None:
                out.append(text)
                size += len(text) + 1
                if size > max_chars + 1:
                    break  # already too long to fit: the other lines need not be made
        return "\n".join([*out, *footer])

    def bounded(text: str) -> int:
        if text not in counted:
            too_long = len(text) > max_chars
            counted[text] = max_tokens + 1 if too_long else safe_count(count, text)
        return counted[text]

    steps = (levels - 1) * len(ranks) + 1
    best = fit_levels(render, steps, count=bounded, max_tokens=max_tokens)
    return best if bounded(best) <= max_tokens else None


def head_tail(text: str, *, count: Counter, max_tokens: int) -> str:
    """Keep the start and the end of ``text`` within ``max_tokens``, marking the cut.

    This never raises and is the fallback of every compressor; it works on characters,
    so it also handles text without lines.
    """
    total = len(text)
    if total == 0:
        return ""

    def render(keep: int) -> str:
        if keep >= total:
            return text
        head = text[: (keep * 2) // 3]
        tail = text[total - (keep - len(head)) :] if keep > len(head) else ""
        return f"{head}\n[… {total - len(head) - len(tail)} chars omitted …]\n{tail}"

    lo, hi = 0, min(total, max_tokens * 8 + 64)
    best = render(0)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        candidate = render(mid)
        if safe_count(count, candidate) <= max_tokens:
            lo, best = mid, candidate
        else:
            hi = mid - 1
    return best
