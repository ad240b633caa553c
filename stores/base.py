"""Storage protocols and the records they exchange.

``stores`` knows nothing of ``memory``: records carry messages as JSON text, and every read
and write is scoped by a session id.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stores.turn_index import NewPassage, PassageHit, PassageRecord, TurnIndex
from stores.turns import NewTurn, SessionInfo, TurnOutline, TurnRecord, TurnStore

__all__ = [
    "SCHEMA_VERSION",
    "BlobRecord",
    "BlobStore",
    "ChunkRecord",
    "ForgetReport",
    "NewChunk",
    "NewPassage",
    "NewTurn",
    "PassageHit",
    "PassageRecord",
    "SessionInfo",
    "Store",
    "SummaryRecord",
    "SummaryStore",
    "TurnIndex",
    "TurnOutline",
    "TurnRecord",
    "TurnStore",
    "VectorIndex",
]


SCHEMA_VERSION = 6
"""The schema this code writes; older stores are migrated to it on open, newer refused."""


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """An archived original: where it came from and what it cost."""

    session: str
    ref: str
    sha256: str
    size: int
    kind: str
    tokens: int
    digest_tokens: int
    note: str
    created_at: float


@dataclass(frozen=True, slots=True)
class NewChunk:
    """A piece of an original, cut on a natural boundary: ``original[start:end]``."""

    start: int
    end: int
    text: str


@dataclass(frozen=True, slots=True)
class ChunkRecord:
    """A stored chunk; ``id`` is unique in the store and keys its vector."""

    id: int
    session: str
    ref: str
    idx: int
    start: int
    end: int
    text: str


class BlobStore(Protocol):
    """Archived originals (byte-exact, checked by SHA-256) and their chunks, per session."""

    def lookup(self, session: str, ref: str) -> str | None:
        """Return the SHA-256 stored under ``ref``, or None if the ref is free."""
        ...

    def put(self, record: BlobRecord, data: bytes, chunks: Sequence[NewChunk]) -> bool:
        """Store an original and its chunks; False if the ref already holds the same bytes.

        Raises:
            StoreError: the ref holds other bytes, or the backend failed.
        """
        ...

    def get(self, session: str, ref: str) -> tuple[BlobRecord, bytes]:
        """Return the record and the original bytes, checked against their SHA-256.

        Raises:
            RefNotFoundError: no such ref in this session.
            StoreError: the stored bytes no longer match their SHA-256.
        """
        ...

    def refs(self, session: str) -> list[BlobRecord]:
        """Return the session's archived originals, oldest first."""
        ...

    def chunks(self, session: str, ref: str | None = None) -> list[ChunkRecord]:
        """Return a session's chunks (of one ref, or all), in order."""
        ...

    def last_chunk_id(self, session: str) -> int:
        """Return the highest chunk id of a session, 0 when it has none."""
        ...

    def chunks_by_id(
        self, session: str, ids: Sequence[int], *, with_text: bool = True
    ) -> list[ChunkRecord]:
        """Return the session's chunks with these ids (others' ids are ignored).

        ``with_text=False`` leaves ``text`` empty: a cheap look at where chunks are.
        """
        ...

    def search_text(
        self,
        session: str,
        query: str,
        *,
        ref: str | None = None,
        limit: int = 20,
    ) -> list[ChunkRecord]:
        """Return archived chunks matching the query's words (full-text search), best
        first; ``ref`` narrows to one output."""
        ...

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[ChunkRecord]:
        """Return chunks with no vector from ``model`` yet, oldest first."""
        ...

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one vector per chunk id, all or nothing."""
        ...

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return every vector ``model`` made for a session's chunks with an id above
        ``after``: all of them to rebuild an index, the newest to catch up with another
        process."""
        ...


class VectorIndex(Protocol):
    """Nearest-neighbour search over one session's chunk vectors (inner product)."""

    def add(self, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors under the given ids."""
        ...

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(id, score)`` pairs, best first."""
        ...

    def score_all(
        self, vector: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return every id held and its score against ``vector`` (in no set order)."""
        ...

    def ids(self) -> set[int]:
        """Return the ids held."""
        ...

    def save(self) -> None:
        """Persist the index, atomically, where it was opened (no-op in memory)."""
        ...


@dataclass(frozen=True, slots=True)
class SummaryRecord:
    """One version of a session's running summary, or a failed attempt at one.

    A summary covers every turn with ``seq <= covers_upto``; a failed attempt has
    ``error`` set and keeps the previous summary's text and coverage.
    """

    session: str
    version: int
    covers_upto: int
    text: str
    tokens: int
    summarizer: str
    input_tokens: int
    output_tokens: int
    created_at: float
    error: str | None = None


class SummaryStore(Protocol):
    """Versions of each session's running summary (derived data: can be rebuilt)."""

    def add_summary(self, record: SummaryRecord) -> None:
        """Store a summary version or a failed attempt."""
        ...

    def latest(self, session: str) -> SummaryRecord | None:
        """Return the newest successful summary, None if there is none."""
        ...

    def attempts(self, session: str) -> list[SummaryRecord]:
        """Return every version and failed attempt, oldest first."""
        ...

    def spent(self, session: str) -> tuple[int, int]:
        """Return the summarizer's input and output tokens over every attempt, summed."""
        ...

    def clear_summaries(self, session: str) -> None:
        """Forget a session's summaries (to rebuild them from the turns)."""
        ...


@dataclass(frozen=True, slots=True)
class ForgetReport:
    """What ``Store.forget`` or ``Store.forget_older_than`` deleted."""

    sessions: tuple[str, ...]
    turns: int
    blobs: int
    chunks: int
    summaries: int
    index_files: int
    passages: int = 0


class Store(Protocol):
    """Everything the memory keeps, behind one seam: one per path or URL.

    ``turns``, ``blobs``, ``passages`` and ``summaries`` share the store's backend, so a ``write()``
    block spans them: everything written inside it commits together or not at all.
    """

    @property
    def location(self) -> str:
        """Where the store lives (a path, ``":memory:"`` or a URL without its password)."""

    @property
    def turns(self) -> TurnStore:
        """The sessions' messages."""

    @property
    def blobs(self) -> BlobStore:
        """Archived originals, their chunks and the chunks' vectors."""

    @property
    def passages(self) -> TurnIndex:
        """The turn search index: passages of the sessions' turns, and their vectors."""

    @property
    def summaries(self) -> SummaryStore:
        """The sessions' running summaries."""

    @property
    def index_directory(self) -> Path | None:
        """Where FAISS index files are kept beside the store; None: in memory only."""

    @property
    def schema_version(self) -> int:
        """The schema version read (and migrated) on open."""

    def write(self) -> AbstractContextManager[None]:
        """Run a block as one transaction across the stores; roll back on any error.

        Nested blocks on the same thread join the outer transaction.

        Raises:
            StoreError: the transaction could not start or commit; nothing was written.
        """

    def forget(self, session: str) -> ForgetReport:
        """Delete every trace of a session: turns, originals, chunks, vectors, summaries,
        index files; the deleted text is not left in the store's files or tables.

        Raises:
            StoreError: the backend failed; nothing was deleted.
        """

    def forget_older_than(self, cutoff: float) -> ForgetReport:
        """Forget every session whose newest turn is older than ``cutoff`` (epoch seconds).

        Raises:
            StoreError: the backend failed; nothing was deleted.
        """

    def close(self) -> None:
        """Release the backend (idempotent); later calls raise ``StoreError``."""
