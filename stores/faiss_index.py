"""A per-session FAISS index of chunk vectors, persisted without pickle.

Search is exhaustive: every vector is compared with the query. Vectors are held as 16-bit
floats (FAISS's ``QT_fp16`` scalar quantizer): half the memory a search reads, so a long
session's search takes about half the time (100,000 384-d vectors: 4.7 ms against 10.1),
for a similarity off by ~1e-3 at most (a unit vector's components rounded to 11
significant bits; LoCoMo evidence recall, all 7 dev conversations, moved by 0.002 at
most, ``benchmarks/locomo.py``). Approximate indexes were tried and dropped: an inverted
file (FAISS IVF) and then an HNSW graph missed planted facts that exact search ranked
first, the graph wherever a chat repeats itself (thousands of "OK." replies embed to a
few hundred distinct vectors, and a graph loses its way among copies;
``benchmarks/vector_search.py``).

The index is saved with FAISS's own binary format (``faiss.write_index``), written beside
the SQLite file and swapped in atomically. The vectors also live in the SQLite store, so a
missing, torn or stale index file is rebuilt from them (see ``FAISSIndex.open``).
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

from stores.positions import positions

__all__ = ["PASSAGES", "FAISSIndex", "index_path"]

PASSAGES = "passages"
"""``index_path``'s kind for a session's turn passages (archive chunks have none)."""

# One query at a time gains nothing from OpenMP threads, and their spin-waits cost tens of
# milliseconds per search on a busy 2-core machine.
faiss.omp_set_num_threads(1)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # 2^64 / golden ratio, odd


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

    Args:
        dim: Vector dimension.
        path: Where ``save()`` writes; None keeps the index in memory only.
    """

    def __init__(self, dim: int, path: Path | None = None) -> None:
        self.dim = dim
        self.path = path
        self._index: Any = faiss.IndexIDMap2(_fp16_index(dim))
        self._lock = threading.Lock()
        self._max_id = -1  # ids above it are new: adding them needs no O(n) removal
        self._ascending: bool | None = True  # ids held in ascending order (None: unknown)
        self._order: npt.NDArray[np.int64] | None = None  # their sort, when not ascending
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

        The file is trusted only if it reads cleanly, is an index of 16-bit vectors (an
        older file of 32-bit ones is rebuilt) and holds exactly ``stored_ids``.

        Returns:
            ``(index, rebuilt)``: ``rebuilt`` is True when the file was missing, torn or
            stale and the index was rebuilt (and saved) from the stored vectors.
        """
        index = cls(dim, path)
        if path is not None and path.exists():
            try:
                loaded: Any = faiss.read_index(str(path))
                held = _ids_of(loaded)
                if _is_fp16(loaded) and loaded.d == dim and held == set(stored_ids):
                    index._index, index._max_id = loaded, max(held, default=-1)
                    index._sample, index._ascending = None, None
                    return index, False
            except (RuntimeError, AttributeError):
                pass  # torn or foreign file (not an id-mapped index): rebuild below
        if len(stored_ids):
            index.add(stored_ids, stored_vectors)
        index.save()
        return index, path is not None

    def add(self, ids: Sequence[int], vectors: npt.NDArray[np.float32]) -> None:
        """Add vectors (one row per id); ids already present are replaced."""
        matrix = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), self.dim)
        keys = np.asarray(ids, dtype=np.int64)
        with self._lock:
            if len(keys) and int(keys.min()) <= self._max_id:
                self._index.remove_ids(keys)
                self._sample = None  # the order it read shifted
            if len(keys) and (int(keys.min()) <= self._max_id or np.any(keys[1:] <= keys[:-1])):
                self._ascending = False
            self._order = None
            self._index.add_with_ids(matrix, keys)
            self._max_id = max(self._max_id, int(keys.max(initial=-1)))

    def search(self, vector: npt.NDArray[np.float32], k: int) -> list[tuple[int, float]]:
        """Return up to ``k`` ``(id, score)`` pairs, best first."""
        return self.search_many(np.asarray(vector).reshape(1, self.dim), k)[0]

    def search_many(
        self, vectors: npt.NDArray[np.float32], k: int
    ) -> list[list[tuple[int, float]]]:
        """Search several query vectors (one per row): for each, up to ``k``
        ``(id, score)`` pairs, best first (ties: the vector added first)."""
        return [
            list(zip(ids.tolist(), scores.tolist(), strict=True))
            for ids, scores in self.nearest_many(vectors, k)
        ]

    def nearest_many(
        self, vectors: npt.NDArray[np.float32], k: int
    ) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
        """``search_many`` as arrays: for each query row, up to ``k`` ids and their
        scores, best first (ties: the vector added first).

        FAISS's scan of the 16-bit vectors: on 100,000 64-d vectors, two queries take
        0.69 ms, against 1.15 ms for one matrix product over 32-bit vectors and a partial
        sort per row (0.19 and 0.18 ms on 20,000: the same on short sessions)."""
        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        with self._lock:
            total = int(self._index.ntotal)
            if total == 0 or k <= 0:
                none = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
                return [none for _ in range(len(queries))]
            # The inner index answers with positions (the order vectors were added in),
            # the id map turns them into ids.
            inner: Any = faiss.downcast_index(self._index.index)
            scores, positions = inner.search(queries, min(k, total))
            # (only the ids found are read from the id map, in place: 3 µs, against 16
            # for a copy of it all at 100,000 vectors)
            ids = _held_ids(self._index, total)[np.maximum(positions, 0)].astype(np.int64)
        found = []
        for row_scores, row_positions, row_ids in zip(scores, positions, ids, strict=True):
            valid = row_positions >= 0
            kept, kept_scores = row_positions[valid], row_scores[valid]
            order = np.lexsort((kept, -kept_scores))
            found.append((row_ids[valid][order], kept_scores[order]))
        return found

    def score_all(
        self, vector: npt.NDArray[np.float32]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return every id held and its inner product with ``vector`` (in no set order)."""
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            total = int(self._index.ntotal)
            if total == 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            stored = _stored(self._index, total, self.dim).astype(np.float32)
            ids = _held_ids(self._index, total).astype(np.int64)
        # (a 1-d operand skips BLAS here: 60x slower)
        return ids, (stored @ query[:, None])[:, 0].astype(np.float32)

    def scores_of(
        self, vector: npt.NDArray[np.float32], ids: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Return the inner product of ``vector`` with each of these ids' vectors (NaN for
        an id not held), in the order of ``ids``."""
        query = np.asarray(vector, dtype=np.float32).reshape(1, self.dim)
        scores: npt.NDArray[np.float32] = self.scores_many(query, ids)[0]
        return scores

    def scores_many(
        self, vectors: npt.NDArray[np.float32], ids: Sequence[int] | npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """``scores_of`` for several query vectors (one per row): a ``(rows, len(ids))``
        matrix, the ids' vectors read once."""
        queries = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        keys = np.asarray(ids, dtype=np.int64)
        found = np.full((len(queries), len(keys)), np.nan, dtype=np.float32)
        if not len(keys):
            return found
        with self._lock:
            total = int(self._index.ntotal)
            positions = self._positions(keys, total)
            held = positions >= 0
            rows = _stored(self._index, total, self.dim)[positions[held]].astype(np.float32)
        found[:, held] = queries @ rows.T
        return found

    def _positions(self, keys: npt.NDArray[np.int64], total: int) -> npt.NDArray[np.int64]:
        """Where each id is held (-1: not held), under ``_lock``.

        Ids are usually held in ascending order (each batch is added above the last), and
        ``stores.positions`` finds them (a run of ids by subtraction); after a replaced
        vector moved an id to the end, one sort of the ids is kept until the index changes
        again."""
        ids = _held_ids(self._index, total)
        if self._ascending is None:
            self._ascending = bool(np.all(ids[1:] > ids[:-1]))
        if self._ascending:
            return positions(ids, keys)
        if self._order is None or len(self._order) != total:
            self._order = np.argsort(ids, kind="stable")
        at = positions(ids[self._order], keys)
        return np.where(at >= 0, self._order[np.maximum(at, 0)], -1).astype(np.int64)

    def sample_scores(
        self, vector: npt.NDArray[np.float32], size: int
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """Return about ``size`` held ids (at most ``size`` expected), spread over the
        index at random, and ``vector``'s inner product with each: an estimate of how
        scores spread, at a fixed cost.

        A position is sampled when a hash of it falls under ``1 / stride``, ``stride`` a
        power of two: the ids sampled change only when the index doubles (callers may
        cache facts about them), and no pattern in how ids are laid out (a turn's own
        passage, then its context copy, then the next turn's) lines up with the sample,
        as every ``stride``-th id did: a plain chat's sample held context copies only.
        """
        query = np.ascontiguousarray(vector, dtype=np.float32).reshape(self.dim)
        with self._lock:
            if self._index.ntotal == 0 or size <= 0:
                return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
            ids, rows = self._sampled(size)
        return ids, (rows @ query[:, None])[:, 0].astype(np.float32)

    def _sampled(self, size: int) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The sampled ids and their vectors (under ``_lock``).

        Kept between calls: vectors are appended at the end of the index, so a sample
        only grows until the stride changes; a removal starts it over."""
        total = int(self._index.ntotal)
        stride = 1 << max(0, math.ceil(math.log2(total / size)))
        kept = self._sample
        if kept is None or kept[:2] != (stride, size) or kept[2] > total:
            empty = np.zeros((0, self.dim), dtype=np.float32)
            kept = (stride, size, 0, np.zeros(0, dtype=np.int64), empty)
        upto, ids, rows = kept[2:]
        positions = np.arange(upto, total, dtype=np.uint64)
        if stride > 1:  # Fibonacci hashing (Knuth, TAOCP vol. 3, 6.4): the top bits
            bits = np.uint64(64 - stride.bit_length() + 1)
            positions = positions[(positions * _GOLDEN) >> bits == 0]
        if len(positions):  # the index's id map and vectors, read in place
            at = positions.astype(np.int64)
            new_ids = _held_ids(self._index, total)[at].astype(np.int64)
            new_rows = _stored(self._index, total, self.dim)[at].astype(np.float32)
            ids, rows = np.concatenate([ids, new_ids]), np.concatenate([rows, new_rows])
        self._sample = (stride, size, total, ids, rows)
        return ids, rows

    @property
    def max_id(self) -> int:
        """The highest id ever added (-1: none)."""
        return self._max_id

    def ids(self) -> set[int]:
        """Return the ids held."""
        with self._lock:
            return _ids_of(self._index)

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


def _held_ids(index: Any, total: int) -> npt.NDArray[np.int64]:
    """The ids an ``IndexIDMap2`` holds, in its order, read in place (as ``_stored``)."""
    ids: npt.NDArray[np.int64] = faiss.rev_swig_ptr(index.id_map.data(), total)
    return ids


def _fp16_index(dim: int) -> Any:
    """An empty inner-product index of 16-bit vectors (no training needed)."""
    fp16, inner_product = faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    return faiss.IndexScalarQuantizer(dim, fp16, inner_product)


def _is_fp16(index: Any) -> bool:
    """Whether a loaded ``IndexIDMap2`` holds 16-bit vectors as ``_fp16_index`` makes them."""
    inner = faiss.downcast_index(index.index)
    return (
        isinstance(inner, faiss.IndexScalarQuantizer)
        and inner.sq.qtype == faiss.ScalarQuantizer.QT_fp16
        and inner.metric_type == faiss.METRIC_INNER_PRODUCT
    )


def _stored(index: Any, total: int, dim: int) -> npt.NDArray[np.float16]:
    """The 16-bit vectors an ``IndexIDMap2`` over ``_fp16_index`` holds, read in place: a
    view that is valid only while the index is neither changed nor freed (hold its lock)."""
    quantized: Any = faiss.downcast_index(index.index)
    codes: npt.NDArray[np.uint8] = faiss.rev_swig_ptr(quantized.codes.data(), total * dim * 2)
    return codes.view(np.float16).reshape(total, dim)


def _ids_of(index: Any) -> set[int]:
    if index.ntotal == 0:
        return set()
    return {int(i) for i in faiss.vector_to_array(index.id_map)}
