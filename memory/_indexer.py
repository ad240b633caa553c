"""Embed archived chunks (or turn passages) in the background and keep a FAISS index.

``add`` only writes texts; this worker embeds them in batches off the hot path, stores
the vectors in the store (so a lost index can be rebuilt) and adds them to FAISS. A
session has two: one over its archive chunks, one over its turn passages (separate id
spaces, separate index files).
A ``recall`` right after ``add`` waits only until that output's chunks are embedded.

When the embedder fails on a query (a remote model down, or not answering within its
deadline: ``memory._embed_calls``), search goes on with full-text and phrase ranking
only: the failure is logged once per outage, kept in ``query_failure``, and queries skip
the embedder for ``QUERY_COOLDOWN_SECONDS`` before trying it again, so an outage neither
raises into a prompt nor slows every call.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from memory._embed import return_free_memory
from memory._embed_calls import QUERY_COOLDOWN_SECONDS, EmbedCalls
from memory._errors import EmbedderError
from memory._pool import WorkerPool
from memory._vector_source import ChunkVectors, VectorSource
from memory._wire import sendable
from memory._worker import BackgroundWorker
from stores.faiss_index import FAISSIndex, index_path

__all__ = [
    "DEFAULT_EMBED_BATCH",
    "QUERY_COOLDOWN_SECONDS",
    "ChunkVectors",
    "Indexer",
    "VectorSource",
]

DEFAULT_EMBED_BATCH = 64
QUERY_CACHE_SIZE = 32
CATCH_UP_SECONDS = 0.5
"""Least seconds between two looks, on the query path, for vectors another process stored
(a process serving the same session file embeds its own turns; this one adds their
vectors to its index when it sees them)."""


logger = logging.getLogger(__name__)


class Indexer(BackgroundWorker):
    """Background embedding of one session's chunks (or passages) into a FAISS index.

    Args:
        session: The session whose texts are indexed.
        source: Where the texts and their vectors are stored.
        calls: The engine's calls of the embedder (under deadlines).
        directory: Where the FAISS file lives; None keeps the index in memory.
        pool: The engine's pool the embedding runs on.
        batch_size: Texts embedded per batch.
        kind: Names the index file apart from the chunks' (see ``index_path``).

    Attributes:
        query_failure: Why the embedder failed on the last query it was tried on (None
            while it answers); queries are searched without embeddings meanwhile.
        query_cooldown_seconds: Seconds between tries of a failing embedder on queries.
    """

    def __init__(
        self,
        session: str,
        source: VectorSource,
        calls: EmbedCalls,
        *,
        directory: Path | None,
        pool: WorkerPool,
        batch_size: int = DEFAULT_EMBED_BATCH,
        kind: str | None = None,
    ) -> None:
        super().__init__(f"embedding of {session!r}" + (f" ({kind})" if kind else ""), pool)
        self.session = session
        self.model = calls.name
        self.kind = kind
        self._source = source
        self._calls = calls
        self._directory = directory
        self._batch_size = batch_size
        self._index: FAISSIndex | None = None
        self._opening = threading.Lock()  # one load of the stored index, by whoever asks first
        self._adding = threading.Lock()  # stored vectors go into the index once, by one thread
        self._next_catch_up = 0.0  # time.monotonic() of the next look for others' vectors
        self._embedded_upto = 0  # highest chunk id known to be embedded and indexed
        self.chunks_embedded = 0
        self.embed_seconds = 0.0
        self.rebuilt = False
        self._query_vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._unsaved = False
        self.query_failure: str | None = None
        self.other_dimension: str | None = None
        """Why queries are not searched by meaning: the embedder's vectors have another
        dimension than the index's (None: they have its dimension)."""
        self.query_cooldown_seconds = QUERY_COOLDOWN_SECONDS
        self._query_failed_at = 0.0

    def wait_for(self, max_chunk_id: int, timeout: float | None = None) -> bool:
        """Wait until chunks up to ``max_chunk_id`` are embedded (one output's chunks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.notify()
        while self._embedded_upto < max_chunk_id:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if self.last_error is not None or self.stopping or self._pool.stopped:
                return False
            time.sleep(0.02)
        return True

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return ``(chunk_id, score)`` pairs for the query, best first (embedded chunks).

        Empty while the embedder fails on queries (see ``query_failure``).
        """
        if (index := self._ready()) is None or (
            vector := self._query_vector(query, index.dim)
        ) is None:
            return []
        return index.search(vector, k)

    def nearest_many(self, queries: Sequence[str], k: int) -> list[npt.NDArray[np.int64]]:
        """For each query, the ids of its ``k`` nearest chunks, best first (see
        ``FAISSIndex.nearest_many``); empty while the embedder fails."""
        if (ready := self._ready_queries(queries)) is None:
            return [np.zeros(0, dtype=np.int64) for _ in queries]
        index, vectors = ready
        return [ids for ids, _ in index.nearest_many(vectors, k)]

    def search_cost(self, queries: Sequence[str]) -> int:
        """About how many vector components ``nearest_many(queries, k)`` reads: vectors
        held x dimension x queries; ``sys.maxsize`` when a query is not embedded yet or
        the index not loaded yet (an embedder's call or a load takes milliseconds)."""
        index = self._index
        if index is None or any(q not in self._query_vectors for q in queries):
            return sys.maxsize
        return len(index) * index.dim * len(queries)

    def score_all(self, query: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return every embedded chunk's id and its similarity to the query.

        Empty while the embedder fails on queries (see ``query_failure``).
        """
        if (index := self._ready()) is None or (
            vector := self._query_vector(query, index.dim)
        ) is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return index.score_all(vector)

    def scores_of(
        self, query: str, ids: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Return the query's similarity to each of these ids (NaN where not embedded, or
        all NaN while the embedder fails on queries)."""
        scores: npt.NDArray[np.float32] = self.scores_many([query], ids)[0]
        return scores

    def scores_many(
        self, queries: Sequence[str], ids: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """``scores_of`` for each query, a row each (the ids' vectors read once)."""
        if (ready := self._ready_queries(queries)) is None:
            return np.full((len(queries), len(ids)), np.nan, dtype=np.float32)
        index, vectors = ready
        return index.scores_many(vectors, ids)

    def _ready_queries(
        self, queries: Sequence[str]
    ) -> tuple[FAISSIndex, npt.NDArray[np.float32]] | None:
        """The index and the queries' vectors, a row each (None: no index yet, or the
        embedder failing on a query)."""
        if (index := self._ready()) is None:
            return None
        vectors = [self._query_vector(q, index.dim) for q in queries]
        kept = [v for v in vectors if v is not None]
        return (index, np.stack(kept)) if len(kept) == len(vectors) and kept else None

    def sample_scores(
        self, query: str, size: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return up to ``size`` embedded ids spread over the index and the query's
        similarity to each: how similarities spread for this query, at a fixed cost."""
        if (index := self._ready()) is None or (
            vector := self._query_vector(query, index.dim)
        ) is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return index.sample_scores(vector, size)

    def degraded(self) -> str | None:
        """Return why search may miss what only embeddings would find, or None.

        The embedder failing on queries comes first (they are searched by full-text and
        phrase only), then on new chunks (those are not embedded yet).
        """
        if self.query_failure is not None:
            return self.query_failure
        if self.other_dimension is not None:
            return self.other_dimension
        if self.last_error is not None:
            return f"indexing failed: {self.last_error}"
        return None

    def _query_vector(self, query: str, dim: int) -> npt.NDArray[np.float32] | None:
        """The query's vector, None while the embedder fails or gives vectors of another
        dimension than ``dim`` (the index searched: the worker may restart it meanwhile)."""
        vector = self._query_vectors.get(query)
        if vector is None and (vector := self._embedded(query)) is None:
            return None
        if vector.shape[-1] == dim:
            self.other_dimension = None
            return vector
        self.other_dimension = (  # not its vectors: search by words until it embeds its own
            f"the embedder gives {vector.shape[-1]}-dimensional vectors, this session's "
            f"stored ones have {dim}: open it with the embedder that made them"
        )
        return None

    def _embedded(self, query: str) -> npt.NDArray[np.float32] | None:
        """The query's vector from the embedder (cached), None while it fails."""
        if (
            self.query_failure is not None
            and time.monotonic() - self._query_failed_at < self.query_cooldown_seconds
        ):
            return None  # still cooling down: do not wait on a failing embedder every call
        try:
            # (a lone surrogate would fail the tokenizer, and embedding for the cool-down)
            vector = self._calls.query(sendable(query))
        except Exception as exc:  # any client error: search goes on without embeddings
            if self.query_failure is None:
                logger.warning(
                    "embedding the query failed; searching without embeddings, retrying "
                    "after %.0f s: %s: %s",
                    self.query_cooldown_seconds,
                    type(exc).__name__,
                    exc,
                )
            self.query_failure = f"embedder failed: {type(exc).__name__}: {exc}"
            self._query_failed_at = time.monotonic()
            return None
        if self.query_failure is not None:
            logger.info("the embedder answers queries again; embedding search is back")
            self.query_failure = None
        if len(self._query_vectors) >= QUERY_CACHE_SIZE:
            self._query_vectors.pop(next(iter(self._query_vectors)))
        self._query_vectors[query] = vector
        return vector

    def _ready(self) -> FAISSIndex | None:
        """The index to search (None: nothing embedded yet). A process's first query
        loads it from the stored vectors and the FAISS file, if the background worker
        has not yet: otherwise the first searches after opening a session would
        silently leave out every match by meaning (~0.8 s at 9,000 turns)."""
        index = self._index if self._index is not None else self._load(None)
        if index is not None and time.monotonic() >= self._next_catch_up:
            self._catch_up(index)
        return index if index else None

    def _catch_up(self, index: FAISSIndex) -> None:
        """Add the vectors stored since this index's newest (another process embedded
        them: it serves the same session file), at most every ``CATCH_UP_SECONDS`` on
        the query path, never waiting for the worker's write (it catches up itself). A
        vector stored by another process below this index's newest id (both adding at
        once) waits for the next open."""
        if not self._adding.acquire(blocking=False):
            return  # the worker is storing a batch: it catches up before it adds
        try:
            self._catch_up_locked(index)
        finally:
            self._adding.release()

    def _catch_up_locked(self, index: FAISSIndex) -> None:
        self._next_catch_up = time.monotonic() + CATCH_UP_SECONDS
        ids, vectors = self._source.vectors(self.session, self.model, after=index.max_id)
        if ids and vectors.shape[1] == index.dim:
            index.add(ids, vectors)
            self._unsaved = True

    def _restart_index(self, dim: int) -> FAISSIndex:
        """Start the index over at ``dim``: an embedder of the same name now gives vectors
        of another dimension (another model, or ``dimensions=``). Vectors it made before
        are not searched by meaning (words still find their turns); its new ones are, and
        an open reads those (``read_vectors`` keeps the newest dimension)."""
        logger.warning(
            "the embedder %s now gives %d-dimensional vectors, not %d: search by meaning "
            "covers what it embeds from now on",
            self.model,
            dim,
            self._index.dim if self._index is not None else 0,
        )
        with self._opening:
            self._index = index = FAISSIndex(dim, self._path())
        self.other_dimension = None
        return index

    def _path(self) -> Path | None:
        """The session's FAISS file (None: an index kept in memory only)."""
        if not self._directory:
            return None
        return index_path(self._directory, self.session, self.model, kind=self.kind)

    def _ensure_index(self, dim: int) -> FAISSIndex:
        index = self._load(dim)
        assert index is not None  # opened with ``dim`` when nothing was stored
        return index

    def _load(self, dim: int | None) -> FAISSIndex | None:
        """Open the index once, by whoever asks first: from the stored vectors and the
        FAISS file; with none stored, an empty one of ``dim`` (None: not yet)."""
        with self._opening:
            if self._index is not None:
                return self._index
            ids, vectors = self._source.vectors(self.session, self.model)
            if not ids and dim is None:
                return None
            dim = vectors.shape[1] if dim is None else dim
            if len(ids) and vectors.shape[1] != dim:  # another dimension: start empty
                ids, vectors = [], np.zeros((0, dim), dtype=np.float32)
            self._index, self.rebuilt = FAISSIndex.open(
                dim, self._path(), stored_ids=ids, stored_vectors=vectors
            )
            self._embedded_upto = max(ids, default=0)
            return self._index

    def _save(self) -> None:
        """Write the FAISS file if vectors were added since it was last written."""
        if self._unsaved and self._index is not None:
            self._index.save()
            self._unsaved = False

    def _closing(self) -> bool:
        """Whether the worker is being stopped (an embedder call in flight is left)."""
        return self.stopping or self._pool.stopped

    def step(self) -> bool:
        """Embed one batch of waiting chunks; False when none are waiting."""
        if self.stopping:
            return False
        chunks = self._source.unembedded(self.session, self.model, limit=self._batch_size)
        if not chunks:
            if (index := self._ready()) is not None:  # loaded once embedding is caught up
                self._catch_up(index)  # with what other processes embedded too
            self._save()
            self._embedded_upto = max(self._embedded_upto, self._source.last_id(self.session))
            return False
        started = time.perf_counter()
        try:
            vectors_new = self._calls.batch([c.text for c in chunks], cancelled=self._closing)
        except EmbedderError:
            if self._closing():
                return False  # not a failure: the chunks wait for the next open
            raise
        self.embed_seconds += time.perf_counter() - started
        ids_new = [c.id for c in chunks]
        index = self._ensure_index(vectors_new.shape[1])
        if index.dim != vectors_new.shape[1]:  # the embedder's dimension changed
            index = self._restart_index(vectors_new.shape[1])
        with self._adding:  # stored and indexed together: a catch-up never adds them twice
            self._catch_up_locked(index)  # first what other processes stored before them
            self._source.set_vectors(ids_new, vectors_new, self.model)
            index.add(ids_new, vectors_new)
        self._unsaved = True
        if len(chunks) < self._batch_size:  # the backlog is drained: write the file once
            self._save()  # (a crash before: the index is rebuilt from stored vectors)
        self.chunks_embedded += len(ids_new)
        self._embedded_upto = max(self._embedded_upto, max(ids_new))
        self.last_error = None
        return_free_memory()  # the batch's tensors: back to the OS, not kept by glibc
        return True
