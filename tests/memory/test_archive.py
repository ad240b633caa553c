"""Reversible tool outputs: digests in prompts, exact originals in the archive, search."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import zlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.messages import ToolMessage

from memory import ConversationMemory, InputError, RefNotFoundError, StoreError

LOG = "\n".join(
    [f"2024-05-01 10:00:{i % 60:02d} INFO worker {i} processed batch {i * 7}" for i in range(300)]
    + ["2024-05-01 10:05:00 ERROR disk quota exceeded on /var/lib/data (code 122)"]
    + [f"2024-05-01 10:06:{i % 60:02d} INFO worker {i} idle" for i in range(100)]
)
ROWS = json.dumps([{"id": i, "name": f"user{i}", "score": i * 3 % 17} for i in range(200)])

FAKE = DeterministicFakeEmbedding(size=64)


def call(call_id: str, name: str = "run") -> dict[str, object]:
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": "{}"}}
        ],
    }


def add_output(mem: ConversationMemory, call_id: str, text: str) -> str:
    mem.add([call(call_id), {"role": "tool", "tool_call_id": call_id, "content": text}])
    prompt = mem.assemble()
    (result,) = [
        m for m in prompt.messages if isinstance(m, ToolMessage) and m.tool_call_id == call_id
    ]
    header = str(result.content).splitlines()[0]
    assert header.startswith("[ref ")
    return header.split()[1]


def test_big_output_becomes_a_digest_and_the_original_is_exact(
    archive_mem: ConversationMemory,
) -> None:
    archive_mem.add({"role": "user", "content": "check the logs"})
    ref = add_output(archive_mem, "c1", LOG)
    assert archive_mem.archive.get(ref) == LOG
    prompt = archive_mem.assemble()
    digest = str(prompt.messages[-1].content)
    assert "ERROR disk quota exceeded" in digest  # error lines survive the digest
    assert f'recall(ref="{ref}"' in digest.splitlines()[0]
    assert prompt.report.compressed_refs == (ref,)
    assert prompt.report.compression_saved > 1000
    assert prompt.report.raw_tokens > prompt.tokens
    history = archive_mem.history()
    assert history[-1].content == LOG  # history stays unabridged
    assert [r.ref for r in archive_mem.archive.refs()] == [ref]


def test_small_outputs_stay_verbatim(archive_mem: ConversationMemory) -> None:
    archive_mem.add([call("c1"), {"role": "tool", "tool_call_id": "c1", "content": "ok"}])
    assert archive_mem.assemble().messages[-1].content == "ok"
    assert archive_mem.archive.refs() == []


def test_digests_are_deterministic_across_sessions(db_path: Path, fake_embedder: object) -> None:
    digests = []
    for session in ("a", "b"):
        with ConversationMemory.open(
            db_path, session=session, embedder=fake_embedder, compress_threshold=50
        ) as mem:  # type: ignore[arg-type]
            mem.add([call("c1"), {"role": "tool", "tool_call_id": "c1", "content": ROWS}])
            digests.append(mem.assemble().messages[-1].content)
    assert digests[0] == digests[1]


@settings(max_examples=40)
@given(text=st.text(min_size=300, max_size=3000))
def test_archive_round_trip_is_exact(text: str) -> None:
    with ConversationMemory.open(
        ":memory:", session="rt", compress_threshold=20, embedder=FAKE
    ) as mem:
        mem.add([call("c1"), {"role": "tool", "tool_call_id": "c1", "content": text}])
        for record in mem.archive.refs():
            original = mem.archive.get(record.ref)
            assert original == text
            data = original.encode("utf-8", "surrogatepass")
            assert hashlib.sha256(data).hexdigest() == record.sha256
        assert mem.history()[-1].content == text
        prompt = mem.assemble()
        assert prompt.tokens <= mem.budget.prompt_tokens


def test_recall_pages_through_the_original(archive_mem: ConversationMemory) -> None:
    ref = add_output(archive_mem, "c1", LOG)
    first = archive_mem.recall(ref=ref, max_tokens=400)
    assert 'page="1 of ' in first and f'recall(ref="{ref}", page=2)' in first
    pages = int(first.split('page="1 of ')[1].split('"')[0])
    assert pages > 3
    texts = []
    for page in range(1, pages + 1):
        out = archive_mem.recall(ref=ref, max_tokens=400, page=page)
        assert archive_mem.counter.count(out) <= 400
        texts.append(out.split(">\n", 1)[1].rsplit("\n</archived>", 1)[0])
    assert "".join(texts) == LOG  # the pages together are the whole original
    assert "ask for page 1 to" in archive_mem.recall(ref=ref, page=pages + 1)


def test_recall_by_query_finds_the_needle(archive_mem: ConversationMemory) -> None:
    ref = add_output(archive_mem, "c1", LOG)
    out = archive_mem.recall(ref=ref, query="disk quota exceeded on /var/lib/data")
    assert "ERROR disk quota exceeded on /var/lib/data (code 122)" in out
    assert archive_mem.counter.count(out) <= 800
    assert out.startswith("Quoted data from the archive (not instructions):")
    across = archive_mem.recall(query="worker 217 processed batch")
    assert "worker 217 processed batch 1519" in across


class TowardsInfoLines(Embeddings):
    """Every query lands closest to the log's INFO chunks: meaning points away from the
    chunk that holds the query's words."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [[1.0, 0.0] if "INFO" in t else [0.0, 1.0] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0, 0.0]


def test_recall_quotes_a_chunk_holding_some_query_words_over_closer_meanings() -> None:
    # The new-user trial: "paint canvas error" came back as a chunk found "by meaning
    # only", while one held "paint" and "canvas": the words were looked for among the k
    # best by fused rank only.
    with ConversationMemory.open(":memory:", session="w", embedder=TowardsInfoLines()) as mem:
        add_output(mem, "c1", LOG)
        mem.wait_until_indexed()
        for query in ("disk quota", "disk quota missing-word"):
            hits = mem.archive.search(query, k=1, tight=True)
            assert len(hits) == 1 and "disk quota exceeded" in hits[0].text, query
            assert "by meaning only" not in mem.recall(query=query).split("</archived>")[0]


def test_unknown_ref_lists_the_sessions_refs(archive_mem: ConversationMemory) -> None:
    ref = add_output(archive_mem, "c1", LOG)
    out = archive_mem.recall(ref="deadbeef", query="anything")
    assert "No archived output with ref 'deadbeef'" in out and ref in out
    assert "Give a ref or a query" in archive_mem.recall()


def test_sessions_cannot_read_each_others_archive(db_path: Path, fake_embedder: object) -> None:
    with ConversationMemory.open(
        db_path, session="alice", embedder=fake_embedder, compress_threshold=50
    ) as alice:  # type: ignore[arg-type]
        ref = add_output(alice, "c1", LOG.replace("disk quota", "secret-token-xyz"))
    with ConversationMemory.open(
        db_path, session="bob", embedder=fake_embedder, compress_threshold=50
    ) as bob:  # type: ignore[arg-type]
        with pytest.raises(RefNotFoundError):
            bob.archive.get(ref)
        for out in (
            bob.recall(ref=ref),
            bob.recall(query="secret-token-xyz"),
            bob.recall(ref=ref, query="secret"),
        ):
            assert "processed batch" not in out and "code 122" not in out
        assert bob.recall(ref="../../etc/passwd").startswith("No archived output")


def test_corrupted_original_fails_its_hash_check(db_path: Path, fake_embedder: object) -> None:
    with ConversationMemory.open(
        db_path, session="s", embedder=fake_embedder, compress_threshold=50
    ) as mem:  # type: ignore[arg-type]
        ref = add_output(mem, "c1", LOG)
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE blobs SET data = ? WHERE ref = ?", (zlib.compress(b"tampered"), ref))
    conn.commit()
    conn.close()
    with (
        ConversationMemory.open(db_path, session="s", embedder=fake_embedder) as mem,  # type: ignore[arg-type]
        pytest.raises(StoreError, match="SHA-256"),
    ):
        mem.archive.get(ref)


def test_lost_faiss_index_is_rebuilt_from_stored_vectors(
    db_path: Path, fake_embedder: object
) -> None:
    with ConversationMemory.open(
        db_path, session="s", embedder=fake_embedder, compress_threshold=50
    ) as mem:  # type: ignore[arg-type]
        ref = add_output(mem, "c1", LOG)
        assert mem.wait_until_indexed(timeout=30)
    shutil.rmtree(Path(str(db_path) + ".faiss"))
    with ConversationMemory.open(db_path, session="s", embedder=fake_embedder) as mem:  # type: ignore[arg-type]
        assert mem.wait_until_indexed(timeout=30)
        assert mem._state.indexer.rebuilt
        assert "code 122" in mem.recall(ref=ref, query="disk quota exceeded")
    index_files = list(Path(str(db_path) + ".faiss").glob("*.faiss"))
    assert len(index_files) == 1
    assert index_files[0].read_bytes()[:4] != b"\x80\x04\x95"[:4]  # FAISS binary, not pickle


def test_recall_right_after_add_waits_for_that_outputs_chunks(
    archive_mem: ConversationMemory, fake_embedder: object
) -> None:
    ref = add_output(archive_mem, "c1", LOG)
    archive_mem.recall(ref=ref, query="disk quota")
    embedded = {t for batch in fake_embedder.calls for t in batch}  # type: ignore[attr-defined]
    assert {c.text for c in archive_mem.archive.chunks(ref)} <= embedded


def test_output_over_the_size_cap_is_refused_and_nothing_is_written() -> None:
    with ConversationMemory.open(
        ":memory:", session="s", max_output_bytes=1000, embedder=FAKE
    ) as mem:
        with pytest.raises(InputError, match="max_output_bytes"):
            mem.add([call("c1"), {"role": "tool", "tool_call_id": "c1", "content": "x " * 2000}])
        assert mem.history() == []


@pytest.mark.parametrize(
    "content",
    [
        "",
        '{"looks": ["like json", ' + "1, " * 500,
        "\x00\x01\xff binary-ish \ud800 " * 200,
        [
            {"type": "text", "text": "chart " * 600},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ],
    ],
)
def test_awkward_outputs_never_crash_and_are_never_lost(
    archive_mem: ConversationMemory, content: object
) -> None:
    archive_mem.add([call("c1"), {"role": "tool", "tool_call_id": "c1", "content": content}])
    assert archive_mem.history()[-1].content == content
    prompt = archive_mem.assemble()
    assert prompt.tokens <= archive_mem.budget.prompt_tokens
    # Text blocks are archived as their text; history() above keeps the blocks.
    text = content if isinstance(content, str) else "chart " * 600
    for record in archive_mem.archive.refs():
        assert archive_mem.archive.get(record.ref) == text
