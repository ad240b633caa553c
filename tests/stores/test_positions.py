"""Positions in an ascending column: the same as a binary search, a run or not."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from stores.positions import count_below, positions


@st.composite
def columns(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    first = draw(st.integers(-5, 50))
    if draw(st.booleans()):  # a run: every integer from first to last
        ordered = np.arange(first, first + draw(st.integers(0, 40)), dtype=np.int64)
    else:
        values = draw(st.sets(st.integers(-5, 120), max_size=40))
        ordered = np.array(sorted(values), dtype=np.int64)
    keys = np.array(draw(st.lists(st.integers(-10, 130), max_size=30)), dtype=np.int64)
    return ordered, keys


@given(columns())
def test_positions_and_counts_match_a_binary_search(column: tuple[np.ndarray, np.ndarray]) -> None:
    ordered, keys = column
    expected = [ordered.tolist().index(k) if k in ordered else -1 for k in keys.tolist()]
    assert positions(ordered, keys).tolist() == expected
    assert count_below(ordered, keys).tolist() == np.searchsorted(ordered, keys).tolist()


def test_a_run_with_a_gap_is_searched() -> None:
    ordered = np.array([3, 4, 6, 7], dtype=np.int64)  # a gap: no run, searched
    keys = np.array([5, 6, 8, 2], dtype=np.int64)
    assert positions(ordered, keys).tolist() == [-1, 2, -1, -1]
    assert count_below(ordered, keys).tolist() == [2, 2, 4, 0]
