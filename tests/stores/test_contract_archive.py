"""The archive and search half of the contract suite, run against every store."""

from __future__ import annotations

import hashlib
import time
import zlib

import numpy as np
import pytest

from stores.base import BlobRecord, NewChunk, Store, VectorIndex
from stores.errors import RefNotFoundError, StoreError
from stores.faiss_index import FAISSIndex, index_path
from stores.sql_common import Dialect


def record(session: str, data: bytes, ref: str = "r1") -> BlobRecord:
    sha = hashlib.sha256(data).hexdigest()
    return BlobRecord(session, ref, sha, len(data), "log", 900, 40, "a log", time.time())


def put_log(store: Store, session: str = "s", ref: str = "r1") -> bytes:
    text = "alpha line\nERROR disk quota exceeded\nomega line\n"
    data = text.encode()
    chunks = [NewChunk(0, 11, "alpha line\n"), NewChunk(11, 49, text[11:])]
    assert store.blobs.put(record(session, data, ref), data, chunks)
    return data


def test_put_get_lookup_and_refs(store: Store) -> None:
    assert store.blobs.lookup("s", "r1") is None
    data = put_log(store)
    rec, got = store.blobs.get("s", "r1")
    assert got == data and rec.sha256 == hashlib.sha256(data).hexdigest()
    assert (rec.kind, rec.tokens, rec.digest_tokens, rec.note) == ("log", 900, 40, "a log")
    assert store.blobs.lookup("s", "r1") == rec.sha256
    assert not store.blobs.put(rec, data, [])  # the same bytes again: nothing written
    with pytest.raises(StoreError, match="other content"):
        store.blobs.put(record("s", b"other", "r1"), b"other", [])
    with pytest.raises(StoreError, match="SHA-256"):
        store.blobs.put(rec, b"tampered", [])
    assert [r.ref for r in store.blobs.refs("s")] == ["r1"]
    with pytest.raises(RefNotFoundError):
        store.blobs.get("other", "r1")  # a session reads only its own rows
    assert store.blobs.refs("other") == [] and store.blobs.lookup("other", "r1") is None


def test_chunks_by_ref_and_id(store: Store) -> None:
    put_log(store)
    put_log(store, ref="r2")
    chunks = store.blobs.chunks("s", "r1")
    assert [(c.idx, c.start, c.end) for c in chunks] == [(0, 0, 11), (1, 11, 49)]
    assert len(store.blobs.chunks("s")) == 4 and store.blobs.chunks("t") == []
    assert store.blobs.last_chunk_id("s") == max(c.id for c in store.blobs.chunks("s"))
    assert store.blobs.last_chunk_id("t") == 0
    ids = [chunks[1].id, chunks[0].id]
    assert [c.idx for c in store.blobs.chunks_by_id("s", ids)] == [1, 0]
    assert store.blobs.chunks_by_id("s", ids, with_text=False)[0].text == ""
    assert store.blobs.chunks_by_id("t", ids) == [] and store.blobs.chunks_by_id("s", []) == []


def test_search_text_finds_words_in_scope(store: Store) -> None:
    put_log(store)
    outputs = store.blobs.search_text("s", "What about the QUOTA?")
    assert [(c.ref, c.idx) for c in outputs] == [("r1", 1)]
    assert store.blobs.search_text("s", "quota", ref="r2") == []
    assert store.blobs.search_text("s", "?!") == []
    assert store.blobs.search_text("other", "quota") == []


def test_vectors_round_trip_per_model_and_session(store: Store) -> None:
    put_log(store)
    put_log(store, session="t")
    waiting = store.blobs.unembedded("s", "m1")
    assert len(waiting) == 2 and store.blobs.unembedded("s", "m1", limit=1) == waiting[:1]
    vectors = np.arange(8, dtype=np.float32).reshape(2, 4)
    store.blobs.set_vectors([c.id for c in waiting], vectors, "m1")
    assert store.blobs.unembedded("s", "m1") == [] and len(store.blobs.unembedded("s", "m2")) == 2
    ids, matrix = store.blobs.vectors("s", "m1")
    assert ids == [c.id for c in waiting] and np.array_equal(matrix, vectors)
    empty_ids, empty = store.blobs.vectors("t", "m1")
    assert empty_ids == [] and empty.size == 0
    with pytest.raises(StoreError):
        store.blobs.set_vectors([1], vectors, "m1")


def test_refs_are_oldest_first_and_forget_takes_originals_and_vectors(store: Store) -> None:
    put_log(store, ref="r2")
    data = put_log(store, ref="r1")  # stored later: listed second, whatever its name
    put_log(store, session="t")
    assert [r.ref for r in store.blobs.refs("s")] == ["r2", "r1"]
    waiting = store.blobs.unembedded("s", "m")
    store.blobs.set_vectors([c.id for c in waiting], np.ones((4, 2), dtype=np.float32), "m")
    report = store.forget("s")
    assert (report.sessions, report.blobs, report.chunks, report.turns) == (("s",), 2, 4, 0)
    assert store.blobs.refs("s") == [] and store.blobs.lookup("s", "r1") is None
    with pytest.raises(RefNotFoundError):
        store.blobs.get("s", "r1")
    assert store.blobs.vectors("s", "m")[0] == [] and store.blobs.last_chunk_id("s") == 0
    assert store.blobs.get("t", "r1")[1] == data and len(store.blobs.chunks("t")) == 2


def test_vectors_are_replaced_by_another_model_and_written_all_or_nothing(store: Store) -> None:
    put_log(store)
    ids = [c.id for c in store.blobs.unembedded("s", "m1")]
    first = np.ones((2, 3), dtype=np.float32)
    store.blobs.set_vectors(ids, first, "m1")
    with pytest.raises(RuntimeError), store.write():
        store.blobs.set_vectors(ids, first * 2, "m2")
        raise RuntimeError("abort")
    assert np.array_equal(store.blobs.vectors("s", "m1")[1], first)
    store.blobs.set_vectors(ids[:1], first[:1] * 2, "m2")  # one vector per chunk: m1's goes
    assert store.blobs.vectors("s", "m1")[0] == ids[1:]
    assert [c.id for c in store.blobs.unembedded("s", "m1")] == ids[:1]
    assert store.blobs.vectors("s", "m2")[0] == ids[:1]


def test_a_vector_index_rebuilt_from_the_stored_vectors(store: Store) -> None:
    put_log(store)
    ids = [c.id for c in store.blobs.unembedded("s", "m")]
    store.blobs.set_vectors(ids, np.eye(2, 4, dtype=np.float32), "m")
    directory = store.index_directory
    path = None if directory is None else index_path(directory, "s", "m")
    stored_ids, matrix = store.blobs.vectors("s", "m")
    opened, rebuilt = FAISSIndex.open(4, path, stored_ids=stored_ids, stored_vectors=matrix)
    index: VectorIndex = opened
    assert rebuilt == (path is not None) and index.ids() == set(ids)
    assert [i for i, _ in index.search(np.eye(4, dtype=np.float32)[1], 1)] == [ids[1]]
    found, scores = index.score_all(np.eye(4, dtype=np.float32)[0])
    assert dict(zip(found.tolist(), scores.tolist(), strict=True)) == {ids[0]: 1.0, ids[1]: 0.0}
    put_log(store, ref="r2")
    new = [c.id for c in store.blobs.unembedded("s", "m")]
    store.blobs.set_vectors(new, np.eye(2, 4, k=2, dtype=np.float32), "m")
    index.add(new, np.eye(2, 4, k=2, dtype=np.float32))
    index.save()
    stored_ids, matrix = store.blobs.vectors("s", "m")
    again, rebuilt = FAISSIndex.open(4, path, stored_ids=stored_ids, stored_vectors=matrix)
    assert not rebuilt and again.ids() == index.ids() == set(stored_ids)  # the file is current
    assert store.forget("s").index_files == (0 if path is None else 1)
    assert path is None or not path.exists()


@pytest.mark.parametrize("stored", [zlib.compress(b"tampered"), b"not zlib at all"])
def test_get_refuses_an_original_changed_behind_its_back(store: Store, stored: bytes) -> None:
    put_log(store)
    dialect: Dialect = store.turns.dialect  # type: ignore[attr-defined]
    with store.database.write() as conn:  # type: ignore[attr-defined]
        conn.execute(
            f"UPDATE {dialect.table('blobs')} SET data = {dialect.mark} "
            f"WHERE session = {dialect.mark} AND ref = {dialect.mark}",
            (stored, "s", "r1"),
        )
    with pytest.raises(StoreError, match="corrupted"):
        store.blobs.get("s", "r1")
    assert store.blobs.lookup("s", "r1") is not None  # the record is still there to see


def test_identifiers_in_chunks_are_found_by_their_parts(store: Store) -> None:
    text = "job ERR-5521 failed on build v2.14.1\njob ERR-4000 passed\n"
    data = text.encode()
    chunks = [NewChunk(0, 37, text[:37]), NewChunk(37, len(text), text[37:])]
    assert store.blobs.put(record("s", data), data, chunks)
    for query in ("5521", "ERR-5521", "14"):
        assert [c.idx for c in store.blobs.search_text("s", query)][:1] == [0], query
