"""The turn search index in the SQLite file: a ``passages`` table and its FTS5 index.

The FTS5 table is contentless; it indexes each passage's words (Chinese and Japanese runs
as bigrams) glued to a token standing for the session (``stores.text_search
.scoped_words``): "s3f2a9c1e0xkite". A search asks for the session's own words, so FTS5
reads, and BM25 counts, only that session's rows, however many sessions share the file;
``ORDER BY bm25 LIMIT k`` keeps the top ``k``. Triggers keep the index in step.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stores import search_terms
from stores.search_terms import rarest_within, together
from stores.sql_vectors import read_vectors, write_vectors
from stores.sqlite import SQLITE, SQLiteDatabase
from stores.sqlite_bm25 import PassageScores
from stores.text_search import phrase_words, query_terms, scoped_words
from stores.turn_index import NewPassage, PassageHit, PassageRecord, scope_token

__all__ = ["SQLiteTurnIndex", "passage_row"]


_RECORD = "id, session, seq, idx, context, text, created_at"
_HIT = "p.id, p.seq, p.idx, p.context, length(p.text)"
_INSERT = (
    "INSERT INTO passages(session, seq, idx, context, text, stems, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_NONE: tuple[list[str], int, list[str]] = ([], 0, [])
_SLACK = 64
"""Extra top-k rows read to make up for those at or after ``before_seq`` (the window)."""
PHRASE_PROBE = 4
"""A phrase's rarest words looked for together before the phrase itself (at 10,000
turns: 0.06 ms, against 0.32 for the phrase of a 9-word question that no passage holds).
At 50,000 turns of ``benchmarks/assembly_latency.py``, 3 of its query's words are held
together by 117 passages, which are then read; 4 by none (0.22 ms against 0.25 + 0.17,
alone)."""
PHRASE_READ = 128
"""Most passages holding a phrase's rarest words that are read to find the phrase in
their indexed words; when more hold them, FTS5 looks for the phrase itself."""
MAX_COUNTED = 4096
"""Terms whose passage counts are remembered (see ``SQLiteTurnIndex._term_counts``)."""


def passage_row(session: str, passage: NewPassage) -> tuple[Any, ...]:
    """The row ``_INSERT`` takes for a passage (also used by the migration)."""
    return (
        session, passage.seq, passage.idx, int(passage.context), passage.text,
        scoped_words(scope_token(session), passage.text), passage.created_at,
    )  # fmt: skip


def _record(row: Sequence[Any]) -> PassageRecord:
    return PassageRecord(
        int(row[0]), str(row[1]), int(row[2]), int(row[3]), bool(row[4]), str(row[5]),
        float(row[6]),
    )  # fmt: skip


def _holding(
    database: SQLiteDatabase, ids: list[int], phrase: list[str], bound: int, limit: int
) -> list[PassageHit] | None:
    """The passages among ``ids`` (newest first) whose indexed words hold ``phrase`` (the
    session's terms, ASCII) in a row, before seq ``bound``; None when one of them has a
    word beyond ASCII (FTS5 folds diacritics: "café" is "cafe" to it; it decides then).

    The ``stems`` column is what FTS5 indexed: words of letters and digits, lower-cased
    and stemmed,
    one space apart, so for ASCII words FTS5's tokens are exactly its space-split words.
    SQLite looks for the phrase in them (``instr``), and a text is ASCII when its length
    in characters is its length in bytes: only the rows that hold the phrase, or that
    have a word beyond ASCII, come back (not every row's words: 0.11 ms against 0.17 for
    117 rows at 50,000 turns of ``benchmarks/assembly_latency.py``)."""
    marks = ",".join("?" * len(ids))
    ascii_ = "length(p.stems) = length(CAST(p.stems AS BLOB))"
    sql = (
        f"SELECT {_HIT}, {ascii_} FROM passages p WHERE p.id IN ({marks}) AND p.seq < ? "
        f"AND (instr(' ' || p.stems || ' ', ?) > 0 OR NOT {ascii_}) ORDER BY p.id DESC"
    )
    wanted = f" {' '.join(phrase)} "
    rows = database.read(lambda conn: conn.execute(sql, (*ids, bound, wanted)).fetchall())
    if not all(r[5] for r in rows):
        return None
    return [_hit(r) for r in rows][:limit]


def _hit(row: Sequence[Any], score: float = 0.0) -> PassageHit:
    return PassageHit(int(row[0]), int(row[1]), int(row[2]), bool(row[3]), int(row[4]), score)


class SQLiteTurnIndex:
    """``TurnIndex`` on a ``SQLiteDatabase``; every row is scoped by session.

    A search's cost does not follow the history: words are taken rarest first up to
    ``stores.search_terms.MAX_POSTINGS`` rows (counts from the ``fts5vocab`` table, then
    remembered and brought up to date with the rows added since), only the newest
    ``MAX_SCORED`` rows of a rarest word that matches more are read (and of the older
    ones, the best ``OLDER_POOL`` holding the query's rarest words together), and BM25
    keeps the top ``k``: computed here when every row is read (``stores.sqlite_bm25``,
    the scores ``bm25()`` gives), else by FTS5 (``ORDER BY bm25 LIMIT k``).
    """

    def __init__(self, database: SQLiteDatabase) -> None:
        self.database = database
        self._counts: dict[str, tuple[int, int]] = {}  # term -> (passages, up to this id)
        self._scores = PassageScores(database)
        self._lock = threading.Lock()

    def _bounded(self, session: str, words: list[str]) -> tuple[list[str], int, list[str]]:
        """The query's words as the session's terms, rarest first, within
        ``MAX_POSTINGS`` matched rows (``stores.search_terms``; words the session never
        used are left out), how many rows they match together (at most), and the words
        to look for together in older rows (``search_terms.together``)."""
        prefix = scope_token(session)
        counts = self._term_counts([prefix + w for w in words]) if words else {}
        terms = rarest_within(counts)
        return terms, sum(counts[t] for t in terms), together(counts)

    def _older(self, words: list[str], newest: int) -> list[tuple[int, float]]:
        """Passages below rowid ``newest`` holding all of ``words``, as ``(id, score)``:
        the best ``OLDER_POOL`` by BM25 for those words together, among the newest
        ``MAX_SCORED`` of them (a search's cost stays bounded)."""
        if not words or newest <= 0:
            return []
        both = " AND ".join(f'"{w}"' for w in words)
        floor = (
            "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? AND rowid < ? "
            "ORDER BY rowid DESC LIMIT 1 OFFSET ?"
        )
        sql = (
            "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
            f"WHERE passages_fts MATCH ? AND rowid < ? AND rowid >= coalesce(({floor}), 0) "
            "ORDER BY score DESC LIMIT ?"
        )
        params = (both, newest, both, newest, search_terms.MAX_SCORED - 1, search_terms.OLDER_POOL)
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        return [(int(i), float(score)) for i, score in rows]

    def _newest(self, match: str, matched: int) -> int:
        """The lowest rowid among the newest ``MAX_SCORED`` rows ``match`` matches
        (0: all of them, when they are no more): scoring, or stepping through a phrase's
        positions, costs a step per row, so a search reads only the newest rows of words
        that match more (``stores.search_terms``)."""
        if matched <= search_terms.MAX_SCORED:
            return 0
        sql = (
            "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? "
            "ORDER BY rowid DESC LIMIT 1 OFFSET ?"
        )
        row = self.database.read(
            lambda conn: conn.execute(sql, (match, search_terms.MAX_SCORED - 1)).fetchone()
        )
        return int(row[0]) if row else 0

    def _term_counts(self, terms: list[str]) -> dict[str, int]:
        """How many passages hold each term.

        fts5vocab counts a term by reading its whole doclist (its cost grows with the
        history), so a term's count is remembered with the last passage id it covers;
        later only the rows added since are counted (FTS5 seeks to them)."""
        with self._lock:
            known = {t: self._counts[t] for t in terms if t in self._counts}
        fresh = [t for t in terms if t not in known and t.isascii()]
        # A word beyond ASCII is counted as FTS5 matches it: its index holds "café" as
        # "cafe" (unicode61 folds diacritics), which a lookup of "café" would not find.
        folded = [t for t in terms if t not in known and not t.isascii()]
        sql = "SELECT NULL, COALESCE(MAX(id), 0) FROM passages"
        if fresh:  # "term = ?" is looked up directly; "IN (...)" costs twice as much
            wanted = " OR ".join("term = ?" for _ in fresh)
            sql += f" UNION ALL SELECT term, doc FROM passages_vocab WHERE {wanted}"
        for _ in folded:
            sql += " UNION ALL SELECT ?, count(*) FROM passages_fts WHERE passages_fts MATCH ?"
        asked = [*fresh, *(p for t in folded for p in (t, f'"{t}"'))]
        rows, writing = self.database.read(
            lambda conn: (conn.execute(sql, asked).fetchall(), conn.in_transaction)
        )
        top = next(int(n) for t, n in rows if t is None)
        if any(upto > top for _, upto in known.values()):
            self.forget_counts()  # passages were deleted (a session forgotten): recount
            return self._term_counts(terms)
        counts = {str(t): int(n) for t, n in rows if t is not None}
        behind = [(t, upto) for t, (_, upto) in known.items() if upto < top]
        if behind:  # ids only grow: the rows up to ``top`` are those of this snapshot
            delta = " UNION ALL ".join(
                "SELECT ?, count(*) FROM passages_fts WHERE passages_fts MATCH ? "
                "AND rowid > ? AND rowid <= ?"
                for _ in behind
            )
            params = [p for t, upto in behind for p in (t, f'"{t}"', upto, top)]
            added = self.database.read(lambda conn: conn.execute(delta, params).fetchall())
            counts.update((str(t), int(n)) for t, n in added)
        found = {t: counts.get(t, 0) + (known[t][0] if t in known else 0) for t in terms}
        if not writing:  # rows a transaction added may yet roll back
            with self._lock:
                if len(self._counts) + len(terms) > MAX_COUNTED:
                    self._counts.clear()
                self._counts.update((t, (found[t], top)) for t in terms)
        return found

    def forget_counts(self) -> None:
        """Drop the remembered term counts and passage lengths (after passages were
        deleted)."""
        with self._lock:
            self._counts.clear()
        self._scores.forget()

    def add(self, session: str, passages: Sequence[NewPassage]) -> None:
        """Index passages (see ``TurnIndex.add``)."""
        if not passages:
            return
        with self.database.write() as conn:
            conn.executemany(_INSERT, [passage_row(session, p) for p in passages])

    def search(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 100
    ) -> list[PassageHit]:
        """Return the best passages by BM25 (see ``TurnIndex.search``)."""
        asked = query_terms(query, stemmed=True)
        terms, matched, both = self._bounded(session, asked) if limit > 0 else _NONE
        if not terms:
            return []
        match = " OR ".join(f'"{t}"' for t in terms)
        pool = limit + (_SLACK if before_seq is not None else 0)
        bound = before_seq if before_seq is not None else 2**62
        # bm25() sorted by SQLite's own top-k sorter: FTS5's "ORDER BY rank" runs a nested
        # query that sorts every match (the same order, ~25% slower).
        sql = (
            f"SELECT {_HIT}, f.score FROM (SELECT rowid AS id, -bm25(passages_fts) AS score "
            "FROM passages_fts WHERE passages_fts MATCH ? AND rowid >= ? "
            "ORDER BY score DESC LIMIT ?) AS f "
            "JOIN passages p ON p.id = f.id WHERE p.seq < ? ORDER BY f.score DESC, p.id LIMIT ?"
        )
        newest = self._newest(match, matched)
        params = (match, newest, pool, bound, limit)
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        hits = [_hit(r, float(r[5])) for r in rows]
        older = dict(self._older(both, newest))
        if not older:
            return hits
        located = self.locate(session, list(older))
        hits += [h._replace(score=older[h.id]) for h in located if h.seq < bound]
        return sorted(hits, key=lambda h: (-h.score, h.id))[:limit]

    def search_ids(self, session: str, query: str, *, limit: int = 100) -> list[tuple[int, float]]:
        """Return the best passages' ids and BM25 scores (see ``TurnIndex.search_ids``):
        the full-text index alone, without the join to ``passages`` (which reads each
        row's text for its length: 0.3 of 0.7 ms for 200 rows)."""
        asked = query_terms(query, stemmed=True)
        terms, matched, both = self._bounded(session, asked) if limit > 0 else _NONE
        if not terms:
            return []
        if matched <= search_terms.MAX_SCORED and all(t.isascii() for t in terms):
            # Every row is read: scored here, as FTS5 does (words beyond ASCII are left
            # to it: its index folds their diacritics, "café" is "cafe" there).
            found = self._scores.top(session, terms, limit)
            if found is not None:
                return found
        match = " OR ".join(f'"{t}"' for t in terms)
        sql = (
            "SELECT rowid, -bm25(passages_fts) AS score FROM passages_fts "
            "WHERE passages_fts MATCH ? AND rowid >= ? ORDER BY score DESC LIMIT ?"
        )
        newest = self._newest(match, matched)
        rows = self.database.read(lambda conn: conn.execute(sql, (match, newest, limit)).fetchall())
        found = [(int(i), float(score)) for i, score in rows]
        found += self._older(both, newest)
        return sorted(found, key=lambda r: (-r[1], r[0]))[:limit]

    def phrase(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 50
    ) -> list[PassageHit]:
        """Return passages holding the query's words in order, newest first (among the
        newest ``MAX_SCORED`` rows holding its rarest word)."""
        words = phrase_words(query, stemmed=True)
        if not words or limit <= 0:
            return []
        prefix = scope_token(session)
        counts = self._term_counts(list(dict.fromkeys(prefix + w for w in words)))
        rarest = min(counts, key=lambda t: (counts[t], t))
        if not counts[rarest]:  # a word the session never used: no phrase to find
            return []
        bound = before_seq if before_seq is not None else 2**62
        newest = self._newest(f'"{rarest}"', counts[rarest])
        phrase = [prefix + w for w in words]
        # FTS5 reads a phrase's words together, the commonest too ("the", "to"). A passage
        # holding the phrase holds its rarest words: the few that hold those are read and
        # looked through here, in their words as indexed (at 50,000 turns, 117 passages:
        # 0.64 ms against 1.1 alone, 0.90 against 1.02 inside assemble).
        rare = sorted(counts, key=lambda t: (counts[t], t))[:PHRASE_PROBE]
        together = " AND ".join(f'"{t}"' for t in rare)
        # (in FTS5's own order: read backwards, the same rows cost half as much again)
        probe = "SELECT rowid FROM passages_fts WHERE passages_fts MATCH ? AND rowid >= ? LIMIT ?"
        ids = self.database.read(
            lambda conn: conn.execute(probe, (together, newest, PHRASE_READ + 1)).fetchall()
        )
        if not ids:
            return []
        if len(ids) <= PHRASE_READ and all(t.isascii() for t in phrase):
            found = _holding(self.database, [int(i) for (i,) in ids], phrase, bound, limit)
            if found is not None:
                return found
        sql = (
            f"SELECT {_HIT} FROM passages p WHERE p.id IN (SELECT rowid FROM passages_fts "
            "WHERE passages_fts MATCH ? AND rowid >= ?) AND p.seq < ? ORDER BY p.id DESC LIMIT ?"
        )
        params = (f'"{" ".join(phrase)}"', newest, bound, limit)
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_hit(r) for r in rows]

    def locate(self, session: str, ids: Sequence[int]) -> list[PassageHit]:
        """Return where these passages belong, in the order of ``ids``."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = f"SELECT {_HIT} FROM passages p WHERE p.session = ? AND p.id IN ({marks})"
        rows = self.database.read(lambda conn: conn.execute(sql, (session, *ids)).fetchall())
        by_id = {int(r[0]): _hit(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def of_turns(self, session: str, seqs: Sequence[int]) -> list[PassageHit]:
        """Return the passages of these turns (see ``TurnIndex.of_turns``)."""
        if not seqs:
            return []
        marks = ",".join("?" * len(seqs))
        sql = (
            f"SELECT {_HIT} FROM passages p WHERE p.session = ? AND p.seq IN ({marks}) "
            "ORDER BY p.seq, p.context, p.idx"
        )
        rows = self.database.read(lambda conn: conn.execute(sql, (session, *seqs)).fetchall())
        return [_hit(r) for r in rows]

    def passages(self, session: str, ids: Sequence[int]) -> list[PassageRecord]:
        """Return these passages with their text, in the order of ``ids``."""
        if not ids:
            return []
        marks = ",".join("?" * len(ids))
        sql = f"SELECT {_RECORD} FROM passages WHERE session = ? AND id IN ({marks})"
        rows = self.database.read(lambda conn: conn.execute(sql, (session, *ids)).fetchall())
        by_id = {int(r[0]): _record(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def last_id(self, session: str) -> int:
        """Return the highest passage id of a session, 0 when it has none."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM passages WHERE session = ?", (session,)
            ).fetchone()
        )
        return int(row[0])

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[PassageRecord]:
        """Return passages with no vector from ``model`` yet, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_RECORD} FROM passages WHERE session = ? "
                "AND (vector IS NULL OR model IS NOT ?) ORDER BY id LIMIT ?",
                (session, model, limit),
            ).fetchall()
        )
        return [_record(r) for r in rows]

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one float32 vector per passage id, in one transaction."""
        write_vectors(self.database, SQLITE, "passages", ids, vectors, model)

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return the vectors ``model`` made for a session's passages above ``after``."""
        return read_vectors(self.database, SQLITE, "passages", session, model, after=after)
