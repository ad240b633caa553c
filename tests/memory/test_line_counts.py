"""Counting line by line with remembered lines gives tiktoken's whole-text count."""

from __future__ import annotations

import re

import tiktoken
from hypothesis import example, given, settings
from hypothesis import strategies as st

from memory._line_counts import MAX_LINES, MAX_TEXT, LineCounts
from memory._tokens import TiktokenCounter

ENCODINGS = ("o200k_base", "cl100k_base")
PIECES = [
    "\n", "\n\n", " ", "  ", "\t", "\r", "\r\n", "/", "//", ".", "...", ",", "a", "Z", "word",
    "Hello", "7", "2023", "123456", "'s", "'ll", "'", '"', "é", "café", "你好", "日本語", "-",
    "---", "[", "]", "[messages 1-3, 2023-05-08]", "!", "?", "<memory>", "</memory>", ":",
    "Caroline: ", "🙂", "\u00a0", "\u2028", "\x1c", "_", "#", "*", "http://x.io/a",
]  # fmt: skip
texts = st.lists(st.sampled_from(PIECES), max_size=60).map("".join)


def _whole(encoding: str, text: str) -> int:
    return len(tiktoken.get_encoding(encoding).encode_ordinary(text))


@settings(max_examples=300, deadline=None)
@given(st.lists(texts, min_size=1, max_size=4))
@example([".\n/"])  # o200k_base reads ".\n/" as one piece
def test_line_sums_equal_whole_text_counts(texts: list[str]) -> None:
    """Counted cold and then with every line remembered, each text's count is the
    whole-text encoding's, in both encodings (texts share lines across calls)."""
    for encoding in ENCODINGS:
        counter = TiktokenCounter(encoding)
        for text in texts + texts:
            assert counter.count(text) == _whole(encoding, text), (encoding, text)


@settings(max_examples=100, deadline=None)
@given(texts)
def test_every_script_bound_is_unchanged_by_cuts(text: str) -> None:
    """The every-script bound (ASCII by o200k_base, other characters by their bytes)
    adds up over lines too."""
    counter = TiktokenCounter("o200k_base", every_script=True)
    ascii_only = re.sub(r"[^\x00-\x7f]+", " ", text)  # a run of other characters: a space
    extra = sum(len(c.encode("utf-8", "surrogatepass")) for c in text if not c.isascii())
    assert counter.count(text) == _whole("o200k_base", ascii_only) + extra


def test_a_recall_block_is_counted_from_its_lines() -> None:
    """A block whose lines were counted before encodes nothing new but its own lines."""
    encoded: list[str] = []

    def count(text: str) -> int:
        encoded.append(text)
        return _whole("o200k_base", text)

    lines = LineCounts(count)
    turns = [f"Caroline: I went to the support group on day {n}.\n" for n in range(5)]
    for turn in turns:
        lines.count(turn)
    encoded.clear()
    block = "<memory>\n[messages 1-5]\n" + "".join(turns) + "---\n[message 9]\nMel: Hi.\n</memory>"
    assert lines.count(block) == _whole("o200k_base", block)
    assert set(encoded) == {"<memory>\n", "[messages 1-5]\n", "---\n", "[message 9]\n",
                            "Mel: Hi.\n", "</memory>"}  # fmt: skip


def test_memory_stays_bounded_and_long_texts_are_encoded_whole() -> None:
    encoded: list[str] = []

    def count(text: str) -> int:
        encoded.append(text)
        return len(text)

    lines = LineCounts(count)
    for n in range(MAX_LINES + 10):
        lines.count(f"line {n}")
    assert len(lines._known) <= MAX_LINES
    long = "x\n" * (MAX_TEXT // 2 + 1)
    encoded.clear()
    assert lines.count(long) == len(long)
    assert encoded == [long]
