"""FTS5's BM25 of a session's passages, computed here from reads that cost less.

SQLite's ``bm25()`` costs ~1.2 µs per passage it scores, on top of ~0.3 µs to find it:
per row it asks the row's length (a B-tree lookup in ``passages_fts_docsize``) and its
phrase instances through FTS5's auxiliary-function API, and per query it counts each
word's rows again. Here the words' instances are read in one statement from an
``fts5vocab`` table of ``instance`` type (doc ids, one per occurrence), the lengths come
from a column of the session's passage lengths kept in memory (read once, then only
the rows added since), and the scores are computed by numpy, with the same operations
in the same order as ``fts5Bm25Function`` in SQLite's ``fts5_aux.c`` (k1 = 1.2,
b = 0.75; the average length and row count from FTS5's averages record): the same
scores, bit for bit (``tests/stores/test_sqlite_bm25.py`` checks it against ``bm25()``).
At 50,000 turns of ``benchmarks/assembly_latency.py``, for a word in 871 passages:
0.2 ms against 0.9 (alone; ~1.4 inside ``assemble``, its pages no longer cached).
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from stores.positions import positions
from stores.sqlite import SQLiteDatabase

__all__ = ["K1", "MAX_LENGTHS", "B", "PassageScores", "varints"]

K1 = 1.2
"""BM25's term-frequency saturation, FTS5's default (``fts5_aux.c``)."""
B = 0.75
"""BM25's length normalization, FTS5's default (``fts5_aux.c``)."""
MAX_LENGTHS = 2_000_000
"""Passage lengths kept in memory, over all sessions (12 bytes each); past it, the
sessions used least recently are dropped first."""

_INSTANCES = "passages_instances"
_CREATE = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS temp.{_INSTANCES} "
    "USING fts5vocab(main, passages_fts, instance)"
)
_AVERAGES = 1
"""The rowid of FTS5's averages record in ``passages_fts_data`` (``FTS5_AVERAGES_ROWID``
in ``fts5Int.h``): the row count, then the token count of each column, as varints."""


def varints(blob: bytes) -> list[int]:
    """Decode SQLite's variable-length integers (``sqlite3GetVarint``: 7 bits a byte,
    most significant first, the high bit set on every byte but the last; the ninth byte,
    if any, gives 8 bits), as FTS5 writes its averages record and row lengths."""
    values: list[int] = []
    at = 0
    while at < len(blob):
        value = 0
        for used in range(9):
            byte = blob[at]
            at += 1
            if used == 8:
                value = (value << 8) | byte
                break
            value = (value << 7) | (byte & 0x7F)
            if not byte & 0x80:
                break
        values.append(value)
    return values


class _Lengths(NamedTuple):
    """One session's passage lengths in tokens, by ascending id, up to id ``upto``."""

    ids: npt.NDArray[np.int64]
    tokens: npt.NDArray[np.int32]
    upto: int


_NONE = _Lengths(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32), 0)


class PassageScores:
    """BM25 of one store's passages for a session's words (``stores.sqlite_passages``).

    Args:
        database: The store's SQLite database.
    """

    def __init__(self, database: SQLiteDatabase) -> None:
        self.database = database
        self._lengths: OrderedDict[str, _Lengths] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self) -> None:
        """Drop the lengths kept (passages were deleted: their ids may be used again)."""
        with self._lock:
            self._lengths.clear()

    def top(self, session: str, terms: Sequence[str], limit: int) -> list[tuple[int, float]] | None:
        """The best ``limit`` passages holding any of ``terms`` (the session's own, as
        indexed) as ``(id, score)``, best first (ties: the lower id), each score the one
        ``-bm25()`` gives for the query ``"t1" OR "t2" ...`` in this order; None when a
        passage's length cannot be read (the caller asks FTS5 instead)."""
        if not terms or limit <= 0:
            return []
        wanted = " OR ".join("term = ?" for _ in terms)
        sql = (
            f"SELECT NULL, block FROM passages_fts_data WHERE id = {_AVERAGES} UNION ALL "
            f"SELECT term, group_concat(doc) FROM temp.{_INSTANCES} WHERE {wanted} "
            "GROUP BY term"
        )
        rows = self.database.read(lambda conn: _read(conn, sql, list(terms)))
        blob = next((b for t, b in rows if t is None), b"")
        averages = blob if isinstance(blob, bytes) else b""
        docs = {str(t): np.array(str(d).split(","), dtype=np.int64) for t, d in rows if t}
        counts = varints(averages)
        if len(counts) < 2 or not counts[0]:
            return [] if not docs else None
        rows_total, tokens_total = counts[0], counts[1]
        found = np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *docs.values()]))
        if not len(found):
            return []
        lengths = self._of(session, found)
        if lengths is None:
            return None
        average = float(tokens_total) / float(rows_total)
        norm = K1 * (1 - B + B * lengths.astype(np.float64) / average)
        score = np.zeros(len(found), dtype=np.float64)
        for term in terms:  # in the query's order, as FTS5 sums its phrases
            held = docs.get(term)
            if held is None:
                continue
            ids, freq = np.unique(held, return_counts=True)
            # (the C library's log, as SQLite's: numpy's own may differ in the last bit)
            idf = math.log((rows_total - len(ids) + 0.5) / (len(ids) + 0.5))
            idf = idf if idf > 0.0 else 1e-6
            at = np.searchsorted(found, ids)
            f = freq.astype(np.float64)
            score[at] = score[at] + idf * ((f * (K1 + 1.0)) / (f + norm[at]))
        order = np.lexsort((found, -score))[:limit]
        return list(zip(found[order].tolist(), score[order].tolist(), strict=True))

    def _of(self, session: str, ids: npt.NDArray[np.int64]) -> npt.NDArray[np.int32] | None:
        """The lengths of these passages of ``session`` (ascending ids), read from FTS5's
        ``docsize`` table the first time and kept; None when one is not there.

        The store is read without the lock held (a writer's thread may be waiting on it
        while holding the database); what is kept is replaced whole, never changed."""
        with self._lock:
            kept = self._lengths.get(session, _NONE)
        if int(ids[-1]) > kept.upto:
            kept = self._extended(session, kept)
        with self._lock:
            held = self._lengths.get(session)
            if held is None or kept.upto > held.upto:
                self._lengths[session] = kept
                self._lengths.move_to_end(session)  # the most recently used, last
                self._trim()  # (only what is kept grew: no sum over the sessions per search)
            else:
                self._lengths.move_to_end(session)
        at = positions(kept.ids, ids)
        if not len(kept.ids) or bool((at < 0).any()):
            return None
        found: npt.NDArray[np.int32] = kept.tokens[at]
        return found

    def _extended(self, session: str, kept: _Lengths) -> _Lengths:
        """``kept`` and the lengths of the session's passages added since its ``upto``."""
        sql = (
            "SELECT p.id, d.sz FROM passages p JOIN passages_fts_docsize d ON d.id = p.id "
            "WHERE p.session = ? AND p.id > ? ORDER BY p.id"
        )
        rows = self.database.read(lambda conn: conn.execute(sql, (session, kept.upto)).fetchall())
        if not rows:
            return kept
        ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        tokens = np.fromiter(
            (b[0] if len(b) == 1 else varints(b)[0] for _, b in rows), np.int32, len(rows)
        )
        return _Lengths(
            np.concatenate([kept.ids, ids]), np.concatenate([kept.tokens, tokens]), int(ids[-1])
        )

    def _trim(self) -> None:
        """Drop the least recently used sessions' lengths past ``MAX_LENGTHS`` (the one
        just used is kept whatever its size)."""
        total = sum(len(k.ids) for k in self._lengths.values())
        while total > MAX_LENGTHS and len(self._lengths) > 1:
            _, dropped = self._lengths.popitem(last=False)
            total -= len(dropped.ids)


def _read(conn: sqlite3.Connection, sql: str, params: list[str]) -> list[tuple[object, object]]:
    """Run ``sql``, creating the connection's ``fts5vocab`` instance table first if it
    has none yet (a temporary table: the file's schema is not changed)."""
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if _INSTANCES not in str(exc):
            raise
    conn.execute(_CREATE)
    return conn.execute(sql, params).fetchall()
