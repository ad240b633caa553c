"""When a session's vectors are searched exactly and when by an inverted file, and how.

A flat index compares the query with every vector: its cost grows with the history
(100,000 MiniLM vectors of 384 dimensions take ~15 ms per query on one core). Above
``EXACT_MAX`` vectors the index becomes an inverted file (FAISS ``IndexIVFFlat``):
k-means splits the vectors into ``lists(n)`` cells and a query scans the ``probes``
cells nearest to it, a few percent of the vectors, with exact inner products there.
Sizes follow the FAISS wiki ("Guidelines to choose an index", read 2026-12): between
4·√n and 16·√n cells, trained on 30 to 256 vectors per cell. What the approximation
misses is measured on real embeddings by ``benchmarks/ivf_recall.py``.
"""

from __future__ import annotations

import math
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

__all__ = ["EXACT_MAX", "TRAIN_PER_LIST", "build", "held_ids", "is_ivf", "lists", "probes"]

EXACT_MAX = 16_384
"""Most vectors searched exactly (a flat scan). 16,384 MiniLM vectors take ~2.5 ms per
query on one core, half the latency target of ``assemble`` at 50,000 turns."""
TRAIN_PER_LIST = 40
"""Training vectors per cell, at most (FAISS warns under 39). k-means costs cells x
points, so the training grows with the square of the cells: 7 s for 512 cells on one
core of a loaded 2-core machine."""
TRAIN_ITERATIONS = 10
"""k-means iterations; the cells move little after the first few."""
MIN_PROBES = 64
"""Least cells a query scans. On 29,616 MiniLM vectors of LoCoMo turns, tool outputs and
agent transcripts (512 cells), the LoCoMo questions' exact top 20 are 99.5% in what 64
cells return, the top 264 (the ranker's pool) 98.1%; 32 cells: 98.5% and 93.6%
(``benchmarks/ivf_recall.py``)."""
PROBE_SHARE = 8
"""A query scans at least one cell in this many (12.5% of the vectors)."""


def lists(count: int) -> int:
    """Cells for an index of ``count`` vectors: the power of two at or under 4·√n,
    256 to 65,536."""
    wanted = 4 * math.sqrt(max(count, 1))
    return int(min(max(2 ** math.floor(math.log2(wanted)), 256), 65_536))


def probes(cells: int) -> int:
    """Cells a query scans in an index of ``cells`` cells."""
    return min(cells, max(MIN_PROBES, cells // PROBE_SHARE))


def is_ivf(index: Any) -> bool:
    """True for an inverted-file index (as ``build`` makes)."""
    return isinstance(index, faiss.IndexIVF)


def build(dim: int, ids: npt.NDArray[np.int64], vectors: npt.NDArray[np.float32]) -> Any:
    """Train an inverted file on ``vectors`` and add them under ``ids``.

    Training reads an even spread of at most ``TRAIN_PER_LIST`` vectors per cell (the
    same rows for the same input). The index keeps a hash table from id to vector, so
    vectors can be read back (``reconstruct``) and replaced (``remove_ids``).
    """
    cells = lists(len(ids))
    quantizer = faiss.IndexFlatIP(dim)
    index: Any = faiss.IndexIVFFlat(quantizer, dim, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = TRAIN_ITERATIONS
    stride = max(1, len(vectors) // (TRAIN_PER_LIST * cells))
    index.train(np.ascontiguousarray(vectors[::stride]))
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]
    index.add_with_ids(vectors, ids)
    index.nprobe = probes(cells)
    return index


def held_ids(index: Any) -> npt.NDArray[np.int64]:
    """Every id an inverted file holds, ascending."""
    parts = [np.zeros(0, dtype=np.int64)]
    inverted: Any = index.invlists
    for cell in range(index.nlist):
        size = inverted.list_size(cell)
        if size:
            parts.append(faiss.rev_swig_ptr(inverted.get_ids(cell), size).astype(np.int64))
    return np.sort(np.concatenate(parts))
