"""Which of a query's words a turn search reads: the rarest, within a cap on matched rows.

Both stores score passages by their words' rarity in the session (SQLite's BM25, the
IDF-weighted rank of PostgreSQL), and both cost about one step per passage a word
matches. A word found in hundreds of a session's passages adds little to the ranking and
most of its cost, so words are taken rarest first until they would match more than
``MAX_POSTINGS`` passages together; the rarest word is always kept. When even the rarest
matches more than ``MAX_SCORED``, a search reads only the newest ``MAX_SCORED`` passages
it matches (and so does a phrase search, of its rarest word): a word that common weighs
little in the ranking, and search by meaning still reaches the older turns. A search's
cost is bounded however long the session grows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = [
    "MAX_POSTINGS",
    "MAX_SCORED",
    "OLDER_POOL",
    "TOGETHER",
    "idf",
    "rarest_within",
    "together",
]

MAX_POSTINGS = 500
"""Most passages a search's words may match together. Measured with
``benchmarks/locomo.py`` (all 7 dev conversations, both feedings, 2k / 4k, SQLite):
500 leaves a word out of 11% of the searches and evidence recall moves by at most 0.002
from 2,000's (which never bound there), while a search at 10,000 turns takes 1.8 ms
instead of 6.0 ms."""

MAX_SCORED = 2_000
"""Most passages a search scores: when even its rarest word matches more, only the newest
``MAX_SCORED`` of them are read (BM25 on SQLite takes ~1.5 µs a row, so ~3 ms at most).
Four times ``MAX_POSTINGS``, so that a word in a few hundred passages ("Anna" in 527 of
them, a birthday 600 exchanges back) is still read whole: at 500 the new-user trial lost
that fact while the embedder was down."""


TOGETHER = 2
"""Words a search asks for together past its newest ``MAX_SCORED`` passages (``together``)."""
OLDER_POOL = 32
"""Most passages older than the newest ``MAX_SCORED`` that a search adds for holding the
query's ``TOGETHER`` rarest words together: the best by BM25 for those words, among the
newest ``MAX_SCORED`` that hold them (the newest 32 missed a fact once 50 later turns
held both words: the second new-user trial)."""


def together(counts: Mapping[str, int]) -> list[str]:
    """The query's rarest words (``TOGETHER``) to look for together in passages older
    than the newest ``MAX_SCORED`` a search reads: only when even the rarest word matches
    more than that and the session holds two of the query's words, else none.

    A fact said once long ago in words the session uses all the time ("My locker code is
    4417" among 1,500 turns about lockers and 1,500 about code) is past the newest
    ``MAX_SCORED`` passages of each word, but few passages hold both: without this, with
    the embedder down (or one that misses it), neither words nor the phrase found it
    (the third new-user trial)."""
    held = sorted((t for t, n in counts.items() if n > 0), key=lambda t: (counts[t], t))
    if len(held) < 2 or counts[held[0]] <= MAX_SCORED:
        return []
    return held[:TOGETHER]


def rarest_within(counts: Mapping[str, int], cap: int | None = None) -> list[str]:
    """The terms to search, rarest first (ties by term): those the session holds
    (count > 0), up to ``cap`` (default ``MAX_POSTINGS``) matched passages in all, the
    rarest always kept."""
    cap = MAX_POSTINGS if cap is None else cap
    kept: list[str] = []
    total = 0
    for term in sorted((t for t, n in counts.items() if n > 0), key=lambda t: (counts[t], t)):
        if kept and total + counts[term] > cap:
            break
        kept.append(term)
        total += counts[term]
    return kept


def idf(passages: int, holding: int) -> float:
    """BM25's inverse document frequency of a term ``holding`` of ``passages`` hold, as
    SQLite's FTS5 computes it: ``ln((N - n + 0.5) / (n + 0.5))``, at least ``1e-6``
    (Robertson and Zaragoza, "The Probabilistic Relevance Framework: BM25 and Beyond",
    2009, eq. 3.3, without Lucene's +1; FTS5's ``bm25()`` floors it so, in fts5_aux.c).
    A word in over half the passages weighs next to nothing on both stores alike."""
    return max(math.log((max(passages, holding) - holding + 0.5) / (holding + 0.5)), 1e-6)
