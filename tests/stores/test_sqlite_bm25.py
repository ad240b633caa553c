"""The SQLite turn index computes FTS5's BM25 itself (``stores.sqlite_bm25``): its scores
must be ``bm25()``'s, bit for bit, however the passages were added or deleted."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stores.base import NewPassage
from stores.sqlite_bm25 import PassageScores, varints
from stores.sqlite_store import SQLiteStore

VOCABULARY = ["the", "red", "kite", "kites", "flew", "café", "cafe", "42", "hill", "风筝"]
words = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=12)
# A few passages longer than 127 words: their length is a two-byte varint.
texts = st.one_of(words, words.map(lambda w: w * 20)).map(" ".join)
queries = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=4).map(" ".join)


def _by_fts5(store: SQLiteStore, session: str, query: str, limit: int) -> list[tuple[int, float]]:
    """``search_ids`` with every score from FTS5's ``bm25()``."""
    original = PassageScores.top
    PassageScores.top = lambda self, session, terms, limit: None  # type: ignore[method-assign]
    try:
        return store.passages.search_ids(session, query, limit=limit)
    finally:
        PassageScores.top = original  # type: ignore[method-assign]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    batches=st.lists(st.lists(texts, min_size=1, max_size=10), min_size=1, max_size=3),
    others=st.lists(texts, max_size=5),
    asked=st.lists(queries, min_size=1, max_size=4),
    forget=st.booleans(),
)
def test_scores_are_fts5s_bit_for_bit(
    tmp_path_factory: pytest.TempPathFactory,
    batches: list[list[str]],
    others: list[str],
    asked: list[str],
    forget: bool,
) -> None:
    store = SQLiteStore(tmp_path_factory.mktemp("bm25") / "s.db")
    seq = 0
    for batch in batches:  # searched between batches: the lengths kept are extended
        with store.write():
            store.passages.add("a", [NewPassage(seq + n, 0, t, 1.0) for n, t in enumerate(batch)])
            others_at = [NewPassage(1000 * seq + n, 0, t, 1.0) for n, t in enumerate(others)]
            store.passages.add("b", others_at)
        seq += len(batch)
        for query in asked:
            whole = store.passages.search_ids("a", query, limit=1000)
            assert whole == _by_fts5(store, "a", query, 1000), query
            assert store.passages.search_ids("a", query, limit=2) == whole[:2]
    if forget:  # the highest ids are deleted, then given again to other passages
        store.forget("a")
        with store.write():
            store.passages.add("b", [NewPassage(100 + n, 0, t, 1.0) for n, t in enumerate(others)])
        for query in asked:
            assert store.passages.search_ids("b", query, limit=1000) == _by_fts5(
                store, "b", query, 1000
            )
    store.close()


def test_a_passage_whose_length_is_unknown_is_scored_by_fts5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    with store.write():
        store.passages.add("a", [NewPassage(n, 0, f"red kite {n}", 1.0) for n in range(5)])
    expected = _by_fts5(store, "a", "kite", 10)
    monkeypatch.setattr(PassageScores, "_of", lambda self, session, ids: None)
    assert store.passages.search_ids("a", "kite", limit=10) == expected
    store.close()


def _encoded(value: int) -> bytes:
    """SQLite's ``putVarint64`` (util.c), written out independently."""
    if value > 0x00FFFFFFFFFFFFFF:
        tail = bytes([value & 0xFF])
        value >>= 8
        head = [((value >> (7 * i)) & 0x7F) | 0x80 for i in range(8)]
        return bytes(reversed(head)) + tail
    groups = [value & 0x7F]
    value >>= 7
    while value:
        groups.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(groups))


@given(st.lists(st.integers(0, 2**64 - 1), max_size=5))
def test_varints_decode_what_sqlite_encodes(values: list[int]) -> None:
    assert varints(b"".join(_encoded(v) for v in values)) == values


def test_varints_known_bytes() -> None:
    assert varints(b"\x00\x7f\x81\x00\x82\x2c") == [0, 127, 128, 300]
