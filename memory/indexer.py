"""Embed archived chunks in a background thread and keep the session's FAISS index.

``add`` only writes chunk texts; this worker embeds them in batches off the hot path,
stores the vectors in SQLite (so a lost index can be rebuilt) and adds them to FAISS.
A ``recall`` right after ``add`` waits only until that output's chunks are embedded.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings

from memory.embed import embed_matrix, embedder_name
from stores.base import BlobStore
from stores.errors import StoreError
from stores.faiss_index import FAISSIndex, index_path

__all__ = ["DEFAULT_EMBED_BATCH", "Indexer"]

DEFAULT_EMBED_BATCH = 64
logger = logging.getLogger(__name__)


class Indexer:
    """Background embedding of one session's archive chunks into a FAISS index.

    Args:
        session: The session whose chunks are indexed.
        blobs: Where chunks and their vectors are stored.
        embedder: Any LangChain ``Embeddings``.
        directory: Where the FAISS file lives; None keeps the index in memory.
        batch_size: Chunks embedded per batch.
    """

    def __init__(
        self,
        session: str,
        blobs: BlobStore,
        embedder: Embeddings,
        *,
        directory: Path | None,
        batch_size: int = DEFAULT_EMBED_BATCH,
    ) -> None:
        self.session = session
        self.model = embedder_name(embedder)
        self._blobs = blobs
        self._embedder = embedder
        self._directory = directory
        self._batch_size = batch_size
        self._index: FAISSIndex | None = None
        self._wake = threading.Condition()
        self._idle = threading.Event()
        self._stop = False
        self._embedded_upto = 0  # highest chunk id known to be embedded and indexed
        self.chunks_embedded = 0
        self.embed_seconds = 0.0
        self.last_error: str | None = None
        self.rebuilt = False
        self._thread = threading.Thread(
            target=self._run, name=f"attic-embed-{session}", daemon=True
        )
        self._thread.start()

    def notify(self) -> None:
        """Tell the worker new chunks are waiting."""
        with self._wake:
            self._idle.clear()
            self._wake.notify()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every stored chunk is embedded; True if that happened in time."""
        self.notify()
        return self._idle.wait(timeout)

    def wait_for(self, max_chunk_id: int, timeout: float | None = None) -> bool:
        """Wait until chunks up to ``max_chunk_id`` are embedded (one output's chunks)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.notify()
        while self._embedded_upto < max_chunk_id:
            if self.last_error is not None and self._idle.is_set():
                return False
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            self._idle.wait(0.05 if remaining is None else min(0.05, remaining))
        return True

    def search(self, query: str, k: int) -> list[tuple[int, float]]:
        """Return ``(chunk_id, score)`` pairs for the query, best first (embedded chunks)."""
        if self._index is None or len(self._index) == 0:
            return []
        vector = embed_matrix(self._embedder, [query])[0]
        return self._index.search(vector, k)

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

    def _run(self) -> None:
        while True:
            with self._wake:
                if self._stop:
                    return
            try:
                worked = self._step()
            except Exception as exc:  # keep the worker alive; recall falls back to text search
                self.last_error = f"{type(exc).__name__}: {exc}"
                logger.warning("embedding failed for session %r: %s", self.session, exc)
                worked = False
            if not worked:
                self._idle.set()
                with self._wake:
                    if self._stop:
                        return
                    self._wake.wait(timeout=1.0 if self.last_error is None else 5.0)

    def _step(self) -> bool:
        if self._stop:
            return False
        chunks = self._blobs.unembedded(self.session, self.model, limit=self._batch_size)
        if not chunks:
            if self._index is None:
                self._load_existing()
            self._embedded_upto = max(self._embedded_upto, self._known_max())
            return False
        started = time.perf_counter()
        vectors: npt.NDArray[np.float32] = embed_matrix(self._embedder, [c.text for c in chunks])
        self.embed_seconds += time.perf_counter() - started
        ids = [c.id for c in chunks]
        self._blobs.set_vectors(ids, vectors, self.model)
        index = self._ensure_index(vectors.shape[1])
        index.add(ids, vectors)
        index.save()
        self.chunks_embedded += len(ids)
        self._embedded_upto = max(self._embedded_upto, max(ids))
        self.last_error = None
        return True

    def _load_existing(self) -> None:
        ids, vectors = self._blobs.vectors(self.session, self.model)
        if ids:
            self._ensure_index(vectors.shape[1])

    def _known_max(self) -> int:
        try:
            return self._blobs.last_chunk_id(self.session)
        except StoreError:
            return self._embedded_upto

    def close(self) -> None:
        """Stop the worker after its current batch; chunks not yet embedded stay queued.

        Waits for the batch in flight: a thread killed inside torch at interpreter exit
        aborts the process.
        """
        with self._wake:
            self._stop = True
            self._wake.notify()
        self._thread.join()
