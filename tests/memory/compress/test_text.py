"""Tests for memory._compress.text: lead plus informative sentences, in order."""

from __future__ import annotations

from collections.abc import Callable

from memory._compress.text import TextCompressor, draft_text, rank_units, split_units

Count = Callable[[str], int]


def test_split_units_prose_and_lines() -> None:
    prose = "First sentence here. Second one follows! Third? Yes.\n\nNew paragraph starts."
    assert split_units(prose) == [
        "First sentence here.",
        "Second one follows!",
        "Third?",
        "Yes.",
        "New paragraph starts.",
    ]
    assert split_units("a b\nc d\n\ne f") == ["a b", "c d", "e f"]
    long = split_units("word " * 300)
    assert all(len(unit) <= 400 for unit in long)
    assert "".join(long) == ("word " * 300).strip()


def test_rare_facts_beat_boilerplate(count: Count) -> None:
    filler = "The system is running normally and the status is fine. " * 60
    text = (
        "Report for the night shift. Nothing unusual at first. All checks green. "
        + filler
        + "Quarantined server zeta-17 after detecting cryptominer traffic to 203.0.113.9. "
        + filler
    )
    draft = draft_text(text, count=count, max_tokens=80)
    assert draft.text.startswith("Report for the night shift.")
    assert "zeta-17" in draft.text
    assert "[…]" in draft.text
    assert count(draft.text) <= 80


def test_error_lines_are_pinned() -> None:
    units = ["lead"] * 3 + ["plain words here"] * 5 + ["ERROR disk full"]
    ranks = rank_units(units)
    assert ranks[-1] < min(ranks[3:-1])


def test_text_without_words_falls_back_to_head_tail(count: Count) -> None:
    text = "\x00\x01" * 5000
    draft = draft_text(text, count=count, max_tokens=40)
    assert count(draft.text) <= 40


def test_compressor(count: Count) -> None:
    digest = TextCompressor().compress("Sentence one. " * 200, count=count, max_tokens=30)
    assert digest.kind == "text"
    assert digest.digest_tokens <= 30
