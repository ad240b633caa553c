"""Rank a session's evicted turns for a query, at a cost that does not grow with history.

Candidates come from top-k queries only: the best ``POOL`` passages by words (BM25 on
SQLite, ``ts_rank`` on PostgreSQL), the best ``POOL`` by embedding (FAISS), and the
passages holding the query's words as a phrase. Each passage gets four signals, turned
into z-scores so they can be summed: embedding similarity of the passage (weight 1) and
of its context copy (0.5), full-text score of the passage (0.3) and in context (0.15).
Similarities are measured against a fixed-size sample of the index (how this query's
similarities spread), word scores from 0 (unmatched passages score 0) over the turns in
scope; so the scale, and with it the policy's relevance floor, is the one a full scan
gave, without one. A turn takes its best passage. Priors follow: longer turns are
favoured a little, a turn by a speaker the query names gets a bonus, a turn holding the
query's words in order is lifted, and turns of a segment (a session under its date
header) where the best turns cluster are lifted too. A name no message carries is taken
for the role the other role addresses by it, and searched as that role's speaker
(``memory._recall.speakers``). Measured on LoCoMo (benchmarks/locomo.py).
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from memory._indexer import Indexer
from memory._recall.fuse import phrase_pattern
from memory._recall.speakers import holds, named_roles, speaking_roles
from stores.turn_index import PassageHit, TurnIndex

__all__ = [
    "EXACT_BONUS",
    "LENGTH_PRIOR",
    "POOL",
    "SEGMENT_BOOST",
    "SPEAKER_BONUS",
    "WEIGHTS",
    "Layout",
    "RankedTurn",
    "TurnRanker",
]

WEIGHTS = {"vector": 1.0, "vector_context": 0.5, "words": 0.3, "words_context": 0.15}
"""How much each signal's z-score counts."""
LENGTH_PRIOR = 0.5
"""Times the z-score of a turn's log length: facts come in sentences, not in "thanks!"."""
LENGTH_CLIP = 2.0
"""Most the length z-score counts either way."""
SPEAKER_BONUS = 1.0
"""Added to the turns of a speaker the query names (in z-score units)."""
SEGMENT_BOOST = 0.4
"""Times the mean score of a segment's best turns, added to each of its turns."""
SEGMENT_TOP = 2
EXACT_BONUS = 3.0
"""Added to turns holding the query's words in order: a quoted phrase is the surest sign."""
EXACT_POOL = 50
"""Most turns lifted for holding the exact phrase."""
POOL = 200
"""Passages taken from each top-k query (words, vectors)."""
SAMPLE = 2048
"""Vectors the similarity spread is measured on."""
MAX_KNOWN = 8 * SAMPLE
"""Sampled passages whose kind is remembered (the sample changes as the index doubles)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """What the session's view knows that ranking uses (from ``SessionView.layout``).

    ``segment_starts``: ascending seqs where segments begin (their header messages);
    ``speakers``: each named speaker's turn seqs, ascending; ``roles``: the user's
    (``"human"``) and the assistant's (``"ai"``) turn seqs, ascending, for the names
    that no message carries (``memory._recall.speakers``).
    """

    segment_starts: Sequence[int] = ()
    speakers: Mapping[str, Sequence[int]] | None = None
    roles: Mapping[str, Sequence[int]] | None = None


@dataclass(frozen=True, slots=True)
class RankedTurn:
    """A turn worth recalling: its seq, score and the index of its best passage."""

    seq: int
    score: float
    passage: int = 0
    passage_id: int | None = None
    """The best passage's id (its context copy's when only that was found; None when
    only a phrase match found the turn)."""


@dataclass(slots=True)
class _Turn:
    signals: dict[str, float]
    chars: int = 0
    passage: int = 0
    passage_id: int | None = None
    passage_score: float = -math.inf
    bonus: float = 0.0


class TurnRanker:
    """Scores a session's turns for a query from its turn index and passage vectors.

    Args:
        passages: The store's turn index.
        session: The session.
        indexer: The session's passage embedder (None: words only).
    """

    def __init__(self, passages: TurnIndex, session: str, indexer: Indexer | None) -> None:
        self._passages = passages
        self._session = session
        self.indexer = indexer
        self._context: dict[int, bool] = {}  # sampled passage id → is a context copy
        self._lock = threading.Lock()

    def _is_context(self, ids: np.typing.NDArray[np.int64]) -> np.typing.NDArray[np.bool_]:
        """Whether each sampled passage is a context copy (looked up once per id)."""
        with self._lock:
            unknown = [int(i) for i in ids if int(i) not in self._context]
            if unknown:
                if len(self._context) > MAX_KNOWN:
                    self._context.clear()
                for hit in self._passages.locate(self._session, unknown):
                    self._context[hit.id] = hit.context
            return np.array([self._context.get(int(i), False) for i in ids], dtype=bool)

    def rank(
        self,
        query: str,
        *,
        before_seq: int,
        layout: Layout | None = None,
        limit: int | None = None,
    ) -> list[RankedTurn]:
        """Return the turns older than ``before_seq`` worth recalling for ``query``, best
        first (ties: the older turn first); at most ``limit`` (None: every candidate)."""
        if not query.strip() or before_seq <= 1:
            return []
        layout = layout or Layout()
        named, searched = self._speakers(query, before_seq, layout)
        hits = self._candidates(searched, before_seq)
        if not hits:
            return []
        turns = self._signals(searched, hits, before_seq)
        self._priors(query, turns, before_seq, named)
        seqs = np.fromiter(turns, dtype=np.int64, count=len(turns))
        base = np.array([_total(t) for t in turns.values()], dtype=np.float64)
        final = base + SEGMENT_BOOST * _segment_strength(
            seqs, base, np.asarray(layout.segment_starts, dtype=np.int64)
        )
        order = np.lexsort((seqs, -final))
        if limit is not None:
            order = order[: max(limit, 0)]
        found = [(int(seqs[i]), float(final[i])) for i in order]
        return [
            RankedTurn(seq, score, turns[seq].passage, turns[seq].passage_id)
            for seq, score in found
        ]

    def _candidates(self, query: str, before_seq: int) -> dict[int, tuple[PassageHit, float]]:
        """Passages from the top-k queries: ``id → (hit, word score)``."""
        found: dict[int, tuple[PassageHit, float]] = {}
        for hit in self._passages.search(self._session, query, before_seq=before_seq, limit=POOL):
            found[hit.id] = (hit, hit.score)
        if self.indexer is not None:
            nearest = [i for i, _ in self.indexer.search(query, POOL + 2 * _WINDOW_SLACK)]
            missing = [i for i in nearest if i not in found]
            for hit in self._passages.locate(self._session, missing):
                if hit.seq < before_seq:
                    found[hit.id] = (hit, 0.0)
        return found

    def _signals(
        self, query: str, hits: dict[int, tuple[PassageHit, float]], before_seq: int
    ) -> dict[int, _Turn]:
        """Each candidate turn's best z-scored signals (own passage and context copy)."""
        ids = list(hits)
        words = np.array([hits[i][1] for i in ids], dtype=np.float64)
        context = np.array([hits[i][0].context for i in ids], dtype=bool)
        z_words = np.zeros(len(ids), dtype=np.float64)
        population = max(before_seq - 1, 1)  # the turns in scope (a count, not a scan)
        for kind in (False, True):
            chosen = context == kind
            values = words[chosen]
            count = max(population, len(values))
            mean = values.sum() / count
            spread = math.sqrt(max(float((values**2).sum()) / count - mean**2, 0.0))
            if spread > 0:  # unmatched passages score 0: matches are measured from 0
                z_words[chosen] = values / spread
        z_vectors = np.zeros(len(ids), dtype=np.float64)
        if self.indexer is not None:
            similarity = self.indexer.scores_of(query, ids).astype(np.float64)
            sampled, sample = self.indexer.sample_scores(query, SAMPLE)
            sample_context = self._is_context(sampled)
            for kind in (False, True):  # own passages and context copies spread apart
                values = sample[sample_context == kind].astype(np.float64)
                chosen = (context == kind) & ~np.isnan(similarity)
                if len(values) > 1 and values.std() > 0:
                    z_vectors[chosen] = (similarity[chosen] - values.mean()) / values.std()
        turns: dict[int, _Turn] = {}
        for position, passage_id in enumerate(ids):
            hit = hits[passage_id][0]
            turn = turns.setdefault(hit.seq, _Turn({}))
            suffix = "_context" if hit.context else ""
            for key, value in (("vector", z_vectors[position]), ("words", z_words[position])):
                name = key + suffix
                turn.signals[name] = max(turn.signals.get(name, -math.inf), float(value))
            if not hit.context:
                mine = (
                    WEIGHTS["vector"] * z_vectors[position] + WEIGHTS["words"] * z_words[position]
                )
                if mine > turn.passage_score:
                    turn.passage, turn.passage_score = hit.idx, float(mine)
                    turn.passage_id = hit.id
                turn.chars = max(turn.chars, hit.chars)
            elif not turn.chars:
                turn.chars = hit.chars // 2
                turn.passage_id = turn.passage_id or hit.id
        return turns

    def _priors(
        self, query: str, turns: dict[int, _Turn], before_seq: int, named: list[Sequence[int]]
    ) -> None:
        """Add the length, phrase and speaker priors to each candidate turn."""
        lengths = np.log1p(np.array([t.chars for t in turns.values()], dtype=np.float64))
        if len(lengths) > 1 and lengths.std() > 0:
            # Clipped: among candidates of one length, a short turn's z would be extreme.
            z = np.clip((lengths - lengths.mean()) / lengths.std(), -LENGTH_CLIP, LENGTH_CLIP)
            for turn, value in zip(turns.values(), z, strict=True):
                turn.bonus += LENGTH_PRIOR * float(value)
        if phrase_pattern(query) is not None:
            phrased = self._passages.phrase(
                self._session, query, before_seq=before_seq, limit=EXACT_POOL
            )
            for seq in {h.seq for h in phrased if not h.context}:
                if seq in turns:
                    turns[seq].bonus += EXACT_BONUS
                else:
                    turns[seq] = _Turn({}, bonus=EXACT_BONUS)
        for spoken in named:
            for seq, turn in turns.items():
                if holds(spoken, seq):
                    turn.bonus += SPEAKER_BONUS

    def _speakers(
        self, query: str, before_seq: int, layout: Layout
    ) -> tuple[list[Sequence[int]], str]:
        """The turn seqs of each speaker the query names, and the query to search with.

        A named speaker is known from the messages. A name no message carries is taken for
        the role the other role addresses by it (``memory._recall.speakers``) and, in the
        query searched with, replaced by the speaker that role's turns are indexed under
        ("What did user research?"): the name itself is found in the other role's turns."""
        found: list[Sequence[int]] = []
        speakers = layout.speakers or {}
        for name, spoken in speakers.items():
            if re.search(rf"(?<!\w){re.escape(name)}(?!\w)", query, re.IGNORECASE):
                found.append(spoken)
        roles = layout.roles or {}
        if not any(roles.values()):
            return found, query
        inferred = named_roles(
            self._passages, self._session, query, before_seq=before_seq, roles=roles, known=speakers
        )
        for role in inferred.values():
            found.append(roles[role])
        return found, speaking_roles(query, inferred, roles=roles, speakers=speakers)


_WINDOW_SLACK = 32
"""Extra vector hits read to make up for those in the verbatim window."""


def _total(turn: _Turn) -> float:
    return turn.bonus + sum(WEIGHTS[k] * v for k, v in turn.signals.items())


def _segment_strength(
    seqs: np.typing.NDArray[np.int64],
    scores: np.typing.NDArray[np.float64],
    starts: np.typing.NDArray[np.int64],
) -> np.typing.NDArray[np.float64]:
    """For each turn, the mean score of the best ``SEGMENT_TOP`` turns of its segment."""
    if len(seqs) == 0:
        return np.zeros(0, dtype=np.float64)
    segment = np.searchsorted(starts, seqs, side="right")
    order = np.lexsort((-scores, segment))
    sorted_segments, sorted_scores = segment[order], scores[order]
    labels, first = np.unique(sorted_segments, return_index=True)
    counts = np.diff(np.append(first, len(order)))
    take = np.minimum(counts, SEGMENT_TOP)
    running = np.concatenate([[0.0], np.cumsum(sorted_scores)])
    top = (running[first + take] - running[first]) / take
    return np.asarray(top[np.searchsorted(labels, segment)], dtype=np.float64)
