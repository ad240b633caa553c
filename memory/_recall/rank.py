"""Rank a session's evicted turns for a query, at a cost that does not grow with history.

Candidates come from top-k queries only: the best ``WORD_POOL`` passages by words (BM25
on SQLite, ``ts_rank`` on PostgreSQL), the best ``POOL`` by embedding (FAISS;
``NEXT_POOL`` for each further query), and the passages holding the query's words as a
phrase (their turns, kinds and lengths from ``memory._recall.places``). Each passage
gets four signals, turned into z-scores so they can be summed: embedding similarity of
the passage (weight 1) and of its context copy (0.5), full-text score of the passage
(0.3) and in context (0.15); a context copy, holding two turns, counts for both
(``memory._recall.per_turn.shared_copies``).
Similarities are measured against a fixed-size sample of the index (how this query's
similarities spread), word scores from 0 (unmatched passages score 0) over the turns in
scope; so the scale, and with it the policy's relevance floor, is the one a full scan
gave, without one. A turn takes its best passage. Priors follow: longer turns are
favoured a little, a turn by a speaker the query names gets a bonus, as does a turn
sent on a day or in a month the query names (read as candidates too,
``memory._recall.when``), a turn holding the query's words in order, or a rare
identifier it names (``memory._recall.exact``), is lifted, and turns of a segment (a
session under its date header) where the best turns cluster are lifted too, by how
well they match (the speaker prior left out), not in a conversation of one segment,
where a lift for all would only push weak turns over the relevance floor.
A name no message carries is taken for the role the other role addresses by it, and
searched as that role's speaker (``memory._recall.speakers``). A query naming one
speaker is embedded twice, as asked and without the name, and a passage keeps the
closer of the two (its words are searched without the name): the name, in nearly all
of that speaker's turns and those that greet them, would pull the search towards
greetings rather than the topic. So is a query naming several speakers, without the
names their messages carry (LoCoMo dev, markers feeding: evidence recall of the last 5
conversations 0.878 / 0.931 → 0.885 / 0.936 at 2,000 / 4,000 tokens, the first 2
0.914 / 0.959 → 0.915 / 0.957). Measured on LoCoMo
(benchmarks/locomo.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from memory._beside import Beside
from memory._indexer import Indexer
from memory._recall.exact import exact_holders
from memory._recall.fuse import SEGMENT_BOOST, segment_strength
from memory._recall.layout import Layout
from memory._recall.members import members
from memory._recall.per_turn import CandidateTurns, PassageColumns, per_turn, shared_copies
from memory._recall.places import Places
from memory._recall.speakers import SpokenTurns, named_roles, speaking_roles, without_names
from memory._recall.when import DATE_BONUS, DATE_POOL, dated_search
from memory._seq_column import as_array
from stores.text_search import word_pattern
from stores.turn_index import TurnIndex

__all__ = [
    "EXACT_BONUS",
    "LENGTH_PRIOR",
    "MIN_WORD_SCORE",
    "NEXT_POOL",
    "POOL",
    "SPEAKER_BONUS",
    "WEIGHTS",
    "WORD_POOL",
    "Layout",
    "RankedTurn",
    "TurnRanker",
]

WEIGHTS = {"vector": 1.0, "vector_context": 0.5, "words": 0.3, "words_context": 0.15}
"""How much each signal's z-score counts."""
WORDS_ALONE = (WEIGHTS["vector"] + WEIGHTS["words"]) / WEIGHTS["words"]
"""Times a passage's word z-score when it has no embedding similarity (the embedder is
down, or has not embedded it yet): its words then count for both signals, so a rare word
still clears the relevance floors an embedded match would."""
LENGTH_PRIOR = 0.5
"""Times the z-score of a turn's log length: facts come in sentences, not in "thanks!"."""
LENGTH_CLIP = 2.0
"""Most the length z-score counts either way."""
SPEAKER_BONUS = 4.0
"""Added to the turns of a speaker the query names (in z-score units): a question about
someone is answered by their own turns (97% of the evidence of LoCoMo dev questions
naming one speaker). ``benchmarks/locomo.py``, all 7 dev conversations, evidence recall
at 2k / 4k with 2.0 → 4.0: markers 0.888 / 0.939 → 0.892 / 0.940 (first 2: 0.915 /
0.957 → 0.917 / 0.957; last 5: 0.880 / 0.934 → 0.885 / 0.935), plain 0.891 / 0.937 →
0.893 / 0.939 (first 2: 0.910 / 0.955 → 0.912 / 0.958; last 5: 0.886 / 0.932 → 0.887 /
0.934); 6.0: plain 0.891 / 0.938. ``benchmarks/cost.py``'s
feeding (speakers written in the text) at 4,000 tokens: 0.939 → 0.944 (4.0 cut it
from 0.894 to 0.864 while its speakers' roles were inferred wrong, see
``memory._recall.speakers``)."""
EXACT_BONUS = 3.0
"""Added to turns holding the query's words in order, or a rare identifier it names
(``memory._recall.exact``): a quoted phrase is the surest sign."""
POOL = 200
"""Passages taken from the top-k by embedding for the query as asked (plus
``_WINDOW_SLACK`` twice): a lookup fills thousands of tokens, and its evidence may rank
in the hundreds. ``benchmarks/cost.py``'s LoCoMo feeding, evidence recall at 2k / 4k / 8k
tokens: 0.944 / 0.966 / 0.970; 100: 0.939 / 0.957 / 0.964."""
NEXT_POOL = 100
"""``POOL`` for each further query (the query without the speakers it names): it mostly
finds the first one's neighbours again. Same measure: 0.943 / 0.965 / 0.969 (200: 0.944 /
0.966 / 0.970); ``benchmarks/locomo.py``, all 7 dev conversations at 2k / 4k, markers
0.890 / 0.941 → 0.890 / 0.939, plain 0.893 / 0.940 → 0.893 / 0.939;
``benchmarks/assembly_latency.py`` at 10,000 turns: ~8% less time."""
WORD_POOL = 200
"""Passages taken from the top-k by words (BM25). Same measure: 100 or 32: 0.941-0.944 /
0.962 / 0.965 (``benchmarks/locomo.py``'s feedings: within 0.004 either way)."""
MIN_WORD_SCORE = 1e-3
"""A word hit scoring this or less (BM25 of words nearly every passage holds, whose
weight is ~0) makes no candidate: the priors alone would lift it."""
BESIDE_COST = 2_000_000
"""Vector components a search by meaning reads (``Indexer.search_cost``) from which it
runs on a helper thread beside the search by words (``memory._beside``): ~0.3 ms of
FAISS's scan, against the ~0.1 ms a helper takes to start. At 10,000 turns of
``benchmarks/assembly_latency.py`` (2.56 million) ``assemble`` took p10 2.52 ms with the
helper against 2.84 without; at 100 turns a helper cost more than the scan."""
SAMPLE = 2048
"""Vectors the similarity spread is measured on."""


class RankedTurn(NamedTuple):
    """A turn worth recalling: its seq, score and the index of its best passage (a named
    tuple: a ranking makes hundreds)."""

    seq: int
    score: float
    passage: int = 0
    passage_id: int | None = None
    """The best passage's id (its context copy's when only that was found; None when
    only a phrase match found the turn)."""


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
        self._name_roles: dict[str, tuple[str | None, int]] = {}
        self._spoken = SpokenTurns()
        # Where passages belong (passages never change; a session's are deleted only with
        # the session): looked up once per id, not per query.
        self._places = Places(passages, session)
        self._sampled = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool))

    def _is_context(self, ids: np.typing.NDArray[np.int64]) -> np.typing.NDArray[np.bool_]:
        """Whether each sampled passage is a context copy (the sample grows at its end
        until the index doubles: only new ids are looked at)."""
        last_ids, last_mask = self._sampled
        same = len(ids) >= len(last_ids) and np.array_equal(ids[: len(last_ids)], last_ids)
        start = len(last_ids) if same else 0
        tail = ids[start:]
        found = self._places.locate(tail)
        mask = members(tail, found.ids[found.context])
        if same:
            mask = np.concatenate([last_mask, mask])
        self._sampled = (ids.copy(), mask)
        return mask

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
        named, queries = self._speakers(query, before_seq, layout)
        dated, queries, only_dates = dated_search(query, queries, layout, before_seq)
        found, words, phrased = self._candidates(query, queries, before_seq)
        found, words = self._with_dated(found, words, dated)
        if only_dates:  # "What did I say on 3 June?": the turns sent then, nothing else
            kept = members(found.seqs, np.asarray(dated, dtype=np.int64))
            found, words = found.rows(kept), words[kept]
        if not len(found):
            return []
        shared, repeated = shared_copies(found, as_array(layout.searchable[0]))
        found, words = found.joined(shared), np.concatenate([words, words[repeated]])
        turns, words_only = self._signals(queries, found, words, layout.in_scope(before_seq))
        speaker = self._priors(turns, phrased, named, words_only)
        when = members(turns.seqs, np.asarray(dated, dtype=np.int64))
        speaker[when] += DATE_BONUS
        seqs = turns.seqs
        # A segment is lifted for how well its best turns match the topic; who speaks in
        # them is left out (a segment where the named speaker talks more is no closer).
        topic = turns.bonus + turns.signals
        topic[when] = np.maximum(topic[when], 0.0)  # sent then: no topic counts against it
        starts = np.asarray(layout.segment_starts, dtype=np.int64)
        final = topic + speaker + SEGMENT_BOOST * segment_strength(seqs, topic, starts)
        by_seq = np.argsort(seqs, kind="stable")  # ties: the older turn first
        order = by_seq[np.argsort(-final[by_seq], kind="stable")]
        if limit is not None:
            order = order[: max(limit, 0)]
        passage_ids = turns.passage_id[order]
        ids = passage_ids.astype(object)
        ids[passage_ids < 0] = None  # found by a prior alone: no passage
        columns = zip(
            seqs[order].tolist(), final[order].tolist(), turns.passage[order].tolist(),
            ids.tolist(), strict=True,
        )  # fmt: skip
        return list(map(RankedTurn._make, columns))  # hundreds: no per-item Python code

    def _candidates(
        self, query: str, queries: Sequence[str], before_seq: int
    ) -> tuple[PassageColumns, np.typing.NDArray[np.float64], dict[int, tuple[int, int]]]:
        """Passages from the top-k queries (words of the last query first, then vectors of
        each, each passage once), each one's word score (0 for those found by vector),
        and the turns holding ``query`` exactly, with the passage that does
        (``exact_holders``).

        The search by meaning runs on a helper thread meanwhile (``memory._beside``
        says what that gains)."""
        near: Beside[list[np.typing.NDArray[np.int64]]] | None = None
        if (indexer := self.indexer) is not None:
            near = Beside(
                lambda: indexer.nearest_many(queries, POOL + 2 * _WINDOW_SLACK),
                helper=indexer.search_cost(queries) >= BESIDE_COST,
            )
        # The words' best, from the full-text index alone: the places kept say which turns
        # they are in (the newest turns, sent verbatim, are left out here).
        pairs = self._passages.search_ids(
            self._session, queries[-1], limit=WORD_POOL + 2 * _WINDOW_SLACK
        )
        pairs = [p for p in pairs if p[1] > MIN_WORD_SCORE]  # words every passage holds
        located = self._places.locate([i for i, _ in pairs])
        score_of = dict(pairs)
        older = located.seqs < before_seq
        found = located.rows(older & (np.cumsum(older) <= WORD_POOL))
        scores = np.fromiter((score_of[i] for i in found.ids.tolist()), np.float64, len(found))
        phrased = exact_holders(
            self._passages, self._session, query, queries[0], before_seq=before_seq
        )
        if near is None:
            return found, scores, phrased
        lists = near.result()
        pools = [POOL, *[NEXT_POOL] * (len(lists) - 1)]
        taken = (ids[: pool + 2 * _WINDOW_SLACK] for ids, pool in zip(lists, pools, strict=True))
        nearest = np.concatenate([np.zeros(0, dtype=np.int64), *taken])
        if not len(nearest):
            return found, scores, phrased
        _, first = np.unique(nearest, return_index=True)
        near_found = self._places.locate(nearest[np.sort(first)])  # each once, where first found
        fresh = (near_found.seqs < before_seq) & ~members(near_found.ids, found.ids)
        columns = found.joined(near_found.rows(fresh))
        return columns, np.concatenate([scores, np.zeros(int(fresh.sum()))]), phrased

    def _with_dated(
        self, found: PassageColumns, words: np.typing.NDArray[np.float64], dated: list[int]
    ) -> tuple[PassageColumns, np.typing.NDArray[np.float64]]:
        """The candidates with the passages of the turns sent when the query asks about
        (``dated``, seqs; none when there are more than ``DATE_POOL``: too many to tell
        apart by time), each once, with no word score."""
        if not dated or len(dated) > DATE_POOL:
            return found, words
        ids = [hit.id for hit in self._passages.of_turns(self._session, dated)]
        located = self._places.locate(ids)
        fresh = located.rows(~members(located.ids, found.ids))
        return found.joined(fresh), np.concatenate([words, np.zeros(len(fresh))])

    def _signals(
        self,
        queries: Sequence[str],
        found: PassageColumns,
        words: np.typing.NDArray[np.float64],
        populations: tuple[int, int],
    ) -> tuple[CandidateTurns, np.typing.NDArray[np.bool_]]:
        """Each candidate turn's best z-scored signals (own passage and context copy; the
        embedding similarity of the query closest to it), and which turns have no
        similarity (measured by words alone, ``WORDS_ALONE``); word scores are measured
        over ``populations``, the passages and context copies in scope (counts)."""
        context = found.context
        z_words = np.zeros(len(found), dtype=np.float64)
        for kind, population in zip((False, True), populations, strict=True):
            chosen = context == kind
            values = words[chosen]
            count = max(population, len(values))
            mean = values.sum() / count
            spread = math.sqrt(max(float((values**2).sum()) / count - mean**2, 0.0))
            if spread > 0:  # unmatched passages score 0: matches are measured from 0
                z_words[chosen] = values / spread
        z_vectors = np.zeros(len(found), dtype=np.float64)
        embedded = np.zeros(len(found), dtype=bool)
        if self.indexer is not None:
            similar = self.indexer.scores_many(queries, found.ids).astype(np.float64)
            scored = [self._vector_z(q, s, context) for q, s in zip(queries, similar, strict=True)]
            z_vectors = np.max([z for z, _ in scored], axis=0)
            embedded = scored[0][1]
        # A passage with no similarity (the embedder down, or not embedded yet) is
        # measured by its words alone, on the scale both signals together would give.
        z_words = np.where(embedded, z_words, WORDS_ALONE * z_words)
        turns = per_turn(found, z_vectors, z_words, WEIGHTS)
        return turns, ~members(turns.seqs, found.seqs[embedded])

    def _vector_z(
        self,
        query: str,
        similarity: np.typing.NDArray[np.float64],
        context: np.typing.NDArray[np.bool_],
    ) -> tuple[np.typing.NDArray[np.float64], np.typing.NDArray[np.bool_]]:
        """The z-scored embedding ``similarity`` of each passage to ``query`` (0 where
        there is none, NaN), and where there is one."""
        assert self.indexer is not None
        z = np.zeros(len(similarity), dtype=np.float64)
        sampled, sample = self.indexer.sample_scores(query, SAMPLE)
        sample_context = self._is_context(sampled)
        for kind in (False, True):  # own passages and context copies spread apart
            values = sample[sample_context == kind].astype(np.float64)
            spread = values.std() if len(values) > 1 else 0.0
            if spread > 0:
                chosen = (context == kind) & ~np.isnan(similarity)
                z[chosen] = (similarity[chosen] - values.mean()) / spread
        return z, ~np.isnan(similarity)

    def _priors(
        self,
        turns: CandidateTurns,
        phrased: dict[int, tuple[int, int]],
        named: list[Sequence[int]],
        words_only: np.typing.NDArray[np.bool_],
    ) -> np.typing.NDArray[np.float64]:
        """Add the length and phrase priors (``phrased``: the seqs of turns holding the
        query exactly, ``exact_holders``) to each candidate turn; return each one's speaker prior.
        The phrase prior is a word signal: for a turn measured by words alone
        (``words_only``; a turn found by the phrase alone, when no candidate has a
        similarity) it is scaled as they are."""
        lengths = np.log1p(turns.chars.astype(np.float64))
        if len(lengths) > 1 and lengths.std() > 0:
            # Clipped: among candidates of one length, a short turn's z would be extreme.
            z = np.clip((lengths - lengths.mean()) / lengths.std(), -LENGTH_CLIP, LENGTH_CLIP)
            turns.bonus += LENGTH_PRIOR * z
        if phrased:  # most questions stand in no passage word for word
            where = {seq: i for i, seq in enumerate(turns.seqs.tolist())}
            scale = np.where(words_only, WORDS_ALONE, 1.0)
            lifted = [where[seq] for seq in phrased if seq in where]
            turns.bonus[lifted] += EXACT_BONUS * scale[lifted]
            alone = WORDS_ALONE if words_only.all() else 1.0  # no similarity at all
            new = [seq for seq in phrased if seq not in where]
            turns.add(new, EXACT_BONUS * alone)
            where |= {seq: len(where) + i for i, seq in enumerate(new)}  # rows appended
            rows = [where[seq] for seq in phrased]  # quoted by the passage holding the phrase
            turns.passage[rows], turns.passage_id[rows] = np.array(list(phrased.values())).T
        speaker = np.zeros(len(turns.seqs), dtype=np.float64)
        for spoken in named:
            speaker[self._spoken.among(spoken, turns.seqs)] += SPEAKER_BONUS
        return speaker

    def _speakers(
        self, query: str, before_seq: int, layout: Layout
    ) -> tuple[list[Sequence[int]], tuple[str, ...]]:
        """The turn seqs of each speaker the query names, and the queries to search with.

        A named speaker is known from the messages. A name no message carries is taken for
        the role the other role addresses by it (``memory._recall.speakers``) and replaced
        by the speaker that role's turns are indexed under ("What did user research?"):
        the name itself is found in the other role's turns. A query naming one speaker
        is searched twice, as asked and without the name (``without_names``), whose
        words are searched; each turn keeps the closer embedding; a speaker only
        inferred, without the name alone ("user" is in all the user's turns alike:
        LoCoMo dev, plain feeding, 4,000 tokens: 0.950 -> 0.954). One naming several
        speakers is about them all: searched as asked, and also without the names their
        messages carry (every passage of theirs starts with its speaker's name, so those
        words match all their turns alike); a name only inferred is kept, found where
        someone addresses its speaker."""
        found: list[Sequence[int]] = []
        names: list[str] = []
        speakers = layout.speakers or {}
        for name, spoken in speakers.items():
            if word_pattern(name).search(query):
                found.append(spoken)
                names.append(name)
        roles = layout.roles or {}
        inferred: dict[str, str] = {}
        if any(roles.values()):
            inferred = named_roles(
                self._passages, self._session, query, before_seq=before_seq, roles=roles,
                known=speakers, cache=self._name_roles,
            )  # fmt: skip
            found += [roles[role] for role in inferred.values()]
        asked = speaking_roles(query, inferred, roles=roles, speakers=speakers)
        gone = [*names, *inferred] if len(found) == 1 else names
        content = without_names(query, gone) if gone else query
        if content in (query, asked):
            return found, (asked,)
        return found, (content,) if len(found) == 1 and inferred else (asked, content)


_WINDOW_SLACK = 32
"""Extra hits (twice this) read to make up for those in the verbatim window."""
