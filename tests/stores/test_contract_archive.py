"""The archive and search half of the contract suite, run against every store."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from stores.base import BlobRecord, NewChunk, Store
from stores.errors import RefNotFoundError, StoreError


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
