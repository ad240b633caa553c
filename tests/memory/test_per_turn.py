"""Candidate passages folded into candidate turns (``memory._recall.per_turn``)."""

from __future__ import annotations

import numpy as np

from memory._recall.per_turn import PassageColumns, per_turn
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
