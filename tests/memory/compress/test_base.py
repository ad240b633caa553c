"""Tests for memory._compress.base: values, the protocol and the budget helpers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory._compress.base import (
    Chunk,
    Compressor,
    Digest,
    clip,
    safe_count,
    sanitize,
    tokens_of_original,
)
from memory._compress.code import CodeCompressor
from memory._compress.diff import DiffCompressor
from memory._compress.fit import fit_levels, head_tail, select_lines
from memory._compress.html import HTMLCompressor
from memory._compress.json import JSONCompressor
from memory._compress.logs import LogCompressor
from memory._compress.table import TableCompressor
from memory._compress.text import TextCompressor

Count = Callable[[str], int]


def test_digest_and_chunk_are_frozen() -> None:
    digest = Digest("t", "text", 10, 1, None, False, "n")
    piece = Chunk(0, 1, "t")
    with pytest.raises(dataclasses.FrozenInstanceError):
        digest.text = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        piece.start = 3  # type: ignore[misc]
    assert piece.prefix == ""
    assert not hasattr(digest, "__dict__")


def test_every_compressor_satisfies_the_protocol() -> None:
    compressors = [
        JSONCompressor(),
        LogCompressor(),
        CodeCompressor(),
        TableCompressor(),
        DiffCompressor(),
        HTMLCompressor(),
        TextCompressor(),
    ]
    assert all(isinstance(c, Compressor) for c in compressors)
    assert sorted(c.kind for c in compressors) == [
        "code",
        "diff",
        "html",
        "json",
        "log",
        "table",
        "text",
    ]


def test_compressor_compress_counts_tokens(count: Count) -> None:
    text = "\n".join(f"line {i} of some text that goes on." for i in range(200))
    digest = TextCompressor().compress(text, count=count, max_tokens=50)
    assert digest.kind == "text"
    assert digest.original_tokens == count(text)
    assert digest.digest_tokens == count(digest.text) <= 50


def test_safe_count_survives_failing_counters(count: Count) -> None:
    assert safe_count(count, "\ud800abc") >= 1

    def broken(text: str) -> int:
        raise RuntimeError("no")

    assert safe_count(broken, "abcdefgh") == 3


def test_tokens_of_original_estimates_huge_texts(count: Count) -> None:
    text = "abcd " * 400_000  # 2 MB
    estimate = tokens_of_original(count, text)
    assert abs(estimate - count(text)) / count(text) < 0.01


def test_sanitize_replaces_lone_surrogates_only() -> None:
    assert sanitize("a\ud800b") == "a\ufffdb"
    assert sanitize("plain é") == "plain é"
    sanitize("a\ud800b").encode("utf-8")


def test_clip() -> None:
    assert clip("abc", 5) == "abc"
    assert clip("abcdef", 4) == "abc…"


def test_select_lines_keeps_best_ranks_in_order(count: Count) -> None:
    lines = [f"line number {i:03d}" for i in range(100)]
    ranks = [0.0 if i in (5, 50, 95) else 1.0 for i in range(100)]
    out = select_lines(lines, ranks, count=count, max_tokens=60, header="HEAD")
    assert out.startswith("HEAD\n")
    assert (
        out.index("line number 005") < out.index("line number 050") < out.index("line number 095")
    )
    assert "omitted" in out
    assert count(out) <= 60


@given(
    st.lists(st.text(max_size=40), max_size=60),
    st.integers(min_value=1, max_value=200),
)
def test_select_lines_respects_the_budget(lines: list[str], budget: int) -> None:
    def count(text: str) -> int:
        return len(text) // 4 + 1

    out = select_lines(lines, [float(len(x)) for x in lines], count=count, max_tokens=budget)
    kept = [line for line in out.split("\n") if "omitted" not in line]
    assert count(out) <= budget or kept in ([], [""])


def test_fit_levels_returns_richest_that_fits(count: Count) -> None:
    def render(level: int) -> str:
        return "x" * (level * 40)

    assert fit_levels(render, 10, count=count, max_tokens=25) == "x" * 80
    assert fit_levels(render, 10, count=count, max_tokens=1000) == "x" * 360


def test_head_tail_keeps_both_ends(count: Count) -> None:
    text = "START " + "middle " * 2000 + " END"
    out = head_tail(text, count=count, max_tokens=40)
    assert out.startswith("START")
    assert out.endswith("END")
    assert "chars omitted" in out
    assert count(out) <= 40
    assert head_tail("", count=count, max_tokens=5) == ""
    assert head_tail("short", count=count, max_tokens=50) == "short"
