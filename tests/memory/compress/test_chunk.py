"""Tests for memory._compress.chunk: exact tiling on natural boundaries."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory._compress import Chunk, chunk
from memory._errors import ConfigError

Count = Callable[[str], int]
KINDS = ["json", "log", "code", "table", "diff", "html", "text"]


def cheap(text: str) -> int:
    return len(text) // 4 + 1


def assert_tiles(text: str, chunks: list[Chunk]) -> None:
    assert chunks[0].start == 0
    assert chunks[-1].end == len(text)
    for before, after in itertools.pairwise(chunks):
        assert before.end == after.start
    for piece in chunks:
        assert piece.start < piece.end
        assert piece.text == piece.prefix + text[piece.start : piece.end]


@given(
    st.text(alphabet=st.sampled_from(list('ab {}[],"\n\n  @def:ERROR|-+\t')), min_size=1),
    st.sampled_from(KINDS),
    st.integers(min_value=1, max_value=60),
)
def test_chunks_tile_any_text(text: str, kind: str, budget: int) -> None:
    assert_tiles(text, chunk(text, kind, count=cheap, max_tokens=budget))  # type: ignore[arg-type]


@given(st.text(min_size=1, max_size=3000), st.sampled_from(KINDS))
def test_chunks_tile_arbitrary_unicode(text: str, kind: str) -> None:
    assert_tiles(text, chunk(text, kind, count=cheap, max_tokens=40))  # type: ignore[arg-type]


def test_json_array_splits_between_items(count: Count) -> None:
    items = [{"id": i, "name": f"item number {i}", "tags": ["a", "b"]} for i in range(100)]
    text = json.dumps(items, indent=2)
    chunks = chunk(text, "json", count=count, max_tokens=100)
    assert len(chunks) > 5
    for piece in chunks[1:]:
        assert piece.text.startswith("{")
        assert count(piece.text) <= 100


def test_traceback_stays_in_one_chunk(error_log: str, count: Count) -> None:
    chunks = chunk(error_log, "log", count=count, max_tokens=120)
    holder = [c for c in chunks if "Traceback" in c.text]
    assert len(holder) == 1
    assert "ZeroDivisionError: division by zero" in holder[0].text
    assert all(count(c.text) <= 120 for c in chunks)


def test_code_splits_at_definitions(python_source: str, count: Count) -> None:
    chunks = chunk(python_source, "code", count=count, max_tokens=300)
    starts = [c.text.split("\n", 1)[0] for c in chunks]
    assert "def make_widget(name: str) -> Widget:" in starts
    assert any(s.startswith("    def spin") for s in starts)  # the big class splits at methods


def test_table_chunks_repeat_the_header(count: Count) -> None:
    rows = "\n".join(f"pkg{i:03d}      1.{i}.0" for i in range(300))
    text = "Package     Version\n----------- -------\n" + rows + "\n"
    chunks = chunk(text, "table", count=count, max_tokens=100)
    assert chunks[0].prefix == ""
    assert chunks[0].text.startswith("Package")
    for piece in chunks[1:]:
        assert piece.prefix == "Package     Version\n----------- -------\n"
        assert piece.text.startswith(piece.prefix + "pkg")
        assert count(piece.text) <= 100
    assert_tiles(text, chunks)


def test_diff_splits_at_files_then_hunks(count: Count) -> None:
    one = "diff --git a/{n} b/{n}\n--- a/{n}\n+++ b/{n}\n@@ -1,3 +1,3 @@\n-old\n+new\n ctx\n"
    text = "".join(one.format(n=f"file{i}.py") for i in range(30))
    chunks = chunk(text, "diff", count=count, max_tokens=60)
    assert all(c.text.startswith("diff --git") for c in chunks)


def test_text_splits_at_paragraphs_then_sentences(count: Count) -> None:
    text = "\n\n".join(f"Paragraph {i}. " + "Some sentence here. " * 5 for i in range(20))
    chunks = chunk(text, "text", count=count, max_tokens=60)
    assert all(c.text.startswith(("Paragraph", "Some")) for c in chunks)


def test_oversize_line_is_hard_split(count: Count) -> None:
    text = "word " * 2000
    chunks = chunk(text, "log", count=count, max_tokens=50)
    assert len(chunks) > 10
    assert all(count(c.text) <= 50 for c in chunks)
    assert_tiles(text, chunks)


def test_empty_and_bad_budget(count: Count) -> None:
    assert chunk("", "text", count=count) == []
    with pytest.raises(ConfigError):
        chunk("x", "text", count=count, max_tokens=0)


def test_survives_lone_surrogates(count: Count) -> None:
    text = "a\ud800b\n" * 500
    assert_tiles(text, chunk(text, "log", count=count, max_tokens=30))
