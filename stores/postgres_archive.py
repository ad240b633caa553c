"""Archived originals and chunks in PostgreSQL, with full-text search (``tsvector``, GIN).

Originals are stored zlib-compressed with their SHA-256, checked on every read. Each
chunk's ``tsvector`` is a generated column under a GIN index; ranking uses ``ts_rank``.
Vectors live here as the source of truth; FAISS is a per-process cache rebuilt from them.
Writes of a session's chunks take the session's advisory lock, so chunk ids become
visible in increasing order per session (readers page through them by id).
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
from stores.postgres import POSTGRES, PostgresDatabase, from_db, session_lock, to_db
from stores.sql_vectors import read_vectors, write_vectors
from stores.text_search import query_terms, search_words

__all__ = ["PostgresBlobStore", "any_of"]

_BLOB_COLUMNS = "session, ref, sha256, size, kind, tokens, digest_tokens, note, created_at"
_CHUNK_COLUMNS = 'c.id, c.session, c.ref, c.idx, c.start, c."end", c.text'


def _blob(row: Sequence[Any]) -> BlobRecord:
    return BlobRecord(
        from_db(row[0]), from_db(row[1]), row[2], row[3], from_db(row[4]), row[5], row[6],
        from_db(row[7]), row[8],
    )  # fmt: skip


def _chunk(row: Sequence[Any]) -> ChunkRecord:
    return ChunkRecord(
        row[0], from_db(row[1]), from_db(row[2]), row[3], row[4], row[5], from_db(row[6])
    )


def any_of(terms: Sequence[str]) -> str:
    """A ``to_tsquery`` text matching any of the words (each quoted as one lexeme)."""
    return " | ".join(f"'{t}'" for t in terms)


class PostgresBlobStore:
    """``BlobStore`` on a ``PostgresDatabase``; every row is scoped by session."""

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database

    def lookup(self, session: str, ref: str) -> str | None:
        """Return the SHA-256 stored under ``ref``, or None if the ref is free."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT sha256 FROM attic_blobs WHERE session = %s AND ref = %s",
                (to_db(session), to_db(ref)),
            ).fetchone()
        )
        return None if row is None else str(row[0])

    def put(self, record: BlobRecord, data: bytes, chunks: Sequence[NewChunk]) -> bool:
        """Store an original and its chunks (see ``BlobStore.put``)."""
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise StoreError(f"ref {record.ref}: data does not match the record's SHA-256")
        session, ref = to_db(record.session), to_db(record.ref)
        with self.database.write() as conn:
            session_lock(conn, record.session)
            existing = conn.execute(
                "SELECT sha256 FROM attic_blobs WHERE session = %s AND ref = %s", (session, ref)
            ).fetchone()
            if existing is not None:
                if existing[0] != record.sha256:
                    raise StoreError(f"ref {record.ref} already holds other content")
                return False
            conn.execute(
                f"INSERT INTO attic_blobs ({_BLOB_COLUMNS}, data) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    session, ref, record.sha256, record.size, to_db(record.kind), record.tokens,
                    record.digest_tokens, to_db(record.note), record.created_at,
                    zlib.compress(data, 6),
                ),
            )  # fmt: skip
            self._insert_chunks(
                conn,
                [
                    (session, ref, i, c.start, c.end, to_db(c.text), to_db(search_words(c.text)))
                    for i, c in enumerate(chunks)
                ],
            )
        return True

    @staticmethod
    def _insert_chunks(conn: Any, rows: Sequence[tuple[Any, ...]]) -> None:
        if rows:
            with conn.cursor() as cursor:
                cursor.executemany(
                    'INSERT INTO attic_chunks (session, ref, idx, start, "end", text, terms) '
                    "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )

    def get(self, session: str, ref: str) -> tuple[BlobRecord, bytes]:
        """Return the record and original bytes, verified (see ``BlobStore.get``)."""
        row = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_BLOB_COLUMNS}, data FROM attic_blobs WHERE session = %s AND ref = %s",
                (to_db(session), to_db(ref)),
            ).fetchone()
        )
        if row is None:
            raise RefNotFoundError(f"no archived output with ref {ref!r} in this session")
        record = _blob(row[:-1])
        try:
            data = zlib.decompress(bytes(row[-1]))
        except zlib.error as exc:
            raise StoreError(f"archived output {ref} is corrupted: {exc}") from exc
        if hashlib.sha256(data).hexdigest() != record.sha256:
            raise StoreError(f"archived output {ref} fails its SHA-256 check; it is corrupted")
        return record, data

    def refs(self, session: str) -> list[BlobRecord]:
        """Return the session's archived originals, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_BLOB_COLUMNS} FROM attic_blobs WHERE session = %s "
                "ORDER BY created_at, ref",
                (to_db(session),),
            ).fetchall()
        )
        return [_blob(r) for r in rows]

    def chunks(self, session: str, ref: str | None = None) -> list[ChunkRecord]:
        """Return the session's chunks (of one ref, or all), in order."""
        where, params = "c.session = %s", [to_db(session)]
        if ref is not None:
            where, params = "c.session = %s AND c.ref = %s", [to_db(session), to_db(ref)]
        sql = f"SELECT {_CHUNK_COLUMNS} FROM attic_chunks c WHERE {where} ORDER BY c.id"
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_chunk(r) for r in rows]

    def last_chunk_id(self, session: str) -> int:
        """Return the highest chunk id of a session, 0 when it has none."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM attic_chunks WHERE session = %s",
                (to_db(session),),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def chunks_by_id(
        self, session: str, ids: Sequence[int], *, with_text: bool = True
    ) -> list[ChunkRecord]:
        """Return the session's chunks with these ids, in the order of ``ids``.

        ``with_text=False`` leaves ``text`` empty: a cheap look at where chunks are.
        """
        if not ids:
            return []
        columns = _CHUNK_COLUMNS if with_text else _CHUNK_COLUMNS.replace("c.text", "''")
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {columns} FROM attic_chunks c WHERE c.session = %s AND c.id = ANY(%s)",
                (to_db(session), list(ids)),
            ).fetchall()
        )
        by_id = {r[0]: _chunk(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def search_text(
        self, session: str, query: str, *, ref: str | None = None, limit: int = 20
    ) -> list[ChunkRecord]:
        """Return archived chunks matching the query's words by ``ts_rank``, best first;
        ``ref`` narrows to one output."""
        terms = query_terms(query)
        if not terms:
            return []
        params: list[str | int] = [any_of(terms), to_db(session)]
        extra = ""
        if ref is not None:
            extra, params = " AND c.ref = %s", [*params, to_db(ref)]
        sql = (
            f"SELECT {_CHUNK_COLUMNS} FROM attic_chunks c, to_tsquery('simple', %s) q "
            f"WHERE c.tsv @@ q AND c.session = %s{extra} "
            "ORDER BY ts_rank(c.tsv, q) DESC, c.id LIMIT %s"
        )
        rows = self.database.read(lambda conn: conn.execute(sql, [*params, limit]).fetchall())
        return [_chunk(r) for r in rows]

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[ChunkRecord]:
        """Return chunks with no vector from ``model`` yet, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_CHUNK_COLUMNS} FROM attic_chunks c WHERE c.session = %s "
                "AND (c.vector IS NULL OR c.model IS DISTINCT FROM %s) ORDER BY c.id LIMIT %s",
                (to_db(session), model, limit),
            ).fetchall()
        )
        return [_chunk(r) for r in rows]

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one float32 vector per chunk id, in one transaction."""
        write_vectors(self.database, POSTGRES, "chunks", ids, vectors, model)

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return the vectors ``model`` made for a session's chunks above ``after``."""
        return read_vectors(self.database, POSTGRES, "chunks", session, model, after=after)
