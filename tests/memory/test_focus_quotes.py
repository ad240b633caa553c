"""A query that quotes an archived output reads it: its hit comes back whole."""

from __future__ import annotations

from memory import ConversationMemory
from memory._focus import focus, quotes

CODE = "\n".join(
    f"def step_{i}(value):\n    # normalise the value before step {i}\n    return value * {i}"
    for i in range(60)
)


def test_a_quote_is_words_in_a_row_of_the_hit() -> None:
    text = "the quick brown fox jumps over the lazy dog near the river bank"
    assert quotes(text, "ick brown fox jumps over the lazy dog ne")  # cut mid-word at both ends
    assert not quotes(text, "fox lazy dog river quick brown jumps over")  # its words, no quote
    assert not quotes(text, "brown fox jumps")  # too few words to be a quote
    assert quotes(text, "x lazy dog near the river bank and then some words")  # runs on


def test_a_quote_gets_its_hit_whole_and_keywords_their_lines() -> None:
    hit = "\n".join(CODE.splitlines()[30:60])
    assert focus(hit, "step_14") != hit  # a lookup: narrowed to its lines
    quote = "def step_14(value): # normalise the value before step 14 return"
    assert focus(hit, quote) == hit


def test_recall_of_a_quote_brings_back_what_follows_it() -> None:
    """``benchmarks/tool_outputs.py``: 30-token spans asked for by their first 12 words came
    back 751 times of 920 once hits were narrowed to their rarest words' lines."""
    log = "\n".join(f"worker w{i} processed batch b{i} of the nightly import" for i in range(300))
    call = {"id": "c1", "type": "function", "function": {"name": "cat", "arguments": "{}"}}
    with ConversationMemory.open(":memory:", session="q") as mem:
        mem.add([{"role": "user", "content": "show the log"},
                 {"role": "assistant", "content": "", "tool_calls": [call]},
                 {"role": "tool", "tool_call_id": "c1", "content": log}])  # fmt: skip
        ref = mem.archive.refs()[0].ref
        mem.wait_until_indexed()
        quoted = mem.recall(ref=ref, query="worker w41 processed batch b41 of the nightly import")
        assert "worker w44 processed batch b44" in quoted
        looked_up = mem.recall(ref=ref, query="batch b41")
        assert "worker w41 processed" in looked_up
        assert "worker w44 processed" not in looked_up
