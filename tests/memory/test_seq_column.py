"""The growing column of searchable seqs (``memory._seq_column``)."""

from __future__ import annotations

import bisect

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from memory._seq_column import SeqColumn, as_array


@given(st.lists(st.integers(min_value=0, max_value=2**40), max_size=300))
def test_a_column_reads_back_what_was_appended(values: list[int]) -> None:
    column = SeqColumn()
    for value in values:
        column.append(value)
    assert len(column) == len(values)
    assert as_array(column).tolist() == values == list(column)
    again = SeqColumn()
    for value in values:
        again.append(value)
    assert again == column and repr(again) == f"SeqColumn({values!r})"
    assert [column[i] for i in range(-len(values), len(values))] == values + values
    ascending = sorted(set(values))
    grown = SeqColumn()
    for value in ascending:
        grown.append(value)
    for probe in (0, 7, 2**39):  # bisect reads it as it reads a list
        assert bisect.bisect_left(grown, probe) == bisect.bisect_left(ascending, probe)


def test_an_array_read_before_the_column_grew_keeps_its_seqs() -> None:
    column = SeqColumn()
    for seq in range(64):
        column.append(seq)
    before = column.array()
    column.append(64)  # the buffer doubles
    assert before.tolist() == list(range(64))
    assert column.array().tolist() == list(range(65))
    with pytest.raises(ValueError):
        before[0] = 5  # read-only: a ranking cannot change the view's seqs
    with pytest.raises(IndexError):
        column[65]


def test_any_sequence_is_read_as_an_array() -> None:
    assert as_array([3, 5]).dtype == np.int64
    assert as_array(()).tolist() == []
