"""The store primitives turn recall stands on: turn chunks, BM25 and phrase matches, vectors."""

from __future__ import annotations

import numpy as np

from stores.faiss_index import FAISSIndex
from stores.sqlite import SQLiteDatabase
from stores.sqlite_archive import SQLiteBlobStore


def _store() -> SQLiteBlobStore:
    blobs = SQLiteBlobStore(SQLiteDatabase(":memory:"))
    with blobs.database.write():
        blobs.add_turn_texts(
            "a", [(1, "alice: the red kite flew"), (2, "bob: a kite, red and torn")]
        )
        blobs.add_turn_texts(
            "a", [(2, "alice: the red kite flew\nbob: a kite, red and torn")], ref="~"
        )
        blobs.add_turn_texts("b", [(1, "carol: the red kite flew")])
    return blobs


def test_turn_chunks_are_read_by_id_after_a_point_and_per_session() -> None:
    blobs = _store()
    rows = blobs.turn_chunks("a")
    assert [(ref, seq) for _, ref, seq, _ in rows] == [("", 1), ("", 2), ("~", 2)]
    assert rows[0][3] == len("alice: the red kite flew")
    assert blobs.turn_chunks("a", after_id=rows[1][0]) == rows[2:]
    assert blobs.turn_chunks("a", after_id=rows[-1][0]) == []
    with blobs.database.write():
        blobs.add_turn_texts("a", [(3, "alice: new")])
    assert [seq for _, _, seq, _ in blobs.turn_chunks("a", after_id=rows[-1][0])] == [3]


def test_bm25_scores_and_phrases_stay_in_session_and_scope() -> None:
    blobs = _store()
    ids = {seq: i for i, ref, seq, _ in blobs.turn_chunks("a") if ref == ""}
    scored = blobs.turn_text_scores("a", "red kite")
    assert len(scored) == 3 and all(score > 0 for _, score in scored)
    assert [i for i, _ in blobs.turn_text_scores("a", "red kite", before_seq=2)] == [ids[1]]
    assert blobs.turn_text_scores("a", "?!") == []
    phrase = blobs.turn_phrase_matches("a", "The red, kite")
    assert ids[1] in phrase and ids[2] not in phrase  # "a kite, red" is not the phrase
    assert blobs.turn_phrase_matches("a", "red kite flew", before_seq=1) == []
    assert blobs.turn_phrase_matches("a", "") == []


def test_score_all_matches_search() -> None:
    rng = np.random.default_rng(0)
    index = FAISSIndex(8)
    vectors = rng.normal(size=(30, 8)).astype(np.float32)
    index.add(list(range(100, 130)), vectors)
    index.add([105], vectors[:1])  # replaced: still one entry for id 105
    query = rng.normal(size=8).astype(np.float32)
    ids, scores = index.score_all(query)
    assert sorted(ids.tolist()) == list(range(100, 130))
    by_id = dict(zip(ids.tolist(), scores.tolist(), strict=True))
    for i, score in index.search(query, 30):
        assert abs(by_id[i] - score) < 1e-4
    empty_ids, empty_scores = FAISSIndex(8).score_all(query)
    assert empty_ids.size == 0 and empty_scores.size == 0
