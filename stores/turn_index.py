"""The turn search index: passages of conversation turns, searched by words and vectors.

A turn (a user or assistant message) is indexed as one or more *passages*: its text, cut
into pieces when it is long, so that a fact in the middle of a long message is found
and quoted on its own. Each turn's first passage also gets a *context* copy, read after
the turn before it (an answer is often found by the question it answers); it is for
search only. Passages are not archive chunks: they live in their own table with their
own full-text index and their own ids, and their vectors in their own FAISS index.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["NewPassage", "PassageHit", "PassageRecord", "TurnIndex", "scope_token"]


@dataclass(frozen=True, slots=True)
class NewPassage:
    """A passage about to be indexed.

    ``seq`` is the turn's, ``idx`` numbers the turn's passages from 0 in text order,
    ``context`` marks the search-only copy read after the previous turn, ``created_at``
    is the turn's time (epoch seconds).
    """

    seq: int
    idx: int
    text: str
    created_at: float
    context: bool = False


@dataclass(frozen=True, slots=True)
class PassageRecord:
    """A stored passage; ``id`` is unique in the store and keys its vector."""

    id: int
    session: str
    seq: int
    idx: int
    context: bool
    text: str
    created_at: float


class PassageHit(NamedTuple):
    """Where a found passage belongs, without its text: ``chars`` is its length.

    ``score`` is the search's (higher is better; 0 where no score was computed). A named
    tuple: a search makes hundreds, and a frozen dataclass takes 3x as long to build.
    """

    id: int
    seq: int
    idx: int
    context: bool
    chars: int
    score: float = 0.0


def scope_token(session: str) -> str:
    """A short token that stands for a session (its name may hold any text): a store
    may glue it to the session's indexed words, so a search scores only the session's
    passages, however many sessions share the index."""
    digest = hashlib.blake2b(session.encode("utf-8", "surrogatepass"), digest_size=5)
    return "s" + digest.hexdigest() + "x"


class TurnIndex(Protocol):
    """Search over the passages of a session's turns, by words (BM25 / ``ts_rank``) and
    by vectors (stored here, searched in a per-session FAISS index)."""

    def add(self, session: str, passages: Sequence[NewPassage]) -> None:
        """Index passages (joins the caller's transaction).

        Raises:
            StoreError: a passage with the same ``(seq, idx, context)`` is indexed
                already, or the backend failed; nothing was written.
        """
        ...

    def search(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 100
    ) -> list[PassageHit]:
        """Return the best ``limit`` passages holding any of the query's words, best first.

        Only turns with ``seq < before_seq`` (if given) count; unmatched passages are
        left out; a query without words finds nothing. Cost grows with the matches of
        the query's words, not with the session's length.
        """
        ...

    def search_ids(self, session: str, query: str, *, limit: int = 100) -> list[tuple[int, float]]:
        """``search``'s best ``limit`` passages of any turn as ``(id, score)`` pairs, best
        first (ties: the lower id): for a caller that knows where passages belong (see
        ``memory._recall.places``) and leaves out the turns it does not want itself."""
        ...

    def phrase(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 50
    ) -> list[PassageHit]:
        """Return passages holding the query's words in order (a phrase), newest first."""
        ...

    def locate(self, session: str, ids: Sequence[int]) -> list[PassageHit]:
        """Return where these passages belong, in the order of ``ids`` (others' ids and
        unknown ids are left out); for vector hits."""
        ...

    def of_turns(self, session: str, seqs: Sequence[int]) -> list[PassageHit]:
        """Return the passages of these turns (their own and their context copies), by
        seq, then context copies last, then place in the message; for turns picked by
        when they were sent. Callers pass a few hundred seqs at most."""
        ...

    def passages(self, session: str, ids: Sequence[int]) -> list[PassageRecord]:
        """Return these passages with their text, in the order of ``ids``."""
        ...

    def last_id(self, session: str) -> int:
        """Return the highest passage id of a session, 0 when it has none."""
        ...

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[PassageRecord]:
        """Return passages with no vector from ``model`` yet, oldest first."""
        ...

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one vector per passage id, all or nothing.

        Raises:
            StoreError: ids and vectors differ in number, or the backend failed.
        """
        ...

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return every vector ``model`` made for a session's passages with an id above
        ``after`` (ids, matrix of shape ``(len(ids), dim)``): all of them to rebuild an
        index, the newest to catch up with another process."""
        ...
