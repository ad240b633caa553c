"""What an ``Indexer`` embeds and where it keeps the vectors: a ``VectorSource`` (a
``TurnIndex``'s passages are one; ``ChunkVectors`` makes a ``BlobStore``'s archive chunks
one)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from stores.base import BlobStore, ChunkRecord

__all__ = ["ChunkVectors", "VectorSource"]


class _Text(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def text(self) -> str: ...


class VectorSource(Protocol):
    """Texts waiting for vectors, and the vectors stored (a ``TurnIndex`` is one)."""

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> Sequence[_Text]:
        """Return texts with no vector from ``model`` yet, oldest first."""
        ...

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one vector per id, all or nothing."""
        ...

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return every vector ``model`` made for the session with an id above ``after``
        (ids, matrix)."""
        ...

    def last_id(self, session: str) -> int:
        """Return the session's highest id, 0 when it has none."""
        ...


class ChunkVectors:
    """A ``BlobStore``'s archive chunks as a ``VectorSource``."""

    def __init__(self, blobs: BlobStore) -> None:
        self.blobs = blobs

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[ChunkRecord]:
        """Return chunks with no vector from ``model`` yet, oldest first."""
        return self.blobs.unembedded(session, model, limit=limit)

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one vector per chunk id, all or nothing."""
        self.blobs.set_vectors(ids, vectors, model)

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return every vector ``model`` made for the session's chunks with an id above
        ``after``."""
        return self.blobs.vectors(session, model, after=after)

    def last_id(self, session: str) -> int:
        """Return the session's highest chunk id, 0 when it has none."""
        return self.blobs.last_chunk_id(session)
