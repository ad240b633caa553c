"""Where integers sit in a strictly ascending array of them: a session's passage ids, its
searchable turns' seqs.

A binary search (``np.searchsorted``) of a few hundred ids in a 100,000-id column reads
about 7 cache lines per id that the rest of a prompt's assembly has pushed out of the
CPU's caches: ~0.3 ms each time on a 50,000-turn session (``benchmarks/
assembly_latency.py``), against 15 µs with the column in cache. Such columns are most
often a *run*, every integer from the first to the last (one session's passages written
in order, a chat's turns), and a strictly ascending array whose last element is its
first plus its length less one is one: then a position is a subtraction.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["count_below", "positions"]


def _is_run(ordered: npt.NDArray[np.int64]) -> bool:
    """Whether ``ordered`` (strictly ascending) holds every integer from first to last."""
    return int(ordered[-1]) - int(ordered[0]) == len(ordered) - 1


def positions(ordered: npt.NDArray[np.int64], keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Return the index in ``ordered`` (strictly ascending) of each of ``keys``, -1 for a
    key it does not hold."""
    size = len(ordered)
    if not size:
        return np.full(len(keys), -1, dtype=np.int64)
    if _is_run(ordered):
        at = keys.astype(np.int64) - int(ordered[0])
        return np.where((at >= 0) & (at < size), at, -1).astype(np.int64)
    at = np.minimum(np.searchsorted(ordered, keys), size - 1)
    return np.where(ordered[at] == keys, at, -1).astype(np.int64)


def count_below(
    ordered: npt.NDArray[np.int64], keys: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Return how many of ``ordered`` (strictly ascending) are below each of ``keys``
    (``np.searchsorted(ordered, keys)``)."""
    if len(ordered) and _is_run(ordered):
        return np.clip(keys.astype(np.int64) - int(ordered[0]), 0, len(ordered))
    return np.searchsorted(ordered, keys).astype(np.int64)
