"""Archived originals and their chunks in the SQLite file, with full-text search (FTS5).

Originals are stored zlib-compressed with their SHA-256, checked on every read. Chunk
texts are indexed by FTS5 (kept in step by triggers); chunk vectors are filled in later by
the embedding worker and can rebuild a lost FAISS index.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stores.base import BlobRecord, ChunkRecord, NewChunk
from stores.errors import RefNotFoundError, StoreError
from stores.sql_vectors import read_vectors, write_vectors
from stores.sqlite import SQLITE, SQLiteDatabase
from stores.text_search import query_terms

__all__ = ["SQLiteBlobStore"]

_BLOB_COLUMNS = "session, ref, sha256, size, kind, tokens, digest_tokens, note, created_at"
_CHUNK_COLUMNS = "id, session, ref, idx, start, end, text"


def _blob(row: Sequence[Any]) -> BlobRecord:
    return BlobRecord(*row)


def _chunk(row: Sequence[Any]) -> ChunkRecord:
    return ChunkRecord(*row)


def fts_query(query: str) -> str | None:
    """Quote each word of a free-text query for FTS5 (OR of terms); None if no words."""
    terms = query_terms(query)
    return " OR ".join(f'"{t}"' for t in terms) if terms else None


class SQLiteBlobStore:
    """``BlobStore`` on a ``SQLiteDatabase``; every row is scoped by session."""

    def __init__(self, database: SQLiteDatabase) -> None:
        self.database = database

    def lookup(self, session: str, ref: str) -> str | None:
        """Return the SHA-256 stored under ``ref``, or None if the ref is free."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT sha256 FROM blobs WHERE session = ? AND ref = ?", (session, ref)
            ).fetchone()
        )
        return None if row is None else str(row[0])

    def put(self, record: BlobRecord, data: bytes, chunks: Sequence[NewChunk]) -> bool:
        """Store an original and its chunks (see ``BlobStore.put``)."""
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise StoreError(f"ref {record.ref}: data does not match the record's SHA-256")
        with self.database.write() as conn:
            existing = conn.execute(
                "SELECT sha256 FROM blobs WHERE session = ? AND ref = ?",
                (record.session, record.ref),
            ).fetchone()
            if existing is not None:
                if existing[0] != record.sha256:
                    raise StoreError(f"ref {record.ref} already holds other content")
                return False
            conn.execute(
                f"INSERT INTO blobs({_BLOB_COLUMNS}, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.session,
                    record.ref,
                    record.sha256,
                    record.size,
                    record.kind,
                    record.tokens,
                    record.digest_tokens,
                    record.note,
                    record.created_at,
                    zlib.compress(data, 6),
                ),
            )
            conn.executemany(
                "INSERT INTO chunks(session, ref, idx, start, end, text) VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (record.session, record.ref, i, c.start, c.end, c.text)
                    for i, c in enumerate(chunks)
                ],
            )
        return True

    def get(self, session: str, ref: str) -> tuple[BlobRecord, bytes]:
        """Return the record and original bytes, verified (see ``BlobStore.get``)."""
        row = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_BLOB_COLUMNS}, data FROM blobs WHERE session = ? AND ref = ?",
                (session, ref),
            ).fetchone()
        )
        if row is None:
            raise RefNotFoundError(f"no archived output with ref {ref!r} in this session")
        record = _blob(row[:-1])
        try:
            data = zlib.decompress(row[-1])
        except zlib.error as exc:
            raise StoreError(f"archived output {ref} is corrupted: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise StoreError(f"archived output {ref} fails its SHA-256 check; it is corrupted")
        return record, data

    def refs(self, session: str) -> list[BlobRecord]:
        """Return the session's archived originals, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_BLOB_COLUMNS} FROM blobs WHERE session = ? ORDER BY created_at, ref",
                (session,),
            ).fetchall()
        )
        return [_blob(r) for r in rows]

    def chunks(self, session: str, ref: str | None = None) -> list[ChunkRecord]:
        """Return the session's chunks (of one ref, or all), in order."""
        where = "session = ?"
        params: tuple[str, ...] = (session,)
        if ref is not None:
            where, params = "session = ? AND ref = ?", (session, ref)
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE {where} ORDER BY id", params
            ).fetchall()
        )
        return [_chunk(r) for r in rows]

    def last_chunk_id(self, session: str) -> int:
        """Return the highest chunk id of a session, 0 when it has none."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM chunks WHERE session = ?", (session,)
            ).fetchone()
        )
        return int(row[0])

    def chunks_by_id(
        self, session: str, ids: Sequence[int], *, with_text: bool = True
    ) -> list[ChunkRecord]:
        """Return the session's chunks with these ids, in the order of ``ids``.

        ``with_text=False`` leaves ``text`` empty: a cheap look at where chunks are.
        """
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        columns = _CHUNK_COLUMNS if with_text else _CHUNK_COLUMNS.replace(", text", ", ''")
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {columns} FROM chunks WHERE session = ? AND id IN ({marks})",
                (session, *ids),
            ).fetchall()
        )
        by_id = {r[0]: _chunk(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def search_text(
        self, session: str, query: str, *, ref: str | None = None, limit: int = 20
    ) -> list[ChunkRecord]:
        """Return archived chunks matching the query's words by BM25, best first;
        ``ref`` narrows to one output."""
        match = fts_query(query)
        if match is None:
            return []
        extra = ""
        params: tuple[str | int, ...] = (match, session)
        if ref is not None:
            extra, params = " AND c.ref = ?", (*params, ref)
        params = (*params, limit)
        sql = (
            f"SELECT c.id, c.session, c.ref, c.idx, c.start, c.end, c.text FROM chunks_fts "
            f"JOIN chunks c ON c.id = chunks_fts.rowid WHERE chunks_fts MATCH ? "
            f"AND c.session = ?{extra} ORDER BY bm25(chunks_fts) LIMIT ?"
        )
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_chunk(r) for r in rows]

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[ChunkRecord]:
        """Return chunks with no vector from ``model`` yet, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM chunks WHERE session = ? "
                "AND (vector IS NULL OR model IS NOT ?) ORDER BY id LIMIT ?",
                (session, model, limit),
            ).fetchall()
        )
        return [_chunk(r) for r in rows]

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one float32 vector per chunk id, in one transaction."""
        write_vectors(self.database, SQLITE, "chunks", ids, vectors, model)

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return the vectors ``model`` made for a session's chunks above ``after``."""
        return read_vectors(self.database, SQLITE, "chunks", session, model, after=after)
