"""Candidate passages folded into candidate turns (``memory._recall.per_turn``)."""

from __future__ import annotations

import numpy as np

from memory._recall.per_turn import PassageColumns, per_turn, shared_copies
from memory._recall.rank import WEIGHTS
from stores.turn_index import PassageHit


def test_turns_found_only_by_their_context_copies_are_candidates() -> None:
    # The second new-user trial: with the embedder down, every passage a search found was
    # a context copy (a turn read after the one before it), and ranking raised IndexError.
    found = PassageColumns.of([PassageHit(11, 4, 0, True, 80), PassageHit(7, 2, 0, True, 60)])
    turns = per_turn(found, np.zeros(2), np.array([2.0, 1.0]), WEIGHTS)
    assert turns.seqs.tolist() == [4, 2]
    assert turns.passage_id.tolist() == [11, 7]
    assert turns.chars.tolist() == [40, 30]  # half the copy: it holds the turn before too
    assert turns.signals.tolist() == [WEIGHTS["words_context"] * 2.0, WEIGHTS["words_context"]]


def test_a_turn_with_an_own_passage_is_led_by_it() -> None:
    found = PassageColumns.of(
        [
            PassageHit(11, 4, 0, True, 80),
            PassageHit(10, 4, 0, False, 30),
            PassageHit(7, 2, 0, True, 60),
        ]
    )
    turns = per_turn(found, np.zeros(3), np.array([2.0, 1.0, 1.0]), WEIGHTS)
    assert turns.seqs.tolist() == [4, 2]
    assert turns.passage_id.tolist() == [10, 7]


def test_a_context_copy_counts_for_the_turn_it_reads_first() -> None:
    # Turn 5's copy reads turn 3 (turn 4 is a tool result, not searchable) before it:
    # the copy is found again as a passage of turn 3; turn 9's copy as one of turn 8.
    found = PassageColumns.of(
        [
            PassageHit(20, 5, 0, True, 90),
            PassageHit(21, 5, 0, False, 40),
            PassageHit(30, 9, 0, True, 70),
        ]
    )
    shared, repeated = shared_copies(found, np.array([1, 3, 5, 8, 9]))
    assert shared.seqs.tolist() == [3, 8]
    assert shared.ids.tolist() == [20, 30]
    assert repeated.tolist() == [0, 2]
    both = found.joined(shared)
    words = np.array([1.0, 0.5, 2.0])
    turns = per_turn(both, np.zeros(5), np.concatenate([words, words[repeated]]), WEIGHTS)
    signal = dict(zip(turns.seqs.tolist(), turns.signals.tolist(), strict=True))
    assert signal[3] == signal[5] - WEIGHTS["words"] * 0.5  # the copy's, not turn 5's own
    assert signal[8] == signal[9] == WEIGHTS["words_context"] * 2.0


def test_a_copy_at_the_first_searchable_turn_is_shared_with_none() -> None:
    found = PassageColumns.of([PassageHit(20, 2, 0, True, 90)])
    shared, repeated = shared_copies(found, np.array([2, 4]))
    assert len(shared) == 0 and len(repeated) == 0
    assert len(shared_copies(found, np.zeros(0, dtype=np.int64))[0]) == 0
