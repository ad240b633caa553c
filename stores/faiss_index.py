"""A per-session FAISS index of chunk vectors, persisted without pickle.

The index is saved with FAISS's own binary format (``faiss.write_index``), written beside
the SQLite file and swapped in atomically. The vectors also live in the SQLite store, so a
missing, torn or stale index file is rebuilt from them (see ``FAISSIndex.open``).

Up to ``stores.faiss_ivf.EXACT_MAX`` vectors, search is exact (a flat scan); above, the
index is an inverted file that scans a few percent of them (``stores.faiss_ivf``),
retrained each time the index doubles.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from stores import faiss_ivf

__all__ = ["PASSAGES", "FAISSIndex", "index_path"]

PASSAGES = "passages"
"""``index_path``'s kind for a session's turn passages (archive chunks have none)."""

# One query at a time gains nothing from OpenMP threads, and their spin-waits cost tens of
# milliseconds per search on a busy 2-core machine.
faiss.omp_set_num_threads(1)


def index_path(directory: Path, session: str, model: str, *, kind: str | None = None) -> Path:
    """Name a session's index file by hash: session names are never used as paths.

    ``kind`` tells apart indexes whose ids are not chunk ids (``PASSAGES``): passage ids
    and chunk ids are separate id spaces, so each has its own index file.
    """
    key = f"{session}\x00{model}" if kind is None else f"{session}\x00{model}\x00{kind}"
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return directory / f"{digest[:32]}.faiss"


class FAISSIndex:
    """Inner-product search over one session's vectors, keyed by chunk id.

    Exact up to ``stores.faiss_ivf.EXACT_MAX`` vectors, an inverted file above (see the
    module docstring).

    Args:
        dim: Vector dimension.
        path: Where ``save()`` writes; None keeps the index in memory only.
    """

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.dim = dim
        self.path = path
        self._index: Any = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        self._lock = threading.Lock()  # guards reads and swaps of ``_index``
        self._adding = threading.Lock()  # one writer at a time (adds, retraining)
        self._max_id = -1  # ids above it are new: adding them needs no O(n) removal
        self._held = np.zeros(0, dtype=np.int64)  # an inverted file's ids, ascending
        self._trained_at = 0  # vectors the inverted file was trained with (0: flat)
        # sample_scores's sample: (stride, size, positions covered, ids, vectors)
        self._sample: tuple[int, int, int, npt.NDArray[np.int64], npt.NDArray[np.float32]] | None
        self._sample = None

    @classmethod
    def open(
        cls,
        dim: int,
        path: Path | None,
        *,
        stored_ids: Sequence[int],
        stored_vectors: npt.NDArray[np.float32],
    ) -> tuple[FAISSIndex, bool]:
        """Load the index at ``path``, or rebuild it from the stored vectors.

        The file is trusted only if it reads cleanly and holds exactly ``stored_ids``.

        Returns:
            ``(index, rebuilt)``: ``rebuilt`` is True when the file was missing, torn or
            stale and the index was rebuilt (and saved) from the stored vectors.
        """
        index = cls(dim, path)
        if path is not None and path.exists():
            try:
                loaded = faiss.read_index(str(path))
                held = _held(loaded)
                if loaded.d == dim and set(held.tolist()) == set(stored_ids):
                    index._swap(loaded, held)
                    if index.exact and len(held) > faiss_ivf.EXACT_MAX:  # an older file
                        with index._adding:
                            index._retrain()
                        index.save()
                    return index, False
            except RuntimeError:
                pass  # torn or foreign file: rebuild below
        if len(stored_ids):
            index.add(stored_ids, stored_vectors)
        index.save()
        return index, path is not None

    def _swap(self, loaded: Any, held: npt.NDArray[np.int64]) -> None:
        """Make ``loaded`` the index (``held``: its ids, ascending)."""
        ivf = faiss_ivf.is_ivf(loaded)
        if ivf:
            loaded.nprobe = faiss_ivf.probes(loaded.nlist)
        with self._lock:
            self._index = loaded
            self._held = held if ivf else np.zeros(0, dtype=np.int64)
            self._trained_at = len(held) if ivf else 0
            self._sample = None
            self._max_id = int(held.max(initial=-1))

    def add(self, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors (one row per id); ids already present are replaced.

        Past ``EXACT_MAX`` vectors, and each time they double after, the index is
        rebuilt as an inverted file (training takes seconds for 100,000 MiniLM vectors);
        searches meanwhile read the index as it was."""
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        keys = np.asarray(ids, dtype=np.int64)
        with self._adding:
            with self._lock:
                if len(keys) and int(keys.min()) <= self._max_id:
                    self._remove(keys)
                self._index.add_with_ids(matrix, keys)
                if self._trained_at:
                    self._held = np.union1d(self._held, keys)
                self._max_id = max(self._max_id, int(keys.max(initial=-1)))
                total = int(self._index.ntotal)
            if total > faiss_ivf.EXACT_MAX and total >= 2 * self._trained_at:
                self._retrain()

    def _remove(self, keys: npt.NDArray[np.int64]) -> None:
        """Drop these ids (under ``_lock``)."""
        self._sample = None
        if self._trained_at:  # (its hash table removes by an id array only)
            self._index.remove_ids(faiss.IDSelectorArray(len(keys), faiss.swig_ptr(keys)))
            self._held = np.setdiff1d(self._held, keys)
        else:
            self._index.remove_ids(keys)

    def _retrain(self) -> None:
        """Rebuild as an inverted file sized for the vectors held (under ``_adding``)."""
        with self._lock:
            ids = self._ids_held()
            vectors = self._vectors_of(ids)
        self._swap(faiss_ivf.build(self.dim, ids, vectors), ids)

    def _ids_held(self) -> npt.NDArray[np.int64]:
        """Every id held, in an order that only grows at its end (under ``_lock``)."""
        if self._trained_at:
            return self._held
        if self._index.ntotal == 0:
            return np.zeros(0, dtype=np.int64)
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def _vectors_of(self, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """These ids' vectors, one row each (under ``_lock``; every id held)."""
        if not len(ids):
            return np.zeros((0, self.dim), dtype=np.float32)
        if not self._trained_at:  # a flat index's vectors, in the order of its id map
            flat: Any = faiss.downcast_index(self._index.index)
            stored = faiss.rev_swig_ptr(flat.get_xb(), len(ids) * self.dim)
            return np.asarray(stored, dtype=np.float32).reshape(len(ids), self.dim)
        matrix: npt.NDArray[np.float32] = self._index.reconstruct_batch(ids)
        return matrix

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(id, score)`` pairs, best first."""
        return self.search_many(np.asarray(vector).reshape(1, self.dim), k)[0]

    def search_many(
        self, vectors: npt.NDArray[np.float32], k: int
    ) -> list[list[tuple[int, float]]]:
        """Search several query vectors (one per row) in one pass over the index: for
        each, up to ``k`` ``(id, score)`` pairs, best first.

        The same pairs as one ``search`` per row; at 100,000 vectors two rows take
        2.6 ms instead of 3.1 ms (the flat index reads its vectors once per block)."""
        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            if self._index.ntotal == 0 or k <= 0:
                return [[] for _ in range(len(queries))]
            scores, ids = self._index.search(queries, min(k, self._index.ntotal))
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores, strict=True) if i != -1]
            for row_ids, row_scores in zip(ids, scores, strict=True)
        ]

    def score_all(
        self, vector: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return every id held and its inner product with ``vector`` (in no set order)."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            ids = self._ids_held()
            if not len(ids):
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            stored = self._vectors_of(ids)  # a flat index's: read in place
            scores = (stored @ query[:, None])[:, 0]  # (a 1-d operand skips BLAS here: 60x slower)
        return ids, scores.astype(np.float32)

    def scores_of(
        self, vector: npt.NDArray[np.float32], ids: Sequence[int]
    ) -> npt.NDArray[np.float32]:
        """Return the inner product of ``vector`` with each of these ids' vectors (NaN for
        an id not held), in the order of ``ids``."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        keys = np.asarray(ids, dtype=np.int64)
        found = np.full(len(keys), np.nan, dtype=np.float32)
        if not len(keys):
            return found
        with self._lock:
            try:  # one call for all: the usual case, every id embedded
                matrix: npt.NDArray[np.float32] = self._index.reconstruct_batch(keys)
                return np.asarray(matrix @ query, dtype=np.float32)
            except RuntimeError:  # some id not held (not embedded yet): one at a time
                pass
            for position, key in enumerate(keys):
                try:
                    found[position] = self._index.reconstruct(int(key)) @ query
                except RuntimeError:
                    continue
        return found

    def sample_scores(
        self, vector: npt.NDArray[np.float32], size: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return up to ``size`` held ids, evenly spread over the index, and ``vector``'s
        inner product with each: an estimate of how scores spread, at a fixed cost.

        The stride is a power of two, so the ids sampled change only when the index
        doubles (callers may cache facts about them).
        """
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            if self._index.ntotal == 0 or size <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            ids, rows = self._sampled(size)
        return ids, (rows @ query[:, None])[:, 0].astype(np.float32)

    def _sampled(self, size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Every ``stride``-th id held (up to ``size``) and its vector (under ``_lock``).

        Kept between calls: ids are appended at the end of the order (``_ids_held``), so
        a sample only grows until the stride changes; a removal or a retraining starts
        it over."""
        total = int(self._index.ntotal)
        stride = 1 << max(0, math.ceil(math.log2(total / size)))
        kept = self._sample
        if kept is None or kept[:2] != (stride, size) or kept[2] > total:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            kept = (stride, size, 0, np.zeros(0, dtype=np.int64), empty)
        upto, ids, rows = kept[2:]
        positions = np.arange(-(-upto // stride) * stride, min(total, size * stride), stride)
        if len(positions):
            if self._trained_at:  # an inverted file: vectors read back by id
                new_ids = self._held[positions]
                new_rows = self._vectors_of(new_ids)
            else:  # a flat index's id map and vectors, read in place
                id_map = self._index.id_map
                new_ids = faiss.rev_swig_ptr(id_map.data(), total)[positions].astype(np.int64)
                flat: Any = faiss.downcast_index(self._index.index)
                stored = faiss.rev_swig_ptr(flat.get_xb(), total * self.dim)
                new_rows = stored.reshape(total, self.dim)[positions]
            ids, rows = np.concatenate([ids, new_ids]), np.concatenate([rows, new_rows])
        self._sample = (stride, size, total, ids, rows)
        return ids, rows

    def ids(self) -> set[int]:
        """Return the ids held."""
        with self._lock:
            return {int(i) for i in self._ids_held()}

    @property
    def exact(self) -> bool:
        """True while search compares the query with every vector (a flat index)."""
        return not self._trained_at

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def save(self) -> None:
        """Write the index atomically (temporary file, then rename); no-op in memory."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with self._lock:
            faiss.write_index(self._index, str(tmp))
        os.replace(tmp, self.path)


def _held(index: Any) -> npt.NDArray[np.int64]:
    """The ids a loaded index holds: an inverted file's ascending, a flat one's in order."""
    if faiss_ivf.is_ivf(index):
        return faiss_ivf.held_ids(index)
    if index.ntotal == 0:
        return np.zeros(0, dtype=np.int64)
    return faiss.vector_to_array(index.id_map).astype(np.int64)
