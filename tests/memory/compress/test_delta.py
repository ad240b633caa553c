"""Tests for memory._compress.delta: similarity, best match, unified-diff bodies."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memory._compress.delta import RecentOutputs, best_match, delta_body, similarity

LINES = [f"line {i}: value {i * 3}" for i in range(200)]
TEXT = "\n".join(LINES)


def test_identical_outputs_are_unchanged() -> None:
    assert similarity(TEXT, TEXT) == 1.0
    assert delta_body(TEXT, TEXT) == "unchanged"
    match = best_match(TEXT, [("b", "other"), ("a", TEXT)])
    assert match is not None and (match.ref, match.ratio) == ("a", 1.0)


def test_one_changed_line_gives_a_small_hunk() -> None:
    edited = TEXT.replace("line 100: value 300", "line 100: value 301")
    body = delta_body(TEXT, edited)
    assert body.splitlines() == [
        "@@ -100,3 +100,3 @@",
        " line 99: value 297",
        "-line 100: value 300",
        "+line 100: value 301",
        " line 101: value 303",
    ]


def test_unrelated_outputs_do_not_match() -> None:
    other = "\n".join(f"row {i} of something else entirely" for i in range(200))
    assert similarity(TEXT, other) < 0.5
    assert best_match(other, [("a", TEXT)]) is None


def test_the_most_similar_earlier_output_wins() -> None:
    close = TEXT.replace("value 3\n", "value three\n")
    far = "\n".join(LINES[:120])
    match = best_match(TEXT, [("far", far), ("close", close)])
    assert match is not None and match.ref == "close"


def test_recent_outputs_forget_the_oldest() -> None:
    recent = RecentOutputs(limit=2)
    for ref in ("a", "b", "c"):
        recent.remember(ref, ref * 3)
    assert [ref for ref, _ in recent.items()] == ["c", "b"]
    assert len(recent) == 2


@given(
    old=st.lists(st.sampled_from(["a", "b", "c -- d", "--- e", "+++ f", ""]), max_size=30),
    new=st.lists(st.sampled_from(["a", "b", "c -- d", "--- e", "+++ f", ""]), max_size=30),
)
def test_a_delta_rebuilds_the_new_output(old: list[str], new: list[str]) -> None:
    before, after = "\n".join(old), "\n".join(new)
    body = delta_body(before, after)
    if body == "unchanged":
        assert before == after
        return
    rebuilt: list[str] = []
    position = 0
    lines = before.split("\n")
    for line in body.split("\n"):
        if line.startswith("@@"):
            start = int(line.split()[1].split(",")[0][1:])
            length = line.split()[1].split(",")
            first = start - 1 if len(length) == 1 or length[1] != "0" else start
            rebuilt += lines[position:first]
            position = first
        elif line.startswith("-"):
            position += 1
        elif line.startswith("+"):
            rebuilt.append(line[1:])
        else:
            rebuilt.append(line[1:])
            position += 1
    rebuilt += lines[position:]
    assert rebuilt == after.split("\n")
