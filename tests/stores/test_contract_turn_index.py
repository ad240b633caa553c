"""The turn search index half of the contract suite (``TurnIndex``), run against every
store: passages per session, top-k full-text search, phrases, vectors, CJK words."""

from __future__ import annotations

import numpy as np
import pytest

from stores import search_terms
from stores.base import NewPassage, Store
from stores.errors import StoreError


def _index(store: Store) -> None:
    with store.write():
        store.passages.add(
            "a",
            [
                NewPassage(1, 0, "alice: the red kite flew", 100.0),
                NewPassage(2, 0, "bob: a kite, red and torn", 200.0),
                NewPassage(
                    2, 0, "alice: the red kite flew\nbob: a kite, red and torn", 200.0, True
                ),
                NewPassage(3, 0, "alice: part one of a long note", 300.0),
                NewPassage(3, 1, "alice: part two holds the clause on red kites", 300.0),
            ],
        )
        store.passages.add("b", [NewPassage(1, 0, "carol: the red kite flew", 100.0)])


def test_search_ranks_the_sessions_matches_best_first_within_scope(store: Store) -> None:
    _index(store)
    hits = store.passages.search("a", "the kite")
    assert {(h.seq, h.idx, h.context) for h in hits} == {
        (1, 0, False), (2, 0, False), (2, 0, True), (3, 1, False),  # "kites": a kite's stem
    }  # fmt: skip
    assert all(h.score > 0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].chars == len(next(p for p in store.passages.passages("a", [hits[0].id])).text)
    assert [(h.seq, h.idx) for h in store.passages.search("a", "clause")] == [(3, 1)]
    assert [h.seq for h in store.passages.search("a", "kite", before_seq=2)] == [1]
    assert len(store.passages.search("a", "kite", limit=1)) == 1
    assert store.passages.search("a", "?!") == [] and store.passages.search("z", "kite") == []
    assert [h.seq for h in store.passages.search("b", "kite")] == [1]


def test_search_ids_gives_the_same_passages_and_scores_as_search(store: Store) -> None:
    _index(store)
    for query in ("the kite", "clause", "red kites", "?!"):
        hits = store.passages.search("a", query)
        assert store.passages.search_ids("a", query) == [(h.id, h.score) for h in hits]
    assert len(store.passages.search_ids("a", "kite", limit=1)) == 1
    assert store.passages.search_ids("z", "kite") == []  # another session's words


def test_a_long_phrase_is_found_only_where_its_words_stand_together(store: Store) -> None:
    # Every word of the phrase is in the session, but only one passage holds them all
    # in order (the store may look for its rarest words together first).
    texts = ["the old red kite", "flew over the hill", "the old red kite flew over the hill",
             "hill over flew kite red old the", "a kite string"]  # fmt: skip
    with store.write():
        store.passages.add("p", [NewPassage(n, 0, t, 100.0 * n) for n, t in enumerate(texts, 1)])
    found = store.passages.phrase("p", "old red kite flew over the hill")
    assert [h.seq for h in found] == [3]
    assert store.passages.phrase("p", "red kite over the old hill") == []
    assert store.passages.phrase("p", "the kite string over the hill") == []  # never together
    assert [h.seq for h in store.passages.phrase("p", "a kite string")] == [5]


def test_phrases_locate_and_texts_stay_in_their_session(store: Store) -> None:
    _index(store)
    phrase = store.passages.phrase("a", "The red, kite")
    assert {(h.seq, h.context) for h in phrase} == {(1, False), (2, True)}  # not "kite, red"
    assert store.passages.phrase("a", "red kite flew", before_seq=1) == []
    assert store.passages.phrase("a", "") == []
    ids = [h.id for h in store.passages.search("a", "kite")]
    other = store.passages.search("b", "kite")[0].id
    assert [h.id for h in store.passages.locate("a", [*ids, other])] == ids
    records = store.passages.passages("a", [ids[0], other])
    assert len(records) == 1 and records[0].session == "a" and records[0].created_at > 0
    assert store.passages.locate("a", []) == [] and store.passages.passages("a", []) == []


def test_the_passages_of_turns_come_by_seq_own_first_within_their_session(store: Store) -> None:
    _index(store)
    found = store.passages.of_turns("a", [3, 2, 9])  # 9: no such turn
    assert [(h.seq, h.idx, h.context) for h in found] == [
        (2, 0, False), (2, 0, True), (3, 0, False), (3, 1, False),
    ]  # fmt: skip
    assert found[0].chars == len("bob: a kite, red and torn")
    assert [h.id for h in store.passages.locate("a", [h.id for h in found])] == [
        h.id for h in found
    ]
    assert [h.seq for h in store.passages.of_turns("b", [1, 2])] == [1]
    assert store.passages.of_turns("a", []) == [] and store.passages.of_turns("z", [1]) == []


def test_a_passage_is_indexed_once(store: Store) -> None:
    _index(store)
    with pytest.raises(StoreError), store.write():
        store.passages.add("a", [NewPassage(1, 0, "again", 1.0)])
    assert len(store.passages.search("a", "again")) == 0


def test_vectors_round_trip_per_model_and_session(store: Store) -> None:
    _index(store)
    waiting = store.passages.unembedded("a", "m1")
    assert len(waiting) == 5 and store.passages.unembedded("a", "m1", limit=2) == waiting[:2]
    assert [p.id for p in waiting] == sorted(p.id for p in waiting)
    vectors = np.arange(15, dtype=np.float32).reshape(5, 3)
    store.passages.set_vectors([p.id for p in waiting], vectors, "m1")
    assert store.passages.unembedded("a", "m1") == []
    assert len(store.passages.unembedded("a", "m2")) == 5
    ids, matrix = store.passages.vectors("a", "m1")
    assert ids == [p.id for p in waiting] and np.array_equal(matrix, vectors)
    assert store.passages.vectors("b", "m1")[0] == []
    assert store.passages.last_id("a") == max(ids) and store.passages.last_id("z") == 0
    with pytest.raises(StoreError):
        store.passages.set_vectors([1], vectors, "m1")


def test_chinese_and_japanese_words_are_found_inside_runs(store: Store) -> None:
    with store.write():
        store.passages.add(
            "c",
            [
                NewPassage(1, 0, "user: 我的猫叫小白 它住在北京大学附近。", 1.0),
                NewPassage(2, 0, "user: 明日は東京で会議があります。", 2.0),
                NewPassage(3, 0, "user: the weather is fine", 3.0),
            ],
        )
    assert [h.seq for h in store.passages.search("c", "北京")] == [1]
    assert next(h.seq for h in store.passages.search("c", "我的猫叫什么名字")) == 1
    assert next(h.seq for h in store.passages.search("c", "東京の会議")) == 2
    assert [h.seq for h in store.passages.phrase("c", "北京大学")] == [1]
    assert [h.seq for h in store.passages.search("c", "weather")] == [3]


def test_forget_takes_the_sessions_passages(store: Store) -> None:
    _index(store)
    report = store.forget("a")
    assert report.passages == 5
    assert store.passages.search("a", "kite") == [] and store.passages.last_id("a") == 0
    assert len(store.passages.search("b", "kite")) == 1


def test_a_rare_word_outweighs_a_common_one_and_counts_follow_adds(store: Store) -> None:
    common = [NewPassage(s, 0, "ann: kite kite", 1.0) for s in range(1, 13)]
    with store.write():
        store.passages.add("a", [*common, NewPassage(13, 0, "bob: zephyr", 1.0)])
    # BM25's IDF: "zephyr" (1 passage of 13) weighs far more than "kite" (12 of 13).
    assert store.passages.search("a", "kite zephyr")[0].seq == 13
    # Counts remembered by the store are brought up to date: once "zephyr" is in most
    # passages and "kite" the rarer word, the kite passages lead.
    with store.write():
        store.passages.add("a", [NewPassage(s, 0, "cy: zephyr", 1.0) for s in range(14, 40)])
    assert store.passages.search("a", "kite zephyr", limit=3)[0].seq < 13


def test_a_word_in_more_passages_than_max_scored_is_read_in_its_newest_only(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_terms, "MAX_POSTINGS", 3)
    monkeypatch.setattr(search_terms, "MAX_SCORED", 3)
    with store.write():
        store.passages.add(
            "a", [NewPassage(seq, 0, f"a red kite number {seq}", 100.0) for seq in range(1, 9)]
        )
        store.passages.add("a", [NewPassage(9, 0, "a blue kite", 100.0)])
    # "kite" is in 9 passages: the search scores the newest 3 (a cost that stays flat)
    assert sorted(h.seq for h in store.passages.search("a", "kite")) == [7, 8, 9]
    assert sorted(h.seq for h in store.passages.search("a", "number 2")) == [2]  # rare: all
    # the phrase's rarest word ("red", in 8) is read in its newest 3 passages
    assert [h.seq for h in store.passages.phrase("a", "red kite")] == [8, 7, 6]
    assert store.passages.phrase("a", "red kite gone") == []  # "gone": never used
    monkeypatch.setattr(search_terms, "MAX_SCORED", 2_000)
    assert len(store.passages.search("a", "kite")) == 9


def test_an_old_passage_holding_common_words_together_is_found(store: Store) -> None:
    # Each word of the query is in more passages than a search reads (the newest
    # MAX_SCORED), and more than OLDER_POOL newer passages hold both (the second trial):
    # the old fact, the shortest of them, is found by BM25 and ranked first.
    many = search_terms.MAX_SCORED + 100
    passages = [NewPassage(1, 0, "my locker code is 4417", 1.0)]
    both = [f"the code review moved to the locker room {i}" for i in range(40)]
    passages += [NewPassage(2 + i, 0, t, 1.0) for i, t in enumerate(both)]
    passages += [NewPassage(100 + i, 0, f"the locker again {i}", 1.0) for i in range(many)]
    passages += [NewPassage(9000 + i, 0, f"more code again {i}", 1.0) for i in range(many)]
    with store.write():
        store.passages.add("a", passages)
        store.passages.add("b", [NewPassage(1, 0, "her locker code is 9090", 1.0)])
    for query in ("What is my locker code?", "locker code"):
        hits = store.passages.search("a", query, before_seq=10**6, limit=10)
        assert hits[0].seq == 1, query
        assert store.passages.search_ids("a", query, limit=10) == [(h.id, h.score) for h in hits]
    assert all(h.seq != 1 for h in store.passages.search("a", "locker code", before_seq=1))
    assert [h.seq for h in store.passages.search("b", "locker code")] == [1]


def test_identifiers_joined_by_hyphens_and_dots_are_found_by_their_parts(store: Store) -> None:
    """PostgreSQL's own parser keeps "INC-5521" as "-5521" (a signed number), "v2.14.1"
    as one version word and "ops@lyon.example" as one address; every store indexes
    them as their words instead, so a query for any part finds them."""
    texts = [
        "user: ticket INC-5521: the VPN certificate expired",
        "user: ticket INC-4000: the printer jammed",
        "user: deploy v2.14.1 to ops@lyon.example tonight",
    ]
    with store.write():
        store.passages.add("a", [NewPassage(n, 0, t, 1.0) for n, t in enumerate(texts, 1)])
    for query, seq in (("5521", 1), ("INC-5521", 1), ("14", 3), ("lyon", 3), ("v2.14.1", 3)):
        assert store.passages.search("a", query)[0].seq == seq, query
        assert [h.seq for h in store.passages.phrase("a", query)][:1] == [seq], query
