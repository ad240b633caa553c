"""Shared values and helpers of the compressors: ``Digest``, ``Chunk``, ``Compressor``.

A *digest* is the compact, structure-aware stand-in for a long tool output; the output
itself is archived byte-exact elsewhere. Every compressor turns a string into a ``Draft``
(the body plus a few facts); :func:`finish` adds the token counts to make a ``Digest``.

The budget arithmetic (which lines or levels fit) lives in :mod:`memory._compress.fit`.
"""

from __future__ import annotations

from collections.abc import Callable
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
    "head_window",
    "line_count",
    "safe_count",
    "sanitize",
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
