"""Embedding vectors kept in a SQL table's ``vector`` / ``model`` columns, for every backend.

Archive chunks and turn passages store their vectors alike (float32 bytes, the model's
name beside them), so a lost FAISS index can be rebuilt from the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import closing

import numpy as np
import numpy.typing as npt

from stores.errors import StoreError
from stores.sql_common import Database, Dialect

__all__ = ["read_vectors", "write_vectors"]


def write_vectors(
    database: Database,
    dialect: Dialect,
    table: str,
    ids: Sequence[int],
    vectors: npt.NDArray[np.float32],
    model: str,
) -> None:
    """Store one float32 vector per row id of ``table``, from ``model``, in one transaction.

    Raises:
        StoreError: ids and vectors differ in number, or the backend failed (nothing written).
    """
    if len(ids) != len(vectors):
        raise StoreError(f"{len(ids)} ids but {len(vectors)} vectors")
    rows = [
        (np.asarray(v, dtype=np.float32).tobytes(), model, int(i))
        for i, v in zip(ids, vectors, strict=True)
    ]
    mark = dialect.mark
    sql = f"UPDATE {dialect.table(table)} SET vector = {mark}, model = {mark} WHERE id = {mark}"
    with database.write() as conn, closing(conn.cursor()) as cursor:
        cursor.executemany(sql, rows)


def read_vectors(
    database: Database,
    dialect: Dialect,
    table: str,
    session: str,
    model: str,
    *,
    after: int = 0,
) -> tuple[list[int], npt.NDArray[np.float32]]:
    """Return every vector ``model`` made for a session's rows of ``table`` whose id is
    above ``after`` (ids, matrix); no vectors: ``([], a 0 x 0 matrix)``. Vectors of
    another length than the newest one's (an embedder of the same name giving another
    dimension since) are left out: one matrix holds one dimension."""
    mark = dialect.mark
    rows = database.read(
        lambda conn: conn.execute(
            f"SELECT id, vector FROM {dialect.table(table)} WHERE session = {mark} "
            f"AND id > {mark} AND model = {mark} AND vector IS NOT NULL ORDER BY id",
            (dialect.put(session), after, model),
        ).fetchall()
    )
    if not rows:
        return [], np.zeros((0, 0), dtype=np.float32)
    size = len(bytes(rows[-1][1]))
    kept = [r for r in rows if len(bytes(r[1])) == size]
    matrix = np.stack([np.frombuffer(bytes(r[1]), dtype=np.float32) for r in kept])
    return [int(r[0]) for r in kept], matrix
