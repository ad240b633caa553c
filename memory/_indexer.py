"""Embed archived chunks in the background and keep the session's FAISS index.

``add`` only writes chunk texts; this worker embeds them in batches off the hot path,
stores the vectors in SQLite (so a lost index can be rebuilt) and adds them to FAISS.
A ``recall`` right after ``add`` waits only until that output's chunks are embedded.

When the embedder fails on a query (a remote model down or timing out), search goes on
with full-text and phrase ranking only: the failure is logged once per outage, kept in
``query_failure``, and queries skip the embedder for ``QUERY_COOLDOWN_SECONDS`` before
trying it again, so an outage neither raises into a prompt nor slows every call.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from memory._embed import embed_matrix, embedder_name, return_free_memory
from memory._pool import WorkerPool
from memory._worker import BackgroundWorker
from stores.base import BlobStore
from stores.faiss_index import FAISSIndex, index_path

__all__ = ["DEFAULT_EMBED_BATCH", "QUERY_COOLDOWN_SECONDS", "Indexer"]

DEFAULT_EMBED_BATCH = 64
QUERY_CACHE_SIZE = 32
QUERY_COOLDOWN_SECONDS = 30.0
"""After the embedder fails on a query, seconds during which queries are searched without
embeddings (full-text and phrase only) before the embedder is tried again."""

logger = logging.getLogger(__name__)


class Indexer(BackgroundWorker):
    """Background embedding of one session's archive chunks into a FAISS index.

    Args:
        session: The session whose chunks are indexed.
        blobs: Where chunks and their vectors are stored.
        embedder: Any LangChain ``Embeddings``.
        directory: Where the FAISS file lives; None keeps the index in memory.
        pool: The engine's pool the embedding runs on.
        batch_size: Chunks embedded per batch.

    Attributes:
        query_failure: Why the embedder failed on the last query it was tried on (None
            while it answers); queries are searched without embeddings meanwhile.
        query_cooldown_seconds: Seconds between tries of a failing embedder on queries.
    """

    def __init__(
        self,
        session: str,
        blobs: BlobStore,
        embedder: Embeddings,
        *,
        directory: Path | None,
        pool: WorkerPool,
        batch_size: int = DEFAULT_EMBED_BATCH,
    ) -> None:
        super().__init__(f"embedding of {session!r}", pool)
        self.session = session
        self.model = embedder_name(embedder)
        self._blobs = blobs
        self._embedder = embedder
        self._directory = directory
        self._batch_size = batch_size
        self._index: FAISSIndex | None = None
        self._embedded_upto = 0  # highest chunk id known to be embedded and indexed
        self.chunks_embedded = 0
        self.embed_seconds = 0.0
        self.rebuilt = False
        self._query_vectors: dict[str, npt.NDArray[np.float32]] = {}
        self._unsaved = False
        self.query_failure: str | None = None
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
        if not self._index or (vector := self._query_vector(query)) is None:
            return []
        return self._index.search(vector, k)

    def score_all(self, query: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return every embedded chunk's id and its similarity to the query.

        Empty while the embedder fails on queries (see ``query_failure``).
        """
        if not self._index or (vector := self._query_vector(query)) is None:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return self._index.score_all(vector)

    def degraded(self) -> str | None:
        """Return why search may miss what only embeddings would find, or None.

        The embedder failing on queries comes first (they are searched by full-text and
        phrase only), then on new chunks (those are not embedded yet).
        """
        if self.query_failure is not None:
            return self.query_failure
        if self.last_error is not None:
            return f"indexing failed: {self.last_error}"
        return None

    def _query_vector(self, query: str) -> npt.NDArray[np.float32] | None:
        cached = self._query_vectors.get(query)
        if cached is not None:
            return cached
        if (
            self.query_failure is not None
            and time.monotonic() - self._query_failed_at < self.query_cooldown_seconds
        ):
            return None  # still cooling down: do not wait on a failing embedder every call
        try:
            vector: npt.NDArray[np.float32] = embed_matrix(self._embedder, [query])[0]
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

    def _ensure_index(self, dim: int) -> FAISSIndex:
        if self._index is None:
            ids, vectors = self._blobs.vectors(self.session, self.model)
            path = (
                index_path(self._directory, self.session, self.model) if self._directory else None
            )
            if len(ids) and vectors.shape[1] != dim:
                ids, vectors = [], np.zeros((0, dim), dtype=np.float32)
            self._index, self.rebuilt = FAISSIndex.open(
                dim, path, stored_ids=ids, stored_vectors=vectors
            )
            self._embedded_upto = max(ids, default=0)
        return self._index

    def _save(self) -> None:
        """Write the FAISS file if vectors were added since it was last written."""
        if self._unsaved and self._index is not None:
            self._index.save()
            self._unsaved = False

    def step(self) -> bool:
        """Embed one batch of waiting chunks; False when none are waiting."""
        if self.stopping:
            return False
        chunks = self._blobs.unembedded(self.session, self.model, limit=self._batch_size)
        if not chunks:
            self._save()
            if self._index is None:
                ids, vectors = self._blobs.vectors(self.session, self.model)
                if ids:
                    self._ensure_index(vectors.shape[1])
            self._embedded_upto = max(self._embedded_upto, self._blobs.last_chunk_id(self.session))
            return False
        started = time.perf_counter()
        vectors_new: npt.NDArray[np.float32] = embed_matrix(
            self._embedder, [c.text for c in chunks]
        )
        self.embed_seconds += time.perf_counter() - started
        ids_new = [c.id for c in chunks]
        self._blobs.set_vectors(ids_new, vectors_new, self.model)
        index = self._ensure_index(vectors_new.shape[1])
        index.add(ids_new, vectors_new)
        self._unsaved = True
        if len(chunks) < self._batch_size:  # the backlog is drained: write the file once
            self._save()  # (a crash before: the index is rebuilt from stored vectors)
        self.chunks_embedded += len(ids_new)
        self._embedded_upto = max(self._embedded_upto, max(ids_new))
        self.last_error = None
        return_free_memory()  # the batch's tensors: back to the OS, not kept by glibc
        return True
