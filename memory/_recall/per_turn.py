"""From passages to turns: each candidate turn's best signals, best passage and length.

A turn is indexed as passages (its text, cut when long) and one context copy (read after
the turn before it, ``memory._recall.passages``). Ranking scores passages; a turn takes
the best of its own passages and the best of the context copies it is in, weighted and
summed. A context copy holds two turns, and counts for both (``shared_copies``): the
exchange matched, and either turn may be what matched.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter

import numpy as np

from stores.positions import count_below
from stores.turn_index import PassageHit

__all__ = ["CandidateTurns", "PassageColumns", "per_turn", "shared_copies"]


@dataclass(frozen=True, slots=True)
class PassageColumns:
    """Found passages as columns, one row per passage (``PassageHit``'s fields)."""

    ids: np.typing.NDArray[np.int64]
    seqs: np.typing.NDArray[np.int64]
    indices: np.typing.NDArray[np.int64]
    context: np.typing.NDArray[np.bool_]
    chars: np.typing.NDArray[np.int64]

    @classmethod
    def of(cls, found: Sequence[PassageHit]) -> PassageColumns:
        """The columns of these hits, in their order (a field at a time: a ranking reads
        hundreds, and unzipping them makes an iterator per hit)."""

        def column(field: int) -> np.typing.NDArray[np.int64]:
            return np.fromiter(map(itemgetter(field), found), dtype=np.int64, count=len(found))

        context = column(3).astype(bool)
        return cls(column(0), column(1), column(2), context, column(4))

    def __len__(self) -> int:
        return len(self.ids)

    def rows(
        self, chosen: np.typing.NDArray[np.bool_] | np.typing.NDArray[np.intp]
    ) -> PassageColumns:
        """The rows a mask marks, or those at these positions, in their order."""
        return PassageColumns(
            self.ids[chosen], self.seqs[chosen], self.indices[chosen], self.context[chosen],
            self.chars[chosen],
        )  # fmt: skip

    def joined(self, other: PassageColumns) -> PassageColumns:
        """These rows, then ``other``'s."""
        return PassageColumns(
            np.concatenate([self.ids, other.ids]), np.concatenate([self.seqs, other.seqs]),
            np.concatenate([self.indices, other.indices]),
            np.concatenate([self.context, other.context]),
            np.concatenate([self.chars, other.chars]),
        )  # fmt: skip


@dataclass(slots=True)
class CandidateTurns:
    """The candidate turns, in the order first found: each one's summed signals, prior
    bonus, length and best passage (index, id; -1 for no id)."""

    seqs: np.typing.NDArray[np.int64]
    signals: np.typing.NDArray[np.float64]
    bonus: np.typing.NDArray[np.float64]
    chars: np.typing.NDArray[np.int64]
    passage: np.typing.NDArray[np.int64]
    passage_id: np.typing.NDArray[np.int64]

    def add(self, seqs: Sequence[int], bonus: float) -> None:
        """Append turns found by a prior alone (no signal, no passage)."""
        count = len(seqs)
        self.seqs = np.concatenate([self.seqs, np.asarray(seqs, dtype=np.int64)])
        self.signals = np.concatenate([self.signals, np.zeros(count)])
        self.bonus = np.concatenate([self.bonus, np.full(count, bonus)])
        self.chars = np.concatenate([self.chars, np.zeros(count, dtype=np.int64)])
        self.passage = np.concatenate([self.passage, np.zeros(count, dtype=np.int64)])
        self.passage_id = np.concatenate([self.passage_id, np.full(count, -1, dtype=np.int64)])


def shared_copies(
    found: PassageColumns, searchable: np.typing.NDArray[np.int64]
) -> tuple[PassageColumns, np.typing.NDArray[np.intp]]:
    """The context copies among ``found`` again, each as a passage of the turn it holds
    before its own (the searchable turn before it: ``searchable``, ascending seqs of the
    turns indexed; a copy exists only where that turn is in its segment), and the rows of
    ``found`` they repeat.

    A copy reads the turn before it and then its turn: a question and its answer, a
    statement and the reply it got. Found, it says the exchange matches, not which turn
    of it does; the turn it answers gets the same context signal (``per_turn`` takes a
    turn's best). LoCoMo dev, all 7 conversations (``benchmarks/locomo.py``), evidence
    recall at 2,000 / 4,000 tokens: markers 0.901 / 0.945 -> 0.903 / 0.949, plain
    0.900 / 0.945 -> 0.900 / 0.946."""
    copies = np.flatnonzero(found.context)
    before = count_below(searchable, found.seqs[copies]) - 1
    kept = before >= 0
    rows = found.rows(copies[kept])
    previous = searchable[before[kept]].astype(np.int64)
    return PassageColumns(rows.ids, previous, rows.indices, rows.context, rows.chars), copies[kept]


def per_turn(
    found: PassageColumns,
    z_vectors: np.typing.NDArray[np.float64],
    z_words: np.typing.NDArray[np.float64],
    weights: Mapping[str, float],
) -> CandidateTurns:
    """Each turn's best signal of each kind over its passages, summed with ``weights``
    (``vector``, ``words``, and each with ``_context``), its best own passage (the first
    of equals) and its length (a turn found by its context copy alone: half the copy's;
    a turn has one context copy), turns in the order first found."""
    if not len(found):
        empty = np.zeros(0, dtype=np.int64)
        return CandidateTurns(empty, np.zeros(0), np.zeros(0), empty, empty, empty)
    seqs, chars, context = found.seqs, found.chars, found.context
    unique, first, inverse = np.unique(seqs, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # turns in the order first found
    rank = np.empty(len(unique), dtype=np.int64)
    rank[order] = np.arange(len(unique))
    turn = rank[inverse]
    count = len(unique)
    terms: list[np.typing.NDArray[np.float64]] = []  # weighted best signals, 0 where none
    for suffix, chosen in (("", ~context), ("_context", context)):
        held = np.bincount(turn[chosen], minlength=count) > 0
        for key, values in (("vector", z_vectors), ("words", z_words)):
            best = np.full(count, -math.inf)
            np.maximum.at(best, turn[chosen], values[chosen])
            terms.append(np.where(held, weights[key + suffix] * best, 0.0))
    # Summed in the order the signals were found (own first, or the context copy's first),
    # as the scores always were; adding 0.0 for a missing signal changes no sum.
    own_first = ((terms[0] + terms[1]) + terms[2]) + terms[3]
    copy_first = ((terms[2] + terms[3]) + terms[0]) + terms[1]
    signals = np.where(context[first[order]], copy_first, own_first)
    own = np.flatnonzero(~context)
    mine = weights["vector"] * z_vectors[own] + weights["words"] * z_words[own]
    # By turn, then best first, then first found (two stable sorts: a 3-key lexsort
    # takes 4x as long); the first of each turn leads it.
    by_score = own[np.argsort(-mine, kind="stable")]
    ranked = by_score[np.argsort(turn[by_score], kind="stable")]
    grouped = turn[ranked]
    leaders = ranked[np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])[: len(ranked)]]
    first_own = np.full(count, len(found))
    np.minimum.at(first_own, turn[own], own)
    own_chars = np.zeros(count, dtype=np.int64)
    np.maximum.at(own_chars, turn[own], chars[own])
    copy = np.flatnonzero(context)
    copy_chars = np.zeros(count, dtype=np.int64)
    early = copy < first_own[turn[copy]]  # a copy read before any own passage
    copy_chars[turn[copy[early]]] = chars[copy[early]] // 2
    ids = found.ids
    passage_id = np.full(count, -1, dtype=np.int64)
    passage_id[turn[copy]] = ids[copy]  # a turn with no own passage: its copy's id
    passage_id[turn[leaders]] = ids[leaders]
    passage = np.zeros(count, dtype=np.int64)
    passage[turn[leaders]] = found.indices[leaders]
    return CandidateTurns(
        seqs=unique[order], signals=signals, bonus=np.zeros(count), passage=passage,
        chars=np.maximum(own_chars, copy_chars), passage_id=passage_id,
    )  # fmt: skip
