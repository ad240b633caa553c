"""The FAISS index: a per-process cache of chunk vectors, scored in one pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from stores import faiss_index
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
    assert ids.tolist() == sorted(set(ids.tolist())) and np.allclose(scores, vectors[ids] @ query)
    index.add([3_000], vectors[3_000:])  # appended: the sample keeps what it had
    grown, grown_scores = index.sample_scores(query, 512)
    assert grown[: len(ids)].tolist() == ids.tolist() and len(grown) - len(ids) in (0, 1)
    assert np.allclose(grown_scores[: len(ids)], scores)
    index.add([8], vectors[:1])  # replaced: the index's order shifts, the sample starts over
    after_ids, after = index.sample_scores(query, 512)
    by_id = dict(zip(after_ids.tolist(), after.tolist(), strict=True))
    expected = {i: float((vectors[0] if i == 8 else vectors[i]) @ query) for i in by_id}
    assert all(abs(by_id[i] - expected[i]) < 1e-4 for i in by_id)


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


def _clustered(rng: np.random.Generator, n: int, dim: int) -> npt.NDArray[np.float32]:
    """Unit vectors around 40 topics, as a long chat's turns cluster by subject."""
    topics = rng.normal(size=(40, dim))
    rows = topics[rng.integers(0, 40, n)] + rng.normal(0, 0.35, (n, dim))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def _exact_top(
    vectors: npt.NDArray[np.float32], ids: list[int], query: npt.NDArray[np.float32], k: int
) -> list[int]:
    return [ids[i] for i in np.argsort(-(vectors @ query), kind="stable")[:k]]


def test_a_large_index_walks_a_graph_that_finds_what_the_exact_scan_finds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(faiss_index, "GRAPH_FROM_BYTES", 1_500 * 32 * 4)
    rng = np.random.default_rng(5)
    vectors = _clustered(rng, 3_000, 32)
    needles = rng.normal(size=(5, 32)).astype(np.float32)  # facts unlike any topic
    needles /= np.linalg.norm(needles, axis=1, keepdims=True)
    vectors[[300, 1_100, 1_900, 2_400, 2_999]] = needles
    ids = list(range(7, 3_007))
    index = FAISSIndex(32)
    index.add(ids[:1_000], vectors[:1_000])
    assert not faiss_index._is_graph(index._index)  # small: exact
    for start in range(1_000, 3_000, 250):  # grows as a worker adds batches
        index.add(ids[start : start + 250], vectors[start : start + 250])
    assert faiss_index._is_graph(index._index) and len(index) == 3_000
    for position in (300, 1_100, 1_900, 2_400, 2_999):  # each planted fact comes first
        asked = vectors[position] + rng.normal(0, 0.02, 32).astype(np.float32)
        assert index.search(asked, 5)[0][0] == ids[position]
    kept = []
    for query in _clustered(rng, 50, 32):
        found = [i for i, _ in index.search(query, 20)]
        kept.append(len(set(found) & set(_exact_top(vectors, ids, query, 20))) / 20)
    assert np.mean(kept) >= 0.98


def test_a_graph_reads_its_vectors_and_rebuilds_to_replace_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(faiss_index, "GRAPH_FROM_BYTES", 500 * 16 * 4)
    rng = np.random.default_rng(6)
    vectors = _clustered(rng, 800, 16)
    ids = list(range(800))
    index = FAISSIndex(16, tmp_path / "i.faiss")
    index.add(ids, vectors)
    assert faiss_index._is_graph(index._index)
    query = rng.normal(size=16).astype(np.float32)
    held, scores = index.score_all(query)
    assert np.allclose(scores, vectors[held] @ query, atol=1e-5)
    assert np.allclose(index.scores_of(query, [3, 799]), vectors[[3, 799]] @ query, atol=1e-5)
    sampled, sample = index.sample_scores(query, 100)
    assert np.allclose(sample, vectors[sampled] @ query, atol=1e-5)
    index.add([12], query[None, :] / np.linalg.norm(query))  # replaced: the graph rebuilt
    assert faiss_index._is_graph(index._index) and index.ids() == set(ids)
    assert index.search(query, 1)[0][0] == 12
    index.save()
    opened, rebuilt = FAISSIndex.open(
        16, tmp_path / "i.faiss", stored_ids=ids, stored_vectors=vectors
    )
    assert not rebuilt and faiss_index._is_graph(opened._index)
    assert opened.search(query, 1)[0][0] == 12


def test_opening_leaves_a_rebuilt_index_flat_until_the_worker_settles_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(faiss_index, "GRAPH_FROM_BYTES", 500 * 16 * 4)
    vectors = _clustered(np.random.default_rng(7), 600, 16)
    opened, rebuilt = FAISSIndex.open(
        16, tmp_path / "gone.faiss", stored_ids=list(range(600)), stored_vectors=vectors
    )
    assert rebuilt and not faiss_index._is_graph(opened._index)  # opening stays fast
    assert opened.settle() and faiss_index._is_graph(opened._index)
    assert not opened.settle()  # already a graph
    assert opened.search(vectors[42], 1)[0][0] == 42


def test_an_exact_search_ranks_best_first_and_equal_scores_by_the_first_added() -> None:
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(300, 8)).astype(np.float32)
    vectors[[40, 250, 90]] = vectors[7]  # three copies of one vector, added out of id order
    ids = [1_000 - n for n in range(300)]  # ids fall as vectors are added
    index = FAISSIndex(8)
    index.add(ids, vectors)
    found = index.search(vectors[7], 300)
    assert [i for i, _ in found[:4]] == [ids[7], ids[40], ids[90], ids[250]]
    expected = sorted(float(v @ vectors[7]) for v in vectors)[::-1]
    assert np.allclose([s for _, s in found], expected, atol=1e-4)
    assert len(index.search(vectors[0], 5)) == 5
