"""The FAISS index: a per-process cache of chunk vectors, scored in one pass."""

from __future__ import annotations

from pathlib import Path

import faiss
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
    assert 300 <= len(ids) <= 450  # stride 8: about 375 of 3,000, in the index's order
    assert ids.tolist() == sorted(set(ids.tolist())) and np.allclose(
        scores, vectors[ids] @ query, rtol=2e-3, atol=2e-3
    )  # 16-bit vectors
    index.add([3_000], vectors[3_000:])  # appended: the sample keeps what it had
    grown, grown_scores = index.sample_scores(query, 512)
    assert grown[: len(ids)].tolist() == ids.tolist() and len(grown) - len(ids) in (0, 1)
    assert np.allclose(grown_scores[: len(ids)], scores)
    index.add([8], vectors[:1])  # replaced: the index's order shifts, the sample starts over
    after_ids, after = index.sample_scores(query, 512)
    by_id = dict(zip(after_ids.tolist(), after.tolist(), strict=True))
    expected = {i: float((vectors[0] if i == 8 else vectors[i]) @ query) for i in by_id}
    assert all(abs(by_id[i] - expected[i]) < 2e-3 * (1 + abs(expected[i])) for i in by_id)


def test_the_sample_does_not_line_up_with_a_pattern_in_the_ids() -> None:
    # A plain chat's passages alternate: a turn's own text, then its context copy. A
    # sample of every 2nd, 4th, ... id held context copies only.
    rng = np.random.default_rng(9)
    for total in (2_400, 6_000, 20_000):
        index = FAISSIndex(4)
        index.add(list(range(total)), rng.normal(size=(total, 4)).astype(np.float32))
        ids, _ = index.sample_scores(rng.normal(size=4).astype(np.float32), 2_048)
        for period in (2, 3, 4):
            shares = np.bincount(ids % period, minlength=period) / len(ids)
            assert shares.min() > 0.8 / period, (total, period, shares)


def test_a_graph_index_file_is_not_trusted_but_rebuilt_exhaustive(tmp_path: Path) -> None:
    # Written by a build that searched large sessions through an HNSW graph (dropped: it
    # lost planted facts where a chat repeats itself); the stored vectors are the truth.
    rng = np.random.default_rng(6)
    vectors = rng.normal(size=(50, 16)).astype(np.float32)
    graph = faiss.IndexIDMap2(faiss.IndexHNSWFlat(16, 32, faiss.METRIC_INNER_PRODUCT))
    graph.add_with_ids(vectors, np.arange(50, dtype=np.int64))
    faiss.write_index(graph, str(tmp_path / "i.faiss"))
    opened, rebuilt = FAISSIndex.open(
        16, tmp_path / "i.faiss", stored_ids=list(range(50)), stored_vectors=vectors
    )
    assert rebuilt and opened.search(vectors[7], 1)[0][0] == 7
    saved = faiss.read_index(str(tmp_path / "i.faiss"))
    assert isinstance(faiss.downcast_index(saved.index), faiss.IndexScalarQuantizer)


def test_an_index_file_of_32_bit_vectors_is_rebuilt_with_16_bit_ones(tmp_path: Path) -> None:
    # Written by a build that held vectors as 32-bit floats: still correct, but twice
    # the memory a search reads. Opening it rebuilds it, once.
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(40, 16)).astype(np.float32)
    old = faiss.IndexIDMap2(faiss.IndexFlatIP(16))
    old.add_with_ids(vectors, np.arange(40, dtype=np.int64))
    faiss.write_index(old, str(tmp_path / "i.faiss"))
    stored = {"stored_ids": list(range(40)), "stored_vectors": vectors}
    opened, rebuilt = FAISSIndex.open(16, tmp_path / "i.faiss", **stored)
    assert rebuilt and opened.search(vectors[3], 1)[0][0] == 3
    saved = faiss.read_index(str(tmp_path / "i.faiss"))
    assert isinstance(faiss.downcast_index(saved.index), faiss.IndexScalarQuantizer)
    _, again = FAISSIndex.open(16, tmp_path / "i.faiss", **stored)
    assert not again


def test_a_search_ranks_best_first_and_equal_scores_by_the_first_added() -> None:
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors[[40, 250, 90]] = vectors[7]  # three copies of one vector, added out of id order
    ids = [1_000 - n for n in range(300)]  # ids fall as vectors are added
    index = FAISSIndex(8)
    index.add(ids, vectors)
    found = index.search(vectors[7], 300)
    assert [i for i, _ in found[:4]] == [ids[7], ids[40], ids[90], ids[250]]
    expected = sorted(float(v @ vectors[7]) for v in vectors)[::-1]
    assert np.allclose([s for _, s in found], expected, rtol=2e-3, atol=5e-3)  # 16-bit vectors
    assert len(index.search(vectors[0], 5)) == 5


def test_scores_of_finds_ids_in_any_order_the_index_holds_them() -> None:
    rng = np.random.default_rng(11)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    query = rng.normal(size=8).astype(np.float32)
    index = FAISSIndex(8)
    index.add([10, 20, 30, 40], vectors[:4])  # ascending: found by binary search
    wanted = [40, 5, 10, 35, 20]
    scores = index.scores_of(query, wanted)
    assert np.isnan(scores[[1, 3]]).all()
    assert np.allclose(scores[[0, 2, 4]], vectors[[3, 0, 1]] @ query, rtol=2e-3, atol=2e-3)
    index.add([20, 50], vectors[4:6])  # 20 replaced, moved to the end: ids out of order
    scores = index.scores_of(query, [20, 50, 30, 99])
    assert np.allclose(scores[:3], vectors[[4, 5, 2]] @ query, rtol=2e-3, atol=2e-3)
    assert np.isnan(scores[3])
    assert np.isnan(FAISSIndex(8).scores_of(query, [1, 2])).all()  # nothing held yet
