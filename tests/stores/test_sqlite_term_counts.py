"""The SQLite turn index remembers how many passages hold each searched word (fts5vocab
reads a word's whole doclist): the counts it keeps must stay those fts5vocab gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from stores.base import NewPassage
from stores.sqlite_passages import SQLiteTurnIndex
from stores.sqlite_store import SQLiteStore
from stores.turn_index import scope_token

WORDS = ["kite", "red", "never"]


def _vocab(index: SQLiteTurnIndex, session: str) -> dict[str, int]:
    terms = [scope_token(session) + w for w in WORDS]
    rows = index.database.read(
        lambda conn: conn.execute(
            f"SELECT term, doc FROM passages_vocab WHERE term IN ({','.join('?' * len(terms))})",
            terms,
        ).fetchall()
    )
    found = {str(t): int(d) for t, d in rows}
    return {t: found.get(t, 0) for t in terms}


def _add(store: SQLiteStore, session: str, seqs: range, text: str) -> None:
    with store.write():
        store.passages.add(session, [NewPassage(s, 0, text, 1.0) for s in seqs])


def test_remembered_counts_follow_adds_rollbacks_and_forgetting(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    index = store.passages
    assert isinstance(index, SQLiteTurnIndex)
    terms = [scope_token("a") + w for w in WORDS]
    _add(store, "a", range(1, 4), "alice: the red kite")
    assert index._term_counts(terms) == _vocab(index, "a")  # counted, then remembered
    _add(store, "a", range(4, 6), "bob: a kite")
    _add(store, "b", range(1, 3), "carol: red kite")  # another session's words apart
    expected = dict(zip(terms, [5, 3, 0], strict=True))
    assert index._term_counts(terms) == _vocab(index, "a") == expected
    with pytest.raises(RuntimeError), store.write():
        store.passages.add("a", [NewPassage(9, 0, "red red", 1.0)])
        assert index._term_counts(terms)[terms[1]] == 4  # inside the write: not remembered
        raise RuntimeError
    assert index._term_counts(terms) == _vocab(index, "a")
    store.forget("a")
    _add(store, "a", range(1, 2), "alice: kite")
    expected = dict(zip(terms, [1, 0, 0], strict=True))
    assert index._term_counts(terms) == _vocab(index, "a") == expected
    assert [h.seq for h in index.search("a", "red kite")] == [1]
    store.close()


def test_a_search_skips_words_past_the_postings_cap_but_keeps_the_rarest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stores.search_terms.MAX_POSTINGS", 6)
    store = SQLiteStore(tmp_path / "s.db")
    _add(store, "a", range(1, 9), "alice: the red kite")  # "kite" and "red": 8 rows each
    _add(store, "a", range(9, 11), "bob: a never seen kite")  # "never": 2 rows
    found = store.passages.search("a", "never red kite", limit=20)
    # "never" (2 rows) is searched; "red" and "kite" would take it past 6 rows: left out.
    assert sorted(h.seq for h in found) == [9, 10]
    assert [h.seq for h in store.passages.search("a", "red kite", limit=20)] != []  # rarest kept


def test_a_word_with_diacritics_is_counted_as_fts5_folds_it(tmp_path: Path) -> None:
    # FTS5 indexes "café" as "cafe": a lookup of "café" in fts5vocab finds no row, so its
    # first search found nothing, and a later one (counted by MATCH, which folds) did.
    store = SQLiteStore(tmp_path / "s.db")
    _add(store, "a", range(1, 3), "the café by the hill")
    _add(store, "a", range(3, 4), "a red kite")
    for _ in range(2):
        assert [i for i, _ in store.passages.search_ids("a", "café")] == [1, 2]
        assert [i for i, _ in store.passages.search_ids("a", "cafe")] == [1, 2]
    store.close()
