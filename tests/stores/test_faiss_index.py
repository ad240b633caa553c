"""The FAISS index: a per-process cache of chunk vectors, scored in one pass."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from stores import faiss_ivf
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


def _clustered(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """Unit vectors around 64 centres, as sentence embeddings cluster by topic."""
    centres = rng.normal(size=(64, dim))
    points = centres[rng.integers(0, 64, size=count)] + 0.35 * rng.normal(size=(count, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def test_past_exact_max_the_index_is_an_inverted_file_that_keeps_its_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_ivf, "EXACT_MAX", 2_048)
    rng = np.random.default_rng(5)
    vectors = _clustered(rng, 6_000, 32)
    index = FAISSIndex(32, tmp_path / "s.faiss")
    for start in range(0, 6_000, 500):  # added in batches, as the indexer does
        index.add(list(range(start, start + 500)), vectors[start : start + 500])
        assert index.exact == (start + 500 <= 2_048)
    assert len(index) == 6_000 and index.ids() == set(range(6_000))
    queries = _clustered(rng, 20, 32)
    exact = np.argsort(-(vectors @ queries.T), axis=0)[:20].T
    found = [[i for i, _ in row] for row in index.search_many(queries, 20)]
    pairs = zip(found, exact, strict=True)
    overlap = np.mean([len(set(f) & set(e.tolist())) / 20 for f, e in pairs])
    assert overlap >= 0.9
    assert np.allclose(index.scores_of(queries[0], [7, 4_000]), vectors[[7, 4_000]] @ queries[0])
    ids, scores = index.score_all(queries[0])
    assert sorted(ids.tolist()) == list(range(6_000))
    assert np.allclose(scores, vectors[ids] @ queries[0], atol=1e-5)
    sampled, _ = index.sample_scores(queries[0], 512)
    index.add([6_000], vectors[:1])  # a new id: the sample only grows until the index doubles
    grown = index.sample_scores(queries[0], 512)[0].tolist()
    assert grown[: len(sampled)] == sampled.tolist() and grown[len(sampled) :] == [6_000]
    index.add([10], vectors[11:12])  # replaced: one entry, the new vector
    assert len(index) == 6_001
    assert np.allclose(index.scores_of(queries[0], [10]), vectors[11] @ queries[0])
    index.save()
    reopened, rebuilt = FAISSIndex.open(
        32, tmp_path / "s.faiss", stored_ids=list(range(6_001)), stored_vectors=vectors[:1]
    )
    assert not rebuilt and not reopened.exact
    assert [i for i, _ in reopened.search(queries[1], 20)] == found[1] or overlap < 1
    assert reopened.sample_scores(queries[0], 512)[0].tolist() == grown


def test_an_inverted_file_is_retrained_as_it_doubles(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(faiss_ivf, "EXACT_MAX", 1_024)
    built: list[int] = []
    original = faiss_ivf.build

    def counting(dim: int, ids: np.ndarray, vectors: np.ndarray) -> object:
        built.append(len(ids))
        return original(dim, ids, vectors)

    monkeypatch.setattr(faiss_ivf, "build", counting)
    rng = np.random.default_rng(9)
    vectors = _clustered(rng, 5_000, 16)
    index = FAISSIndex(16)
    for start in range(0, 5_000, 250):
        index.add(list(range(start, start + 250)), vectors[start : start + 250])
    assert built == [1_250, 2_500, 5_000]
