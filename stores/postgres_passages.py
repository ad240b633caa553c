"""The turn search index in PostgreSQL: ``attic_passages`` with a ``tsvector`` under GIN.

Each passage's ``tsvector`` is a generated column over its words (Chinese and Japanese
runs as bigrams, see ``stores.text_search``); a search filters by session and seq and
keeps the top ``k`` by each word's ``ts_rank`` weighted by its BM25 IDF in the session
(``ts_rank`` alone weighs a common word as much as a rare one), reading the rarest words
within ``stores.search_terms.MAX_POSTINGS`` rows, as the SQLite store does. Vectors live
here as the source of truth; FAISS is a per-process cache rebuilt from them. Writes take
the session's advisory lock, so passage ids become visible in increasing order per
session.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stores import search_terms
from stores.postgres import POSTGRES, PostgresDatabase, from_db, session_lock, to_db
from stores.postgres_archive import any_of
from stores.search_terms import idf, rarest_within, together
from stores.sql_vectors import read_vectors, write_vectors
from stores.text_search import phrase_words, query_terms, search_words
from stores.turn_index import NewPassage, PassageHit, PassageRecord

__all__ = ["PostgresTurnIndex"]

_RECORD = "p.id, p.session, p.seq, p.idx, p.context, p.text, p.created_at"
_HIT = "p.id, p.seq, p.idx, p.context, length(p.text)"
_NO_BOUND = 2**31 - 1


def _record(row: Sequence[Any]) -> PassageRecord:
    return PassageRecord(
        int(row[0]), from_db(row[1]), int(row[2]), int(row[3]), bool(row[4]), from_db(row[5]),
        float(row[6]),
    )  # fmt: skip


def _hit(row: Sequence[Any], score: float = 0.0) -> PassageHit:
    return PassageHit(int(row[0]), int(row[1]), int(row[2]), bool(row[3]), int(row[4]), score)


class PostgresTurnIndex:
    """``TurnIndex`` on a ``PostgresDatabase``; every row is scoped by session.

    How many of a session's passages hold each searched word, and how many it has, are
    remembered with the last passage id they cover and brought up to date with the rows
    added since (passage ids grow per session), so a search reads only what changed.
    """

    def __init__(self, database: PostgresDatabase) -> None:
        self.database = database
        # (session, term or "" for all passages) -> (passages, up to this id)
        self._counts: dict[tuple[str, str], tuple[int, int]] = {}
        self._lock = threading.Lock()

    def add(self, session: str, passages: Sequence[NewPassage]) -> None:
        """Index passages (see ``TurnIndex.add``)."""
        if not passages:
            return
        rows = [
            (
                to_db(session), p.seq, p.idx, p.context, to_db(p.text),
                to_db(search_words(p.text, stemmed=True)), p.created_at,
            )
            for p in passages
        ]  # fmt: skip
        with self.database.write() as conn:
            session_lock(conn, session)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO attic_passages (session, seq, idx, context, text, stems, "
                    "created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    rows,
                )

    def search(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 100
    ) -> list[PassageHit]:
        """Return the best passages by IDF-weighted ``ts_rank`` (see ``TurnIndex.search``)."""
        words = query_terms(query, stemmed=True)
        if not words or limit <= 0:
            return []
        total, counts = self._statistics(session, words)
        terms = rarest_within(counts)
        if not terms:
            return []
        bound = min(before_seq if before_seq is not None else _NO_BOUND, _NO_BOUND)
        newest = self._newest(session, any_of(terms), sum(counts[t] for t in terms))
        ranked = self._ranked(session, total, counts, terms, bound=bound)
        hits = ranked(" | ", "p.id >= %s", limit, newest)
        both = together(counts)
        if not both or newest <= 0:
            return hits
        # Older passages holding the rarest words together (``search_terms.together``):
        # the best ``OLDER_POOL`` by those words among the newest ``MAX_SCORED`` of them.
        floor_sql = (
            "SELECT id FROM attic_passages WHERE session = %s AND tsv @@ to_tsquery('simple', "
            "%s) AND id < %s ORDER BY id DESC OFFSET %s LIMIT 1"
        )
        params = (to_db(session), " & ".join(f"'{t}'" for t in both), newest)
        floor_row = self.database.read(
            lambda conn: conn.execute(floor_sql, (*params, search_terms.MAX_SCORED - 1)).fetchone()
        )
        floor = int(floor_row[0]) if floor_row else 0
        older = self._ranked(session, total, counts, both, bound=bound)
        hits += older(" & ", "p.id < %s AND p.id >= %s", search_terms.OLDER_POOL, newest, floor)
        return sorted(hits, key=lambda h: (-h.score, h.id))[:limit]

    def _ranked(
        self,
        session: str,
        total: int,
        counts: dict[str, int],
        terms: list[str],
        *,
        bound: int,
    ) -> Callable[..., list[PassageHit]]:
        """A query of the session's passages before seq ``bound`` holding ``terms`` (joined
        by the ``tsquery`` operator given), the best by their IDF-weighted ``ts_rank``; its
        id condition (with its ids) and its limit are given when it is run."""
        # Normalization 1 divides by 1 + log(length), as BM25 discounts long passages:
        # 0.915 / 0.959 evidence recall (markers, 2k / 4k, benchmarks/locomo.py --limit 2)
        # against 0.902 / 0.959 with none and 0.900 / 0.954 dividing by the length.
        score = " + ".join("%s * ts_rank(p.tsv, to_tsquery('simple', %s), 1)" for _ in terms)
        weights = [p for t in terms for p in (idf(total, counts[t]), f"'{t}'")]

        def run(operator: str, ids: str, limit: int, *id_bounds: int) -> list[PassageHit]:
            sql = (
                f"SELECT {_HIT}, {score} AS score FROM attic_passages p "
                "WHERE p.tsv @@ to_tsquery('simple', %s) AND p.session = %s AND p.seq < %s "
                f"AND {ids} ORDER BY score DESC, p.id LIMIT %s"
            )
            tsquery = operator.join(f"'{t}'" for t in terms)
            params = (*weights, tsquery, to_db(session), bound, *id_bounds, limit)
            rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
            return [_hit(r, float(r[5])) for r in rows]

        return run

    def search_ids(self, session: str, query: str, *, limit: int = 100) -> list[tuple[int, float]]:
        """Return the best passages' ids and scores (see ``TurnIndex.search_ids``)."""
        return [(h.id, h.score) for h in self.search(session, query, limit=limit)]

    def _newest(self, session: str, tsquery: str, matched: int) -> int:
        """The lowest id among the newest ``MAX_SCORED`` passages ``tsquery`` matches
        (0: all of them, when they are no more; see ``stores.search_terms``)."""
        if matched <= search_terms.MAX_SCORED:
            return 0
        sql = (
            "SELECT id FROM attic_passages WHERE session = %s "
            "AND tsv @@ to_tsquery('simple', %s) ORDER BY id DESC OFFSET %s LIMIT 1"
        )
        params = (to_db(session), tsquery, search_terms.MAX_SCORED - 1)
        row = self.database.read(lambda conn: conn.execute(sql, params).fetchone())
        return int(row[0]) if row else 0

    def _statistics(self, session: str, terms: list[str]) -> tuple[int, dict[str, int]]:
        """The session's passage count and how many of them hold each term: remembered
        counts brought up to the session's last passage id, fresh ones counted whole."""
        keys = ["", *dict.fromkeys(terms)]  # "" stands for every passage of the session
        with self._lock:
            known = {k: self._counts.get((session, k), (0, 0)) for k in keys}
        sql = (
            "WITH top AS (SELECT COALESCE(MAX(id), 0) AS upto FROM attic_passages "
            "WHERE session = %(s)s) SELECT t.key, top.upto, (SELECT count(*) FROM "
            "attic_passages p WHERE p.session = %(s)s AND p.id > t.since AND p.id <= top.upto "
            "AND (t.key = '' OR p.tsv @@ to_tsquery('simple', t.query))) FROM top, "
            "unnest(%(keys)s::text[], %(queries)s::text[], %(since)s::bigint[]) "
            "AS t(key, query, since)"
        )
        params = {
            "s": to_db(session), "keys": keys, "queries": [f"'{k}'" for k in keys],
            "since": [known[k][1] for k in keys],
        }  # fmt: skip
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        top = int(rows[0][1]) if rows else 0
        if any(upto > top for _, upto in known.values()):  # passages were deleted: recount
            self.forget_counts(session)
            return self._statistics(session, terms)
        found = {str(k): known[str(k)][0] + int(n) for k, _, n in rows}
        if not self.database.writing:  # rows a transaction added may yet roll back
            with self._lock:
                self._counts.update(((session, k), (n, top)) for k, n in found.items())
        return found[""], {t: found[t] for t in terms}

    def forget_counts(self, session: str | None = None) -> None:
        """Drop the remembered counts (of one session, or all), after passages were
        deleted."""
        with self._lock:
            if session is None:
                self._counts.clear()
            else:
                self._counts = {k: v for k, v in self._counts.items() if k[0] != session}

    def phrase(
        self, session: str, query: str, *, before_seq: int | None = None, limit: int = 50
    ) -> list[PassageHit]:
        """Return passages holding the query's words in order, newest first (among the
        newest ``MAX_SCORED`` holding its rarest word)."""
        words = phrase_words(query, stemmed=True)
        if not words or limit <= 0:
            return []
        counts = self._statistics(session, list(dict.fromkeys(words)))[1]
        rarest = min(counts, key=lambda t: (counts[t], t))
        if not counts[rarest]:  # a word the session never used: no phrase to find
            return []
        bound = before_seq if before_seq is not None else _NO_BOUND
        sql = (
            f"SELECT {_HIT} FROM attic_passages p, to_tsquery('simple', %s) q WHERE p.tsv @@ q "
            "AND p.session = %s AND p.seq < %s AND p.id >= %s ORDER BY p.id DESC LIMIT %s"
        )
        tsquery = " <-> ".join(f"'{w}'" for w in words)
        newest = self._newest(session, f"'{rarest}'", counts[rarest])
        params = (tsquery, to_db(session), min(bound, _NO_BOUND), newest, limit)
        rows = self.database.read(lambda conn: conn.execute(sql, params).fetchall())
        return [_hit(r) for r in rows]

    def locate(self, session: str, ids: Sequence[int]) -> list[PassageHit]:
        """Return where these passages belong, in the order of ``ids``."""
        if not ids:
            return []
        sql = f"SELECT {_HIT} FROM attic_passages p WHERE p.session = %s AND p.id = ANY(%s)"
        rows = self.database.read(
            lambda conn: conn.execute(sql, (to_db(session), list(ids))).fetchall()
        )
        by_id = {int(r[0]): _hit(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def of_turns(self, session: str, seqs: Sequence[int]) -> list[PassageHit]:
        """Return the passages of these turns (see ``TurnIndex.of_turns``)."""
        if not seqs:
            return []
        sql = (
            f"SELECT {_HIT} FROM attic_passages p WHERE p.session = %s AND p.seq = ANY(%s) "
            "ORDER BY p.seq, p.context, p.idx"
        )
        rows = self.database.read(
            lambda conn: conn.execute(sql, (to_db(session), list(seqs))).fetchall()
        )
        return [_hit(r) for r in rows]

    def passages(self, session: str, ids: Sequence[int]) -> list[PassageRecord]:
        """Return these passages with their text, in the order of ``ids``."""
        if not ids:
            return []
        sql = f"SELECT {_RECORD} FROM attic_passages p WHERE p.session = %s AND p.id = ANY(%s)"
        rows = self.database.read(
            lambda conn: conn.execute(sql, (to_db(session), list(ids))).fetchall()
        )
        by_id = {int(r[0]): _record(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def last_id(self, session: str) -> int:
        """Return the highest passage id of a session, 0 when it has none."""
        row = self.database.read(
            lambda conn: conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM attic_passages WHERE session = %s",
                (to_db(session),),
            ).fetchone()
        )
        return int(row[0]) if row else 0

    def unembedded(self, session: str, model: str, *, limit: int = 256) -> list[PassageRecord]:
        """Return passages with no vector from ``model`` yet, oldest first."""
        rows = self.database.read(
            lambda conn: conn.execute(
                f"SELECT {_RECORD} FROM attic_passages p WHERE p.session = %s "
                "AND (p.vector IS NULL OR p.model IS DISTINCT FROM %s) ORDER BY p.id LIMIT %s",
                (to_db(session), model, limit),
            ).fetchall()
        )
        return [_record(r) for r in rows]

    def set_vectors(self, ids: Sequence[int], vectors: npt.NDArray[np.float32], model: str) -> None:
        """Store one float32 vector per passage id, in one transaction."""
        write_vectors(self.database, POSTGRES, "passages", ids, vectors, model)

    def vectors(
        self, session: str, model: str, *, after: int = 0
    ) -> tuple[list[int], npt.NDArray[np.float32]]:
        """Return the vectors ``model`` made for a session's passages above ``after``."""
        return read_vectors(self.database, POSTGRES, "passages", session, model, after=after)
