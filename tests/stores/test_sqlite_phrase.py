"""The SQLite turn index looks for a phrase in the indexed words of the few passages that
hold its rarest words: it must find what FTS5's own phrase query finds."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stores import sqlite_passages
from stores.base import NewPassage
from stores.sqlite_store import SQLiteStore

VOCABULARY = [
    "the", "red", "kite", "kites", "flew", "over", "hill", "old", "café", "cafe", "42", "to",
]  # fmt: skip
texts = st.lists(st.sampled_from(VOCABULARY), min_size=1, max_size=8).map(" ".join)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    passages=st.lists(texts, min_size=1, max_size=25),
    phrases=st.lists(texts, min_size=1, max_size=6),
    before=st.integers(1, 30),
)
def test_phrases_found_by_reading_passages_are_fts5s(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    passages: list[str],
    phrases: list[str],
    before: int,
) -> None:
    store = SQLiteStore(tmp_path_factory.mktemp("phrase") / "s.db")
    with store.write():
        store.passages.add("a", [NewPassage(n, 0, t, 1.0) for n, t in enumerate(passages, 1)])
        store.passages.add("b", [NewPassage(1, 0, t, 1.0) for t in passages[:1]])
    for phrase in phrases:
        for limit in (2, 50):
            read = store.passages.phrase("a", phrase, before_seq=before, limit=limit)
            with monkeypatch.context() as patch:
                patch.setattr(sqlite_passages, "PHRASE_READ", 0)  # FTS5's phrase query
                asked = store.passages.phrase("a", phrase, before_seq=before, limit=limit)
            assert read == asked, (phrase, limit)
    store.close()


def test_a_phrase_in_more_passages_than_are_read_is_left_to_fts5_else_whole_words_match(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_passages, "PHRASE_READ", 2)
    store = SQLiteStore(tmp_path / "s.db")
    with store.write():
        store.passages.add("a", [NewPassage(n, 0, "a red kite", 1.0) for n in range(1, 6)])
        store.passages.add("a", [NewPassage(6, 0, "kite red", 1.0)])
        store.passages.add("c", [NewPassage(1, 0, "the red kitesurfer and a kite", 1.0)])
    assert [h.seq for h in store.passages.phrase("a", "red kite")] == [5, 4, 3, 2, 1]
    assert [h.seq for h in store.passages.phrase("a", "red kite", limit=2)] == [5, 4]
    monkeypatch.setattr(sqlite_passages, "PHRASE_READ", 128)
    assert [h.seq for h in store.passages.phrase("a", "red kite", limit=2)] == [5, 4]
    assert store.passages.phrase("c", "red kite") == []  # not "red kitesurfer"
    assert [h.seq for h in store.passages.phrase("c", "red kitesurfers")] == [1]  # stems
    store.close()
