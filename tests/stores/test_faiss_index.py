"""The FAISS index: a per-process cache of chunk vectors, scored in one pass."""

from __future__ import annotations

import numpy as np

from stores.faiss_index import FAISSIndex


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


def test_search_many_gives_each_row_what_search_gives_it() -> None:
    rng = np.random.default_rng(3)
    index = FAISSIndex(dim=16)
    index.add(list(range(10, 410)), rng.normal(size=(400, 16)).astype(np.float32))
    queries = rng.normal(size=(3, 16)).astype(np.float32)
    many = index.search_many(queries, 25)
    assert [[i for i, _ in row] for row in many] == [
        [i for i, _ in index.search(q, 25)] for q in queries
    ]
    assert all(len(row) == 25 for row in many)
    assert FAISSIndex(dim=16).search_many(queries, 5) == [[], [], []]  # empty index


def test_the_sample_grows_with_the_index_and_follows_a_replaced_vector() -> None:
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(3_001, 8)).astype(np.float32)
    index = FAISSIndex(8)
    index.add(list(range(3_000)), vectors[:3_000])
    query = rng.normal(size=8).astype(np.float32)
    ids, scores = index.sample_scores(query, 512)
    assert ids.tolist() == list(range(0, 3_000, 8))  # stride 8: every 8th id held
    index.add([3_000], vectors[3_000:])  # appended: the sample grows at its end
    grown, grown_scores = index.sample_scores(query, 512)
    assert grown.tolist() == [*ids.tolist(), 3_000]
    assert np.allclose(grown_scores[:-1], scores) and np.isclose(
        grown_scores[-1], vectors[3_000] @ query
    )
    index.add([8], vectors[:1])  # replaced: the index's order shifts, the sample starts over
    after_ids, after = index.sample_scores(query, 512)
    by_id = dict(zip(after_ids.tolist(), after.tolist(), strict=True))
    expected = {i: float((vectors[0] if i == 8 else vectors[i]) @ query) for i in by_id}
    assert all(abs(by_id[i] - expected[i]) < 1e-4 for i in by_id)
